"""A sweep killed with SIGKILL mid-run resumes without losing or repeating a trial."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import toy_sweeps

from mlverify.sweeps import Store, run_sweep

HERE = Path(__file__).parent

#: ``mlverify sweep toy-slow`` through :func:`mlverify.cli_sweep.add_sweep_parser`, in a fresh
#: interpreter (one spawn worker, so the trials come in slowly enough to kill it mid-run).
COMMAND = """
import argparse, sys
from rich.console import Console
from mlverify.cli_sweep import add_sweep_parser
parser = argparse.ArgumentParser()
add_sweep_parser(parser.add_subparsers())
args = parser.parse_args(["sweep", "toy-slow", "--module", "toy_sweeps", "--store", sys.argv[1],
                          "--workers", "1", "--no-report"])
sys.exit(args.run(args, Console(width=200)))
"""


def _launch(store: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.Popen([sys.executable, "-c", COMMAND, str(store)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _stored(path: Path) -> dict:
    if not path.exists():
        return {}
    conn = sqlite3.connect(path, timeout=30)
    try:
        return {(c, t): (s, r) for c, t, s, r in
                conn.execute("SELECT cell, trial, seed, record FROM trials")}
    except sqlite3.OperationalError:  # tables not created yet
        return {}
    finally:
        conn.close()


def test_sigkill_mid_run_then_resume_gives_exactly_the_uninterrupted_records(tmp_path):
    sweep = toy_sweeps.SLOW
    path = tmp_path / "killed.sqlite"
    child = _launch(path)
    deadline = time.monotonic() + 120
    try:
        while len(_stored(path)) < 6:
            assert child.poll() is None, f"the sweep ended before the kill:\n{child.stdout.read()}"
            assert time.monotonic() < deadline, "no trial stored within 120 s"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        try:  # the pool's worker, orphaned by the kill, belongs to the child's session
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    before = _stored(path)
    assert 6 <= len(before) < sweep.size, "the kill must come mid-run"

    resumed = _launch(path)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    computed, already = map(int, re.search(r"(\d+) trials computed, (\d+) already stored",
                                           output).groups())
    assert (computed, already) == (sweep.size - len(before), len(before))

    after = _stored(path)
    assert len(after) == sweep.size
    assert {k: after[k] for k in before} == before  # nothing stored before was redone
    conn = sqlite3.connect(path)
    count = conn.execute("SELECT COUNT(*), COUNT(DISTINCT cell || ':' || trial) FROM trials")
    assert count.fetchone() == (sweep.size, sweep.size)
    conn.close()

    with Store(tmp_path / "uninterrupted.sqlite") as store:
        run_sweep(sweep, store, executor="serial")
    assert after == _stored(tmp_path / "uninterrupted.sqlite")
    assert set(after) == {(c, t) for c in range(len(sweep.grid)) for t in range(sweep.trials)}
