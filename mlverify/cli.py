"""The ``mlverify`` command line (DESIGN.md §4).

Exit codes: 0 success, 1 a theorem's conclusion was violated (or had fewer qualifying trials than
asked), 2 bad usage (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .cli_bench import add_bench_parser
from .cli_sweep import add_sweep_parser


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cuda_row() -> str:
    """The CUDA target: the device or the simulator, or why engine="cuda" is not usable."""
    from ._cuda import info

    cuda = info()
    if not cuda["available"]:
        return f"not available ({cuda['reason']})"
    return f"{cuda['device']}, {cuda['implementation']}"


def info_rows() -> list[tuple[str, str]]:
    """What ``mlverify info`` prints, as (key, value) rows."""
    from . import __version__
    from ._validate import ENGINES
    from .kernels import cpu

    rows = [("mlverify", __version__), ("python", platform.python_version())]
    for dist in ("numpy", "scipy", "numba", "llvmlite", "numba-cuda", "hypothesis", "asv"):
        rows.append((dist, _version(dist)))
    rows += [
        ("engines", ", ".join(e for e in ENGINES if e != "auto") + " (auto = cpu)"),
        ("cuda", _cuda_row()),
        *cpu.threading_info().items(),
        ("machine", f"{platform.machine()}, {platform.system()} {platform.release()}"),
    ]
    return rows


def _cmd_info(_: argparse.Namespace, console: Console) -> int:
    table = Table(title="mlverify info", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in info_rows():
        table.add_row(key, value)
    console.print(table)
    return 0


#: ``--quick``: qualifying trials per theorem and tightness-search budget (CI: within 30 s).
QUICK = {"trials": 20, "search": 4}
#: Defaults of a full run (within 2 minutes on 2 cores).
FULL = {"trials": 200, "search": 20}


def _cmd_verify(args: argparse.Namespace, console: Console) -> int:
    from .theorems import registry
    from .verify import report, runner

    theorems = registry()
    if args.list:
        for theorem in theorems.values():
            console.print(f"[bold]{theorem.id}[/bold] [{theorem.status}] {theorem.paper}: "
                          f"{theorem.statement}")
        return 0
    if args.replay is not None:
        return _replay(args.replay, console)
    unknown = [i for i in args.theorem or () if i not in theorems]
    if unknown:
        args.parser.error(f"unknown theorem(s) {', '.join(unknown)}; known: {', '.join(theorems)}")
    ids = list(dict.fromkeys(args.theorem or theorems))
    preset = QUICK if args.quick else FULL
    target = args.trials if args.trials is not None else preset["trials"]
    budget = args.search if args.search is not None else preset["search"]
    start = time.perf_counter()
    with _progress(console) as bar:
        rows = {i: bar.add_task(i, total=target + budget) for i in ids}
        reports = runner.run(ids, target, args.seed, args.engine, workers=args.workers,
                             search_budget=budget,
                             progress=lambda i, n: bar.advance(rows[i], n))
    wall = time.perf_counter() - start
    console.print(report.table(reports))
    for r in reports:
        if r.fitted:
            fitted = ", ".join(f"{k} = {v:.3g}" for k, v in r.fitted.items())
            console.print(f"[cyan]fitted[/cyan] {r.id} (reported, not asserted): {fitted}")
        for f in r.findings:
            state = "reproduced" if f["reproduced"] else "NOT reproduced"
            console.print(f"[yellow]finding[/yellow] {r.id} (seed {f['seed']}, knob {f['knob']}, "
                          f"{state}): {f['reason']}")
    document = report.as_json(reports, seed=args.seed, engine=args.engine, target=target,
                              wall_seconds=wall)
    if args.json is not None:
        report.write_json(Path(args.json), document)
    if args.report is not None:
        console.print(f"report: {report.write_report(Path(args.report), reports, document)}")
    failed = [r for r in reports if r.status in ("violated", "insufficient")]
    if any(r.violations for r in reports):
        saved = _save_violations(Path(args.report or "mlverify-violations"), reports)
        console.print(f"[bold red]{document['violations']} violation(s)[/bold red]; instances "
                      f"saved for --replay: {', '.join(map(str, saved))}")
    for r in failed:
        if r.status == "insufficient":
            console.print(f"[red]{r.id}: only {r.hypotheses_met} of {r.floor} trials met the "
                          "hypotheses[/red]")
    console.print(f"{len(reports)} theorems, {sum(r.hypotheses_met for r in reports)} qualifying "
                  f"instances, {document['violations']} violations, {wall:.1f} s")
    return 1 if failed else 0


def _progress(console: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)


def _save_violations(directory: Path, reports) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in reports:
        for k, spec in enumerate(r.violating):
            path = directory / f"violation-{r.id}-{k}.json"
            path.write_text(json.dumps(spec, indent=2) + "\n")
            paths.append(path)
    return paths


def _replay(path: str, console: Console) -> int:
    from .theorems import get
    from .verify.runner import run_trial

    spec = json.loads(Path(path).read_text())
    theorem = get(spec["theorem"])
    engine = spec.get("engine", "auto")
    record = run_trial(theorem, int(spec["seed"]), int(spec["trial"]), float(spec["knob"]), engine)
    instance = theorem.sample(theorem.rng(int(spec["seed"]), int(spec["trial"])),
                              float(spec["knob"]))
    margins = theorem.hypotheses(instance)
    console.print(f"{theorem!r}")
    for name, margin in margins.items():
        console.print(f"  hypothesis {name}: margin {margin:.6g}")
    console.print(f"  measured {record.measured:.6g}, bound {record.bound:.6g}, ratio "
                  f"{record.ratio:.6g}: conclusion {'holds' if record.holds else 'VIOLATED'}")
    return 0 if record.holds or not record.met else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every implemented subcommand."""
    parser = argparse.ArgumentParser(
        prog="mlverify",
        description="Fast kernels and executable theorems for multi-layer convolutional sparse "
        "coding.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, engines and threads")
    info.set_defaults(run=_cmd_info)

    verify = sub.add_parser(
        "verify", help="check every theorem on constructed instances",
        description="Check each theorem of THEORY.md §4 on instances built to meet its "
        "hypotheses; report how many met them, how many violated the conclusion and how tight "
        "the bound was. Exit 0: no violation; 1: a violation (instances saved for --replay) or "
        "too few qualifying trials; 2: bad usage.")
    verify.add_argument("--theorem", action="append", metavar="ID",
                        help="theorem id (repeatable; default: all, see --list)")
    verify.add_argument("--trials", type=_positive_int, metavar="N",
                        help=f"qualifying trials per theorem (default {FULL['trials']}, "
                        f"--quick {QUICK['trials']})")
    verify.add_argument("--search", type=_nonnegative_int, metavar="N",
                        help=f"tightness-search instances per theorem (default {FULL['search']}, "
                        f"--quick {QUICK['search']})")
    verify.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    verify.add_argument("--engine", choices=("auto", "numpy", "cpu"), default="auto")
    verify.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1,
                        help="processes (default: all cores); results do not depend on it")
    verify.add_argument("--quick", action="store_true", help="a short run (CI)")
    verify.add_argument("--json", metavar="PATH", help="write the JSON report here")
    verify.add_argument("--report", metavar="DIR",
                        help="write report.md, report.json and one PNG per theorem (needs "
                        "matplotlib)")
    verify.add_argument("--replay", metavar="FILE", help="re-run one saved instance")
    verify.add_argument("--list", action="store_true", help="list the theorems and exit")
    verify.set_defaults(run=_cmd_verify, parser=verify)

    add_sweep_parser(sub)
    add_bench_parser(sub)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlverify`` console script."""
    args = build_parser().parse_args(argv)
    # Pipes and CI logs get a fixed, wide table instead of rich's 80-column default.
    return args.run(args, Console(width=None if sys.stdout.isatty() else 120))


if __name__ == "__main__":
    sys.exit(main())
