"""The ``mlverify`` command line (DESIGN.md §4).

Exit codes: 0 success, 2 bad usage (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def info_rows() -> list[tuple[str, str]]:
    """What ``mlverify info`` prints, as (key, value) rows."""
    import numba

    from . import __version__
    from ._validate import ENGINES

    rows = [("mlverify", __version__), ("python", platform.python_version())]
    for dist in ("numpy", "scipy", "numba", "llvmlite", "numba-cuda", "hypothesis", "asv"):
        rows.append((dist, _version(dist)))
    rows += [
        ("engines", ", ".join(e for e in ENGINES if e != "auto") + " (auto = cpu)"),
        ("numba threads", f"{numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS}"),
        ("threading layer", str(numba.config.THREADING_LAYER)),
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlverify`` console script."""
    args = build_parser().parse_args(argv)
    return args.run(args, Console())


if __name__ == "__main__":
    sys.exit(main())
