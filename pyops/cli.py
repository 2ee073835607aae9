"""`pyops` command line: `ops`, `run OP INPUT...`, `demo`. Operator flags are generated from the registry."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyops import __version__


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr (exit 2)."""

    def error(self, message):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message}\n")


def _literal(text: str) -> str:
    """`text` as argparse help: it %-formats help strings, so a % (as in "18 % grey") is written %%."""
    return str(text).replace("%", "%%")


def _output_dir(text: str) -> Path:
    """`-o DIR` of every operator command: a folder, or a new one whose parent exists (files.check_output_dir)."""
    from pyops.io.files import OutputError, check_output_dir

    try:
        return check_output_dir(Path(text))
    except OutputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _flag_help(d: dict) -> str:
    """A parameter's help line from the registry, ready for argparse (% escaped)."""
    parts = [d["help"]]
    if d.get("choices"):
        parts.append("one of: " + ", ".join(map(str, d["choices"])))
    if d.get("special"):
        parts.append("or: " + ", ".join(map(str, d["special"])))
    lo, hi = d.get("minimum", d.get("exclusive_minimum")), d.get("maximum", d.get("exclusive_maximum"))
    if lo is not None or hi is not None:
        parts.append(f"range {lo if lo is not None else '-∞'}..{hi if hi is not None else '∞'}")
    if d.get("unit"):
        parts.append(f"unit {d['unit']}")
    parts.append(f"default {d['default']}")
    return _literal("; ".join(parts))


BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def _bool_words(argv: list[str], flags: set[str]) -> list[str]:
    """Boolean parameters are flags (`--x` / `--no-x`); the older `--x true|false` and `--x=false` forms are
    rewritten to them."""
    out: list[str] = []
    words = iter(argv)
    for arg in words:
        name, eq, value = arg.partition("=")
        if name in flags and eq and value.lower() in BOOL_WORDS:
            out.append(name if BOOL_WORDS[value.lower()] else "--no-" + name[2:])
            continue
        out.append(arg)
        if arg in flags and not eq:
            following = next(words, None)
            if following is not None and following.lower() in BOOL_WORDS:
                out[-1] = arg if BOOL_WORDS[following.lower()] else "--no-" + arg[2:]
            elif following is not None:
                out.append(following)
    return out


def _build(ops) -> argparse.ArgumentParser:
    from pyops.io.images import FORMATS

    parser = _Parser(prog="pyops", description="Image operators for photographers.")
    parser.add_argument("--version", action="version", version=f"pyops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_ops = sub.add_parser("ops", help="list operators and their parameters")
    p_ops.add_argument("--format", choices=["text", "markdown", "json"], default="text")

    def operator_commands(parent, dest: str, extra=None, inputs="+"):
        """One sub-command per operator, its flags generated from the registry."""
        op_sub = parent.add_subparsers(dest=dest, required=True, metavar="OP", parser_class=_Parser)
        for op in ops:
            sp = op_sub.add_parser(op.name, help=_literal(op.summary), description=op.summary)
            sp.add_argument("inputs", nargs=inputs, metavar="INPUT", type=Path)
            sp.add_argument("-o", "--output-dir", type=_output_dir, help="folder for results (default: next to each "
                            "input; only its last folder is made)")
            sp.add_argument("--format", choices=sorted(FORMATS), help="output format (default: dng for raw-domain "
                            "results, else 16-bit linear TIFF)")
            sp.add_argument("--json", action="store_true", help="print JSON objects instead of text lines")
            if extra:
                extra(sp)
            for d in op.describe():
                flag, dest = f"--{d['name'].replace('_', '-')}", f"param_{d['name']}"
                if d["type"] == "bool":
                    sp.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, help=_flag_help(d))
                else:
                    sp.add_argument(flag, dest=dest, metavar="VALUE", help=_flag_help(d))

    def run_flags(sp):
        sp.add_argument("--max-memory-gb", type=float, help="refuse a file whose job is estimated to need more "
                        "(default: $PYOPS_MAX_MEMORY_GB, else 70 %% of the RAM)")
        sp.add_argument("--scheduler", metavar="ADDRESS", help="run the tiles of each image on this Dask scheduler's "
                        "workers (tcp://host:8786; operators that work in tiles, on 8/16-bit or float TIFFs that the "
                        "workers reach at the same path)")

    operator_commands(sub.add_parser("run", help="run an operator on files, in this process"), "op", run_flags)

    def batch_flags(sp):
        sp.add_argument("--from-list", type=Path, metavar="FILE", help="read input paths from FILE, one per line")
        sp.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (tcp://host:8786); default: "
                        "a local cluster with one worker per core")
        sp.add_argument("--workers", type=int, help="workers of the local cluster (default: one per core)")
        sp.add_argument("--ship", action="store_true", help="send the files' bytes to the workers instead of sharing "
                        "paths (workers without the same storage)")

    operator_commands(sub.add_parser("batch", help="run an operator on many files on a Dask cluster (resumable)"),
                      "op", batch_flags, inputs="*")

    p_serve = sub.add_parser("serve", help="start the operator server (see README: security model)")
    p_serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p_serve.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p_serve.add_argument("--allow-root", action="append", type=Path, default=[], metavar="DIR",
                         help="folder whose files jobs may read and write (repeatable; default: your home)")
    p_serve.add_argument("--workers", type=int, default=1, help="jobs run at once (default 1; others queue)")
    p_serve.add_argument("--max-megapixels", type=float, default=200.0, help="refuse larger images (default 200)")
    p_serve.add_argument("--max-memory-gb", type=float, help="refuse a job whose estimated memory is larger "
                         "(default: 70 %% of the RAM divided by --workers)")
    p_serve.add_argument("--job-timeout", type=float, default=3600.0, help="per-job time limit in s (default 3600)")
    p_serve.add_argument("--spool-quota-mb", type=float, default=4096.0, help="room for uploads and upload-mode "
                         "results in MB (default 4096); an upload past it is refused (HTTP 507)")
    p_serve.add_argument("--spool-ttl", type=float, default=3600.0, help="s an unused upload or an unfetched result "
                         "is kept (default 3600)")
    p_serve.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback interface")
    p_serve.add_argument("--detach", action="store_true", help="run in the background and return when it answers")
    p_serve.add_argument("--scheduler", metavar="ADDRESS", help="hand jobs of several files (path mode) to this Dask "
                         "scheduler, as `pyops batch` does")

    p_client = sub.add_parser("client", help="use the operator server (started on demand)")
    client_sub = p_client.add_subparsers(dest="client_command", required=True, parser_class=_Parser)
    operator_commands(client_sub.add_parser("run", help="run an operator through the server"), "op",
                      lambda sp: sp.add_argument("--upload", action="store_true",
                                                 help="send the pixels instead of sharing paths"))
    p_schema = client_sub.add_parser("schema", help="operator schemas for the darktable and GIMP shims")
    p_schema.add_argument("--format", choices=["lua", "json"], default="json")
    client_sub.add_parser("status", help="is a server running, and where")
    p_stop = client_sub.add_parser("stop", help="stop the running server")
    p_stop.add_argument("--timeout", type=float, default=15.0, help="s to wait for it to exit (default 15)")

    p_prov = sub.add_parser("provenance", help="print how a pyops result was made (its embedded XMP record)")
    p_prov.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p_prov.add_argument("--json", action="store_true")

    p_psf = sub.add_parser("psf", help="the PSF library: list, save, show, estimate, delete")
    psf_sub = p_psf.add_subparsers(dest="psf_command", required=True, parser_class=_Parser)
    psf_sub.add_parser("list", help="names in the PSF library")
    p_save = psf_sub.add_parser("save", help="store a PSF (a model spec or a file) under a name")
    p_save.add_argument("name")
    p_save.add_argument("source", help="a spec such as motion:length=15,angle=30, or a .npy/PNG/TIFF file")
    p_save.add_argument("--replace", action="store_true", help="replace a PSF of that name (otherwise it is kept "
                        "and the new one saved as NAME_01, NAME_02, …)")
    p_delete = psf_sub.add_parser("delete", help="remove a PSF from the library")
    p_delete.add_argument("name")
    p_show = psf_sub.add_parser("show", help="render a PSF enlarged with its profiles")
    p_show.add_argument("psf", help="a library name, a file or a spec")
    p_show.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    p_est = psf_sub.add_parser("estimate", help="measure the blur of a photo blind and save it in the library")
    p_est.add_argument("image", type=Path, help="the blurred photo (raw, TIFF, PNG, JPEG)")
    for flag, d in ((f"--{d['name']}", d) for d in next(o for o in ops if o.name == "psf_estimate").describe()):
        if d["type"] == "bool":
            p_est.add_argument(flag, action="store_true", help=d["help"])
        else:
            p_est.add_argument(flag, default=d["default"], help=_flag_help(d))
    p_est.add_argument("--preview", type=Path, help="also write the kernel's picture to this PNG")

    p_demo = sub.add_parser("demo", help="make an underexposed synthetic raw, run twostop, show the gain")
    p_demo.add_argument("-o", "--output-dir", type=Path, default=Path("pyops-demo"))
    return parser


def _print_ops(ops, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([{"name": o.name, "summary": o.summary, "params": o.describe()} for o in ops],
                         indent=1, default=str))
        return
    for op in ops:
        if fmt == "markdown":
            print(f"### `{op.name}`\n\n{op.summary}.\n\n| parameter | values | default | unit | meaning |\n"
                  "|---|---|---|---|---|")
        else:
            print(f"{op.name}: {op.summary}")
        for d in op.describe():
            values = ", ".join(map(str, d.get("choices") or [])) or d["type"]
            lo, hi = d.get("minimum", d.get("exclusive_minimum")), d.get("maximum")
            if lo is not None or hi is not None:
                values += f" {lo}..{hi}"
            if d.get("special"):
                values += " or " + ", ".join(map(str, d["special"]))
            if fmt == "markdown":
                print(f"| `{d['name']}` | {values} | `{d['default']}` | {d['unit']} | {d['help']} |")
            else:
                print(f"  --{d['name'].replace('_', '-'):<12} {values:<34} default {d['default']}  {d['help']}")
        print()


def _summary(info: dict) -> str:
    keys = ("ev", "binning_ev", "clipped_fraction", "gamma", "exponent", "cfa", "format", "saved_as")
    bits = [f"{k}={info[k]:.4g}" if isinstance(info[k], float) else f"{k}={info[k]}" for k in keys if k in info]
    return ", ".join(bits + [f"note: {n}" for n in info.get("notes", [])])


def _params(args, op):
    """The operator's parameters from the command line, or None after printing the error."""
    from pyops.registry import ParamError

    values = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    try:
        return op.parse(values)
    except ParamError as err:
        print(f"pyops: error: {err}", file=sys.stderr)
        return None


def _run(args, op) -> int:
    from tqdm import tqdm

    from pyops import memory
    from pyops.io.files import InputError
    from pyops.process import process_file
    from pyops.registry import ParamError

    params = _params(args, op)
    if params is None:
        return 2
    try:
        limit = memory.limit_from(args.max_memory_gb)
    except ValueError as err:
        print(f"pyops: error: {err}", file=sys.stderr)
        return 2
    too_big = [r for r in (memory.refusal(op, params, p, limit, "pyops run allows", args.format) for p in args.inputs) if r]
    for reason in too_big:  # before anything is decoded
        print(f"pyops: {reason} (--max-memory-gb or {memory.ENV})", file=sys.stderr)
    if too_big:
        return 2
    client = None
    if args.scheduler:
        from pyops import batch

        try:
            client = batch.connect(args.scheduler, None)
        except (OSError, TimeoutError) as err:
            print(f"pyops: run: cannot reach the Dask scheduler {args.scheduler}: {err}", file=sys.stderr)
            return 2
    failed = written = 0
    # on a terminal (only): a bar driven by the operator's progress, so one long file shows its progress too
    bar = tqdm(total=len(args.inputs), unit="file", file=sys.stderr, disable=None,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def progress(fraction: float, message: str) -> None:
        bar.set_description_str(f"{path.name}: {message}" if message else path.name, refresh=False)
        bar.update(i + fraction - bar.n)

    try:
        for i, path in enumerate(args.inputs):
            progress(0.0, "")
            try:
                out = process_file(op.name, params, path, args.output_dir, args.format, progress, client=client)
            except ParamError as err:  # a bad parameter found while running (a PSF, a format): all files fail
                tqdm.write(f"pyops: error: {err}", file=sys.stderr)
                return 2
            except (InputError, ValueError, OSError) as err:
                failed += 1
                bar.update(i + 1 - bar.n)
                tqdm.write(f"pyops: {op.name}: {err}", file=sys.stderr)
                continue
            written += 1
            bar.update(i + 1 - bar.n)
            if args.json:
                tqdm.write(json.dumps({"input": str(path), "output": str(out.output), "info": out.info}, default=str))
            else:
                tqdm.write(f"{path} -> {out.output} ({_summary(out.info)})")
    except KeyboardInterrupt:
        bar.close()
        print(f"pyops: interrupted during {path.name}; {written} of {len(args.inputs)} results written "
              "(kept)", file=sys.stderr)
        return 130
    finally:
        bar.close()
        if client is not None:
            client.close()
    return 1 if failed else 0


def _batch(args, op) -> int:
    import signal
    import threading

    stop = threading.Event()  # Ctrl-C and SIGTERM only set this and the batch polls it, so none is lost
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _batch_until(args, op, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _batch_until(args, op, stop) -> int:
    """`pyops batch` until done or `stop` is set (then exit 130 saying how many results exist)."""
    import logging

    from tqdm import tqdm

    from pyops import batch
    from pyops.registry import ParamError

    params = _params(args, op)
    if params is None:
        return 2
    inputs = list(args.inputs)
    if args.from_list:
        try:
            inputs += [Path(line.strip()) for line in args.from_list.read_text().splitlines() if line.strip()]
        except OSError as err:
            print(f"pyops: batch: {err}", file=sys.stderr)
            return 2
    if not inputs:
        print("pyops: batch: no input files (give paths or --from-list FILE)", file=sys.stderr)
        return 2
    try:
        client = batch.connect(args.scheduler, args.workers)
    except (OSError, TimeoutError, ValueError) as err:
        print(f"pyops: batch: cannot reach the Dask scheduler {args.scheduler}: {err}", file=sys.stderr)
        return 2
    bar = tqdm(total=len(inputs), unit="file", file=sys.stderr)
    workers = len(client.scheduler_info().get("workers", {}))
    tqdm.write(f"pyops batch: {len(inputs)} files, {workers} workers, dashboard {client.dashboard_link}",
               file=sys.stderr)

    def event(kind: str, item: dict) -> None:
        bar.update(1)
        if kind == "error":
            tqdm.write(f"pyops: {op.name}: {item['input']}: {item['error']}", file=sys.stderr)
        elif args.json:
            tqdm.write(json.dumps(dict(item, event=kind)))
        else:
            tqdm.write(f"{item['input']} -> {item['output']}" + (" (already done)" if kind == "skipped" else ""))

    interrupted = None
    try:
        summary = batch.run(op.name, params.model_dump(), inputs, client, args.output_dir, args.format, args.ship,
                            event, stop.is_set)
    except batch.Interrupted as err:
        interrupted = err
    except ParamError as err:
        tqdm.write(f"pyops: batch: error: {err}", file=sys.stderr)
        return 2
    finally:
        bar.close()
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # no CancelledError noise while closing
        client.close()
        if client.cluster is not None:
            client.cluster.close()
    if interrupted is not None:  # a task that was running may have written its result before the cluster closed
        done, values = interrupted.summary.done, params.model_dump(mode="json")
        late = [p for p in interrupted.in_flight
                if batch.existing_result(p, op.name, values, args.output_dir or p.parent)]
        already = sum(d["skipped"] for d in done)
        new, failed = len(done) - already + len(late), len(interrupted.summary.failed)
        print(f"pyops batch: interrupted: {new} new results written ({already} already there, {failed} failed), "
              f"{len(inputs) - already - new - failed} to do; run the same command again to do the rest",
              file=sys.stderr)
        return 130
    print(f"pyops batch: {len(summary.done)} done ({sum(d['skipped'] for d in summary.done)} already), "
          f"{len(summary.failed)} failed", file=sys.stderr)
    return 1 if summary.failed else 0


def _provenance(files: list[Path], as_json: bool) -> int:
    from pyops import provenance

    failed = 0
    for path in files:
        rec = provenance.read(path) if path.is_file() else None
        if rec is None:
            failed += 1
            print(f"pyops: provenance: {path}: {'no pyops provenance in this file' if path.is_file() else 'no such file'}",
                  file=sys.stderr)
        elif as_json:
            print(json.dumps(dict(rec, file=str(path))))
        else:
            print(f"{path}\n  made by pyops {rec['pyops_version']} on {rec['created']}\n  operator {rec['operator']} "
                  f"{json.dumps(rec['parameters'], sort_keys=True)}\n  from {rec['source']} (sha256 {rec['source_sha256']})"
                  f"\n  measured {json.dumps(rec['info'], sort_keys=True)}")
    return 1 if failed else 0


def _client(args, ops) -> int:
    from pyops import client

    if args.client_command == "schema":
        sys.stdout.write(client.schema(args.format))
        return 0
    if args.client_command == "status":
        try:
            conn = client.connect(start=False)
            health = conn.json("GET", "/v1/health")
        except (ConnectionError, OSError, client.ServerError) as err:
            print(f"pyops: {err}", file=sys.stderr)
            return 1
        info = conn.info
        jobs = ", ".join(f"{n} {s}" for s, n in health["jobs"].items() if n) or "none"
        print(f"pyops server {health['version']}: pid {info['pid']}, {info['url']}\n"
              f"  roots: {', '.join(info['roots'])}\n  jobs: {jobs}")
        return 0
    if args.client_command == "stop":
        return client.stop(args.timeout)
    op = next(o for o in ops if o.name == args.op)
    params = _params(args, op)
    if params is None:
        return 2
    return client.run(op.name, params.model_dump(mode="json"), args.inputs, args.output_dir, args.format,
                      args.upload, args.json)


def _psf(args) -> int:
    from pyops.io.files import check_input, write_atomic
    from pyops.ops.deconv import psf as psfmod
    from pyops.psf_view import render

    try:
        if args.psf_command == "list":
            for name in psfmod.names():
                meta = psfmod.record(name)
                print(f"{name}\t{meta.get('shape')}\t{meta.get('made_by', '')}")
            return 0
        if args.psf_command == "save":
            kernel = psfmod.resolve(args.source)
            name = psfmod.save(args.name, kernel, {"made_by": "pyops psf save", "source": args.source}, args.replace)
            print(f"saved {name}: {psfmod.describe(kernel)} in {psfmod.library_dir() / name}.npy")
            return 0
        if args.psf_command == "delete":
            psfmod.delete(args.name)
            print(f"deleted {args.name}")
            return 0
        if args.psf_command == "estimate":
            from pyops.io.images import load_input
            from pyops.operators.psf_estimate import library_name
            from pyops.registry import execute, get

            values = {d["name"]: getattr(args, d["name"]) for d in get("psf_estimate").describe()}
            values["name"] = args.name or library_name(args.image.stem)
            image = load_input(check_input(args.image), False)[0]
            res = execute("psf_estimate", image, values)
            kernel, title, out = res.data, res.info["saved_as"], args.preview
            where = (f"measured in {len(res.info['zones'])} zones" if kernel.ndim == 4 else
                     f"measured on region {','.join(map(str, res.info['region']))}")
            print(f"saved {title}: {psfmod.describe(kernel)}, {where} of {args.image.name}")
            for note in res.info.get("notes", []):
                print(f"pyops: warning: {note}", file=sys.stderr)
            if out is None:
                return 0
        else:
            kernel, title, out, image = psfmod.resolve(args.psf), args.psf, args.output, None
        final = write_atomic(out.parent if str(out.parent) else Path("."), lambda n: out.name if n == 0 else
                             f"{out.stem}_{n:02d}{out.suffix}", ".png", lambda tmp: render(kernel, title, tmp, image))
        print(final)
        return 0
    except (ValueError, OSError) as err:
        print(f"pyops: psf: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    from pyops.registry import operators

    ops = operators()
    flags = {f"--{d['name'].replace('_', '-')}" for op in ops for d in op.describe() if d["type"] == "bool"}
    args = _build(ops).parse_args(_bool_words(sys.argv[1:] if argv is None else list(argv), flags))
    if args.command == "ops":
        _print_ops(ops, args.format)
        return 0
    if args.command == "run":
        return _run(args, next(o for o in ops if o.name == args.op))
    if args.command == "batch":
        return _batch(args, next(o for o in ops if o.name == args.op))
    if args.command == "serve":
        from pyops.server.main import serve

        return serve(args.host, args.port, args.allow_root, args.workers, args.detach, args.max_megapixels,
                     args.job_timeout, args.allow_remote, (argv if argv is not None else sys.argv[1:])[1:],
                     args.scheduler, args.spool_quota_mb, args.spool_ttl, args.max_memory_gb)
    if args.command == "client":
        return _client(args, ops)
    if args.command == "psf":
        return _psf(args)
    if args.command == "provenance":
        return _provenance(args.files, args.json)
    if args.command == "demo":
        from pyops.demo import demo
        from pyops.io.files import OutputError

        try:
            return demo(args.output_dir)
        except OutputError as err:
            print(f"pyops: demo: {err}", file=sys.stderr)
            return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
