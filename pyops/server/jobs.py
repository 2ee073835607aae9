"""Jobs: a FIFO queue run by a bounded pool of worker threads (default one heavy job at a time), cooperative
cancel and time limit through the operators' progress callback, per-file results and errors."""
from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyops.io.files import InputError
from pyops.process import process_file
from pyops.registry import Cancelled, ParamError, Params

log = logging.getLogger("pyops.server")
TERMINAL = {"done", "failed", "cancelled"}
STOPPED = "the pyops server stopped while running this job"


class TimeLimit(Cancelled):
    """The job ran past the server's per-job time limit."""


@dataclass
class FileResult:
    input: str
    output: Path | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    operator: str
    params: Params
    inputs: list[Path]
    names: list[str]  # what the client calls each input (its path, or an upload's file name)
    out_dir: Path | None
    fmt: str | None
    mode: str = "path"  # or "upload"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    state: str = "queued"
    progress: float = 0.0
    message: str = "queued"
    results: list[FileResult] = field(default_factory=list)
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    version: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    cleanup: list[Path] = field(default_factory=list)  # spool folders (its uploads) removed when the job ends
    ended: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "operator": self.operator, "params": self.params.model_dump(), "mode": self.mode,
            "state": self.state, "progress": round(self.progress, 4), "message": self.message,
            "inputs": self.names, "error": self.error, "created": self.created, "started": self.started,
            "finished": self.finished,
            "results": [{"input": r.input, "error": r.error, "info": r.info,
                         "output": None if r.output is None else (str(r.output) if self.mode == "path" else r.output.name),
                         "download": None if r.output is None or self.mode == "path"
                         else f"/v1/jobs/{self.id}/results/{i}"} for i, r in enumerate(self.results)],
        }


class JobManager:
    def __init__(self, workers: int = 1, time_limit: float = 3600.0, scheduler: str | None = None):
        self.jobs: dict[str, Job] = {}
        self.time_limit = time_limit
        self.scheduler = scheduler  # a Dask scheduler for jobs of several files in path mode
        self._dask = None
        self._lock = threading.Lock()
        self.stopping = threading.Event()  # set when the server shuts down: jobs and event streams end
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pyops-job")

    def submit(self, job: Job) -> Job:
        with self._lock:
            self.jobs[job.id] = job
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def cancel(self, job: Job) -> None:
        job.cancel.set()
        with self._lock:
            if job.state == "queued":
                why = STOPPED if self.stopping.is_set() else None
                self._finish(job, "cancelled", "cancelled before it started", why)

    def active(self) -> list[Job]:
        """Jobs that are queued or running."""
        return [j for j in list(self.jobs.values()) if j.state not in TERMINAL]

    def counts(self) -> dict[str, int]:
        states = [j.state for j in list(self.jobs.values())]
        return {s: states.count(s) for s in ("queued", "running", "done", "failed", "cancelled")}

    def stop(self) -> None:
        """Begin shutting down: every job is asked to cancel, event streams end. Safe in a signal handler (no
        locks taken)."""
        self.stopping.set()
        for job in list(self.jobs.values()):
            job.cancel.set()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel every job and wait up to `timeout` s for the running ones to stop (they stop at their next
        progress report). False if one is still running (the caller exits anyway: writes are atomic)."""
        self.stop()
        for job in self.active():
            self.cancel(job)
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        stopped = all(job.ended.wait(max(deadline - time.monotonic(), 0)) for job in self.active())
        if self._dask is not None:
            self._dask.close()
        return stopped

    def _run_here(self, job: Job, deadline: float) -> None:
        """The job's files one after the other in this process, each result recorded as it ends."""
        n = len(job.inputs)
        for i, (path, name) in enumerate(zip(job.inputs, job.names)):
            def progress(fraction: float, message: str, i=i, name=name) -> None:
                if job.cancel.is_set():
                    raise Cancelled()
                if time.time() > deadline:
                    raise TimeLimit()
                self._update(job, (i + fraction) / n, f"{message} {Path(name).name}")

            progress(0.0, "starting")
            result = FileResult(name)
            try:
                out = process_file(job.operator, job.params, path, job.out_dir, job.fmt, progress,
                                   source_name=name if job.mode == "upload" else None)
                result.output, result.info = out.output, out.info
            except (InputError, ParamError, ValueError, OSError) as err:
                result.error = str(err).replace(str(path), name)
            except Cancelled:
                raise
            except Exception as err:  # a bug or a library failure on one file: report it, go on
                log.exception("job %s: %s failed", job.id, name)
                result.error = f"internal error: {type(err).__name__}: {err}"
            job.results.append(result)
            self._update(job, (i + 1) / n, f"{'failed' if result.error else 'done'} {Path(name).name}")

    def _run_on_cluster(self, job: Job, deadline: float) -> None:
        """Every file of `job` as a task of the batch engine on the Dask cluster (same results as `pyops batch`:
        a file with a complete result of the same source and parameters keeps it)."""
        from distributed import Client

        from pyops import batch

        if self._dask is None:
            self._dask = Client(self.scheduler, timeout="30s")
        params = job.params.model_dump(mode="json")
        out_dir = str(job.out_dir) if job.out_dir else None
        futures = [self._dask.submit(batch.process_one, job.operator, params, str(p), out_dir, job.fmt, pure=False)
                   for p in job.inputs]
        try:
            while True:
                if job.cancel.is_set():
                    raise Cancelled()
                if time.time() > deadline:
                    raise TimeLimit()
                finished = sum(f.done() for f in futures)
                self._update(job, finished / len(futures), f"{finished} of {len(futures)} files done on the cluster")
                if finished == len(futures):
                    break
                time.sleep(0.1)
        except (Cancelled, TimeLimit):
            self._dask.cancel(futures)
            raise
        for fut, name in zip(futures, job.names):
            result = FileResult(name)
            if fut.status == "error":
                result.error = str(fut.exception())
            else:
                done = fut.result()
                result.output = Path(done["output"])
                result.info = dict(done.get("info", {}), worker=done["worker"], already_done=done["skipped"])
            job.results.append(result)

    def _update(self, job: Job, progress: float | None = None, message: str | None = None) -> None:
        if progress is not None:
            job.progress = min(max(progress, job.progress), 1.0)
        if message is not None:
            job.message = message
        job.version += 1

    def _finish(self, job: Job, state: str, message: str, error: str | None = None) -> None:
        for folder in job.cleanup:
            shutil.rmtree(folder, ignore_errors=True)
        job.state, job.message, job.error, job.finished = state, message, error, time.time()
        job.version += 1
        job.ended.set()

    def _run(self, job: Job) -> None:
        with self._lock:
            if job.state != "queued":
                return
            job.state, job.started = "running", time.time()
            self._update(job, 0.0, "started")
        deadline = job.started + self.time_limit
        n = len(job.inputs)
        try:
            if self.scheduler and n > 1 and job.mode == "path":
                self._run_on_cluster(job, deadline)
            else:
                self._run_here(job, deadline)
        except TimeLimit:
            self._finish(job, "failed", "time limit", f"time limit of {self.time_limit:g} s exceeded")
            return
        except Cancelled:
            if self.stopping.is_set():
                self._finish(job, "cancelled", "server stopped", STOPPED)
            else:
                self._finish(job, "cancelled", "cancelled")
            return
        failed = sum(r.error is not None for r in job.results)
        if failed == n:
            self._finish(job, "failed", "failed", job.results[0].error if n == 1 else f"all {n} files failed")
        else:
            self._finish(job, "done", f"done ({n - failed} of {n})")
