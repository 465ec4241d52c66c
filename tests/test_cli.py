"""The ``mlverify`` command line (DESIGN.md §4): ``info`` and the usage exit code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import mlverify
from mlverify.cli import info_rows, main


def test_info_rows():
    rows = dict(info_rows())
    assert rows["mlverify"] == mlverify.__version__
    assert rows["numpy"] == np.__version__
    assert rows["numba"] == numba.__version__
    assert rows["engines"].startswith("numpy, cpu")
    assert rows["numba threads"] == (
        f"{numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS}")
    for key in ("python", "scipy", "llvmlite", "threading layer", "machine"):
        assert rows[key]


def test_info_prints_versions_engines_threads(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for text in ("mlverify info", mlverify.__version__, "numpy", np.__version__, "numba",
                 numba.__version__, "engines", "cpu", "numba threads"):
        assert text in out


def console_script() -> str:
    """The installed ``mlverify`` script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("mlverify")
    return str(beside) if beside.exists() else shutil.which("mlverify")


def test_console_script_info():
    script = console_script()
    assert script is not None, "the mlverify console script is not installed"
    done = subprocess.run([script, "info"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "engines" in done.stdout
    assert np.__version__ in done.stdout


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["info", "--bogus"]])
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: mlverify" in capsys.readouterr().err
