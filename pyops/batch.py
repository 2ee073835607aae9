"""`pyops batch`: many files through one operator on a Dask distributed cluster — a `LocalCluster` sized to this
machine by default, or the user's cluster (`--scheduler tcp://host:8786`).

Each file is one task that runs `process_file` on a worker, so a result gets the same guarantees as from the CLI
and the server: written to a temp file and renamed, never over an existing file, provenance embedded. A task is
idempotent: before working it looks for a complete result of the same source (sha256) made with the same
parameters, through the provenance record, and returns that instead. So a re-run after a crash or Ctrl-C
computes only what is missing, and a task that Dask re-runs because its worker died mid-way (after publishing,
before reporting) does not make a second result.

Workers read inputs and write results on storage they share with the client (the same paths everywhere), or,
with `ship=True`, get the file's bytes and send the result's bytes back for the client to write.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from pyops import provenance
from pyops.io.images import FORMATS
from pyops.registry import ParamError, get


WITH_METADATA = {suffix for suffix in FORMATS.values() if suffix != ".npy"}  # files that carry provenance


@dataclass
class Summary:
    done: list[dict] = field(default_factory=list)  # {"input", "output", "skipped"}
    failed: list[dict] = field(default_factory=list)  # {"input", "error"}


class Interrupted(KeyboardInterrupt):
    """`run` was stopped (Ctrl-C, SIGTERM): what was reported so far, and the inputs that were being processed
    at that moment (their results may still appear)."""

    def __init__(self, summary: Summary, in_flight: list[Path]):
        super().__init__("interrupted")
        self.summary, self.in_flight = summary, in_flight


def _params_key(params: dict[str, Any]) -> str:
    return json.dumps(provenance.jsonable(params), sort_keys=True)


def existing_result(source: Path, op_name: str, params: dict[str, Any], out_dir: Path,
                    digest: str | None = None) -> Path | None:
    """A complete result of `source` by `op_name` with `params` in `out_dir`, known by its provenance record."""
    candidates = sorted(out_dir.glob(f"{source.stem}_pyops-{op_name}*"))
    if not candidates:
        return None
    digest = digest or provenance.sha256_file(source)
    key = _params_key(params)
    for path in candidates:
        rec = provenance.read(path) if path.suffix.lower() in WITH_METADATA else None
        if rec and rec["operator"] == op_name and rec["source_sha256"] == digest and _params_key(rec["parameters"]) == key:
            return path
    return None


def _worker() -> str | None:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # not on a worker
        return None


def process_one(op_name: str, params: dict[str, Any], source: str, out_dir: str | None, fmt: str | None) -> dict:
    """One file on a worker: the existing complete result, or a new one."""
    from pyops.process import process_file

    src = Path(source)
    target = Path(out_dir) if out_dir else src.parent
    done = existing_result(src, op_name, params, target) if target.is_dir() else None
    if done is not None:
        return {"input": source, "output": str(done), "skipped": True, "worker": _worker()}
    outcome = process_file(op_name, params, src, target, fmt)
    return {"input": source, "output": str(outcome.output), "skipped": False, "worker": _worker(), "info": outcome.info}


def process_shipped(op_name: str, params: dict[str, Any], name: str, data: bytes, fmt: str | None) -> tuple[str, bytes]:
    """One file sent as bytes: processed in a private temp folder on the worker; returns (result name, bytes)."""
    from pyops.process import process_file

    with tempfile.TemporaryDirectory(prefix="pyops-batch-") as tmp:
        src = Path(tmp) / name
        src.write_bytes(data)
        outcome = process_file(op_name, params, src, Path(tmp) / "out", fmt)
        return outcome.output.name, outcome.output.read_bytes()


def _write_shipped(out_dir: Path, name: str, data: bytes) -> Path:
    from pyops.io.files import write_atomic

    stem, suffix = os.path.splitext(name)
    return write_atomic(out_dir, lambda n: name if n == 0 else f"{stem}_{n:02d}{suffix}", suffix,
                        lambda tmp: tmp.write_bytes(data))


def dask_setup(worker) -> None:
    """Run by each local worker process as it starts (a Dask preload): ignore SIGINT. A Ctrl-C in the terminal
    reaches the whole process group, and it is for `pyops batch` to stop the batch (cancel, close the cluster),
    not for each worker to die of it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def local_cluster_size(cores: int | None = None) -> tuple[int, int]:
    """(workers, threads for numba/FFT in each) so that workers × threads = cores: one process per core, since
    per-file parallelism scales better than threads inside one operator."""
    cores = cores or os.cpu_count() or 1
    return cores, 1


def connect(scheduler: str | None, workers: int | None):
    """A dask.distributed Client: to `scheduler`, or to a new LocalCluster sized to this machine."""
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout="30s")
        try:
            client.wait_for_workers(1, timeout=120)
        except TimeoutError:
            client.close()
            raise TimeoutError(f"the scheduler {scheduler} has no workers (start some with `dask worker {scheduler}`)")
        return client
    n, threads = local_cluster_size()
    n = workers or n
    env = {"NUMBA_NUM_THREADS": str(threads), "PYOPS_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    saved = dict(os.environ)
    try:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, env=env, dashboard_address=":0",
                               silence_logs=logging.CRITICAL,  # a failed file is reported once, by run(), in one line
                               preload=[__name__])  # runs dask_setup in each worker
    finally:  # distributed sets OMP_NUM_THREADS=1 & co. in this process too while spawning: keep ours unchanged
        os.environ.clear()
        os.environ.update(saved)
    return Client(cluster)


def run(op_name: str, params: dict[str, Any], inputs: Iterable[Path], client, out_dir: Path | None = None,
        fmt: str | None = None, ship: bool = False,
        on_event: Callable[[str, dict], None] | None = None, stop: Callable[[], bool] | None = None) -> Summary:
    """Process `inputs` with `op_name` on the cluster behind `client`; results as they complete. `stop` is
    polled (10 times a second): when it returns True, or on KeyboardInterrupt, the remaining tasks are cancelled
    and Interrupted is raised. A ParamError from a task (a bad parameter found while running) is raised too."""
    op = get(op_name)
    params = op.parse(dict(params)).model_dump(mode="json")
    report = on_event or (lambda kind, item: None)
    summary = Summary()
    todo = []
    for path in map(Path, inputs):
        if stop is not None and stop():
            raise Interrupted(summary, [])
        target = out_dir or path.parent
        if not path.is_file():
            item = {"input": str(path), "error": "no such file"}
            summary.failed.append(item)
            report("error", item)
            continue
        found = existing_result(path, op.name, params, target) if target.is_dir() else None
        if found is not None:
            item = {"input": str(path), "output": str(found), "skipped": True}
            summary.done.append(item)
            report("skipped", item)
            continue
        todo.append(path)

    futures = {}
    finished: queue.SimpleQueue = queue.SimpleQueue()  # futures as they complete, put by Dask's callback thread

    def submit(path: Path) -> None:
        if ship:  # bytes travel with the task: read each file only when a slot is free
            fut = client.submit(process_shipped, op.name, params, path.name, path.read_bytes(), fmt, pure=False)
        else:
            fut = client.submit(process_one, op.name, params, str(path.resolve()),
                                str(out_dir.resolve()) if out_dir else None, fmt, pure=False)
        futures[fut] = path
        fut.add_done_callback(finished.put)

    # shipped files are held in memory until processed: keep two per worker in flight, not the whole batch
    window = 2 * max(len(client.scheduler_info().get("workers", {})), 1) if ship else len(todo)
    waiting = iter(todo)
    try:
        for path in itertools.islice(waiting, window):
            submit(path)
        while futures:
            if stop is not None and stop():
                raise KeyboardInterrupt
            try:
                fut = finished.get(timeout=0.1)
            except queue.Empty:
                continue
            path = futures.pop(fut)
            following = next(waiting, None)
            if following is not None:
                submit(following)
            if fut.status == "error":
                err = fut.exception()
                if isinstance(err, ParamError):
                    raise err
                item = {"input": str(path), "error": _one_line(err, path)}
                summary.failed.append(item)
                report("error", item)
                continue
            result = fut.result()
            if ship:
                name, data = result
                result = {"input": str(path), "output": str(_write_shipped(out_dir or path.parent, name, data)),
                          "skipped": False}
            summary.done.append(result)
            report("result", result)
    except KeyboardInterrupt:
        busy = set() if ship else {key for keys in client.processing().values() for key in keys}
        raise Interrupted(summary, [p for f, p in futures.items() if f.key in busy]) from None
    finally:
        client.cancel(list(futures))
    return summary


def _one_line(err: BaseException, path: Path) -> str:
    """A task's error as one line, without the file's path (the caller names the input)."""
    text = " ".join(str(err).split()) or type(err).__name__
    for name in (str(path.resolve()), str(path)):
        text = text.removeprefix(f"{name}: ")
    return text
