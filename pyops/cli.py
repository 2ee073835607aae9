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


def _flag_help(d: dict) -> str:
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
    return "; ".join(parts)


def _build(ops) -> argparse.ArgumentParser:
    from pyops.io.images import FORMATS

    parser = _Parser(prog="pyops", description="Image operators for photographers.")
    parser.add_argument("--version", action="version", version=f"pyops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p_ops = sub.add_parser("ops", help="list operators and their parameters")
    p_ops.add_argument("--format", choices=["text", "markdown", "json"], default="text")

    p_run = sub.add_parser("run", help="run an operator on files")
    run_sub = p_run.add_subparsers(dest="op", required=True, metavar="OP", parser_class=_Parser)
    for op in ops:
        sp = run_sub.add_parser(op.name, help=op.summary, description=op.summary)
        sp.add_argument("inputs", nargs="+", metavar="INPUT", type=Path)
        sp.add_argument("-o", "--output-dir", type=Path, help="folder for results (default: next to each input)")
        sp.add_argument("--format", choices=sorted(FORMATS), help="output format (default: dng for raw-domain "
                        "results, else 16-bit linear TIFF)")
        sp.add_argument("--json", action="store_true", help="print one JSON object per file")
        for d in op.describe():
            sp.add_argument(f"--{d['name'].replace('_', '-')}", dest=f"param_{d['name']}", metavar="VALUE",
                            help=_flag_help(d))

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
                print(f"  --{d['name']:<12} {values:<34} default {d['default']}  {d['help']}")
        print()


def _summary(info: dict) -> str:
    keys = ("ev", "binning_ev", "clipped_fraction", "gamma", "exponent", "cfa", "format")
    bits = [f"{k}={info[k]:.4g}" if isinstance(info[k], float) else f"{k}={info[k]}" for k in keys if k in info]
    return ", ".join(bits + [f"note: {n}" for n in info.get("notes", [])])


def _run(args, op) -> int:
    from tqdm import tqdm

    from pyops.io.files import InputError
    from pyops.process import process_file
    from pyops.registry import ParamError

    values = {k[len("param_"):]: v for k, v in vars(args).items() if k.startswith("param_") and v is not None}
    try:
        params = op.parse(values)
    except ParamError as err:
        print(f"pyops: error: {err}", file=sys.stderr)
        return 2
    failed = 0
    bar = tqdm(args.inputs, unit="file", disable=True if len(args.inputs) < 2 else None,
               file=sys.stderr)
    for path in bar:
        bar.set_description(path.name)
        try:
            out = process_file(op.name, params, path, args.output_dir, args.format)
        except (InputError, ParamError, ValueError, OSError) as err:
            failed += 1
            tqdm.write(f"pyops: {op.name}: {err}", file=sys.stderr)
            continue
        if args.json:
            tqdm.write(json.dumps({"input": str(path), "output": str(out.output), "info": out.info}, default=str))
        else:
            tqdm.write(f"{path} -> {out.output} ({_summary(out.info)})")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    from pyops.registry import operators

    ops = operators()
    args = _build(ops).parse_args(argv)
    if args.command == "ops":
        _print_ops(ops, args.format)
        return 0
    if args.command == "run":
        return _run(args, next(o for o in ops if o.name == args.op))
    if args.command == "demo":
        from pyops.demo import demo

        return demo(args.output_dir)
    return 2


if __name__ == "__main__":
    sys.exit(main())
