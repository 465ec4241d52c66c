"""``mlverify bench``: the side-by-side comparisons of DESIGN.md §7.

Wired into :mod:`mlverify.cli` by ``add_bench_parser(subparsers)``. Exit codes: 0 done (times
never fail the command, missing peers are reported as skipped), 2 bad usage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``subparsers``; return it."""
    from .bench.suite import COMPARISONS

    bench = subparsers.add_parser(
        "bench", help="side-by-side benchmarks against SPORCO, alphacsc and PyTorch",
        description="Run each comparison with both contenders in this process, on the same "
        "data and threads, print the ratios and write BENCHMARKS.md, benchmarks.json and "
        "benchmarks.png under --out. Peers come with the 'compare' extra "
        "(pip install 'mlverify[compare]'); a missing peer is reported as skipped.")
    bench.add_argument("names", nargs="*", metavar="NAME",
                       help=f"comparisons to run (default: all of {', '.join(COMPARISONS)})")
    bench.add_argument("--list", action="store_true", help="list the comparisons and exit")
    bench.add_argument("--quick", action="store_true", help="shorter variants (smoke test)")
    bench.add_argument("--threads", type=int, default=None,
                       help="threads for every contender (default: Numba's count; 1 for "
                       "csc1d, whose peer is single-threaded)")
    bench.add_argument("--out", metavar="DIR", default=None,
                       help="directory of the report files (default: reports for the full run "
                       "of every comparison; reports/partial for --quick or a subset, so that "
                       "a partial run never replaces the full report)")
    bench.set_defaults(run=_cmd_bench, parser=bench)
    return bench


def _cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from .bench.suite import COMPARISONS, run, write_report

    if args.list:
        for name, (_, description) in COMPARISONS.items():
            console.print(f"{name:10s} {description}")
        return 0
    names = args.names or list(COMPARISONS)
    unknown = [name for name in names if name not in COMPARISONS]
    if unknown or (args.threads is not None and args.threads < 1):
        console.print(f"[red]unknown comparison(s) {unknown}[/red]; see --list" if unknown
                      else "[red]--threads must be >= 1[/red]")
        return 2
    with console.status("benchmarking") as status:
        comparisons = run(names, quick=args.quick, threads=args.threads,
                          announce=lambda name: status.update(f"benchmarking {name} …"))
    for comparison in comparisons:
        console.print(f"[bold]{comparison.title}[/bold] — peer: {comparison.peer}")
        if comparison.skipped:
            console.print(f"  skipped: {comparison.skipped}")
        for m in comparison.metrics:
            verdict = "" if m.met is None else ("  [green]goal met[/green]" if m.met
                                                else f"  [red]goal {m.goal:g}× not met[/red]")
            console.print(f"  {m.name}: ratio {m.ratio:.2f}{verdict}")
    for path in write_report(comparisons, out_dir(args.out, names, args.quick)):
        console.print(f"wrote {path}")
    return 0


def out_dir(out: str | None, names: list[str], quick: bool) -> Path:
    """Where ``mlverify bench`` writes: ``out`` when given, else ``reports`` for the full run of
    every comparison and ``reports/partial`` for a quick run or a subset."""
    from .bench.suite import COMPARISONS

    if out is not None:
        return Path(out)
    full = not quick and set(names) == set(COMPARISONS)
    return Path("reports") if full else Path("reports") / "partial"
