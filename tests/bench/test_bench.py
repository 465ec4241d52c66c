"""The benchmark harness: timing protocol, results, CBPDN problem and objective, report, CLI."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from mlverify import basis_pursuit, bp_objective
from mlverify.bench import cbpdn
from mlverify.bench._record import Recorder, best_time, best_times
from mlverify.bench._result import Comparison, Metric
from mlverify.bench.suite import markdown, write_report
from mlverify.cli import main


def test_recorder_excludes_its_own_time_and_finds_first_crossing():
    def slow_value(value):
        time.sleep(0.02)
        return value

    recorder = Recorder(slow_value, stop_below=0.1)
    recorder.start()
    stops = [recorder(v) for v in (1.0, 0.5, 0.05, 0.01)]
    assert stops == [False, False, True, True]
    assert recorder.times[-1] < 0.02  # four 20 ms evaluations, none counted
    assert recorder.time_to(0.5) == recorder.times[1]
    assert math.isnan(recorder.time_to(1e-9))
    assert recorder.trace() == {"time": recorder.times, "value": [1.0, 0.5, 0.05, 0.01]}
    assert best_time(lambda: time.sleep(0.001), repeat=2) >= 0.001


def test_best_times_interleave_the_contenders():
    calls = []
    times = best_times([lambda: calls.append("a"), lambda: time.sleep(0.002) or calls.append("b")],
                       repeat=3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up round, then three rounds in turn
    assert times[1] >= 0.002 > times[0]


def test_metric_ratio_and_goal():
    fast = Metric("x", ours=1.0, peer=6.0, goal=5.0)
    assert fast.ratio == 6.0 and fast.met is True
    assert Metric("x", ours=2.0, peer=6.0, goal=5.0).met is False
    assert Metric("x", ours=1.0, peer=2.0).met is None
    assert math.isnan(Metric("x", ours=math.nan, peer=1.0).ratio)
    assert fast.to_dict()["ratio"] == 6.0


def test_synthetic_cbpdn_objective_matches_bp_objective():
    problem = cbpdn.synthetic_problem(size=32, dtype=np.float64)
    codes = np.random.default_rng(0).standard_normal((36, 32, 32)) * 0.01
    objective = cbpdn.Objective(problem)
    expected = bp_objective(problem.dictionary, problem.y, codes, problem.lam)
    assert objective(codes) == pytest.approx(expected, rel=1e-12)
    assert objective(cbpdn.hwm_codes(codes), hwm=True) == pytest.approx(expected, rel=1e-12)


def test_run_mlverify_traces_relative_gaps_against_the_certified_optimum():
    problem = cbpdn.synthetic_problem(size=24, dtype=np.float64)
    optimum = cbpdn.certified_optimum(problem, tol=1e-8)
    assert optimum.dual <= optimum.primal and optimum.uncertainty <= 1e-8
    recorder = cbpdn.relative_gap_recorder(cbpdn.Objective(problem), optimum, 1e-3)
    result = cbpdn.run_mlverify(problem, recorder)
    assert result.status == "stopped" and recorder.values[-1] <= 1e-3
    assert all(v > 1e-3 for v in recorder.values[:-1])
    assert all(v >= -1e-8 for v in recorder.values)  # never below the certified optimum


def test_sporco_problem_is_the_same_operator():
    pytest.importorskip("sporco")
    problem = cbpdn.load_problem()  # checks SPORCO's DFT synthesis = ConvDictionary's
    assert problem.signal.shape == (256, 256) and problem.filters_hwm.shape == (12, 12, 36)
    assert problem.signal.dtype == np.float32


def test_cbpdn_compare_is_skipped_without_sporco(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sporco(name, *args, **kwargs):
        if name.startswith("sporco"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sporco)
    comparison = cbpdn.compare(quick=True)
    assert comparison.skipped and "compare" in comparison.skipped and not comparison.metrics


def test_report_files(tmp_path):
    pytest.importorskip("matplotlib")
    traced = Comparison("a", "A vs B", "peer 1.0", problem={"n": 3},
                        metrics=[Metric("time to relative gap 0.001", 1.0, 6.0, goal=5.0)],
                        traces={"mlverify": {"time": [0.1, 0.2], "value": [1e-2, 1e-4]},
                                "peer": {"time": [0.5, 1.0], "value": [1e-2, 1e-3]}},
                        notes=["a note"])
    skipped = Comparison("b", "B", "other", skipped="other not installed")
    paths = write_report([traced, skipped], tmp_path)
    assert [p.name for p in paths] == ["BENCHMARKS.md", "benchmarks.json", "benchmarks.png"]
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| time to relative gap 0.001 | 1.00 s | 6.00 s | 6.00 | ≥ 5× | yes |" in text
    assert "**Skipped**: other not installed." in text and "- a note" in text
    data = json.loads((tmp_path / "benchmarks.json").read_text())
    assert data[0]["metrics"][0]["met"] is True and data[1]["skipped"]
    assert markdown([]).startswith("# Side-by-side benchmarks")


def test_cli_bench_list_and_bad_usage(capsys):
    assert main(["bench", "--list"]) == 0
    assert "cbpdn" in capsys.readouterr().out
    assert main(["bench", "nope"]) == 2
    assert main(["bench", "--threads", "0", "kernels"]) == 2


def test_partial_runs_do_not_replace_the_full_report():
    from mlverify.bench.suite import COMPARISONS
    from mlverify.cli_bench import out_dir

    every = list(COMPARISONS)
    assert out_dir(None, every, quick=False) == Path("reports")
    assert out_dir(None, every, quick=True) == Path("reports") / "partial"
    assert out_dir(None, every[:1], quick=False) == Path("reports") / "partial"
    assert out_dir("mine", every[:1], quick=True) == Path("mine")


def test_basis_pursuit_stops_for_the_bench_callback():
    problem = cbpdn.synthetic_problem(size=16, dtype=np.float64)
    result = basis_pursuit(problem.dictionary, problem.y, problem.lam, solver="admm",
                           callback=lambda iteration, codes: iteration >= 3)
    assert result.n_iter == 3 and result.status == "stopped"


def test_kernels_comparison_reports_fractions_of_peak_and_first_calls():
    from mlverify.bench import kernels

    comparison = kernels.compare(quick=True, threads=1)
    peak_rows = [m for m in comparison.metrics if "fraction of peak" in m.name]
    first = [m for m in comparison.metrics if m.name.startswith("warm-cache first call")]
    assert len(peak_rows) == 8 and all(0 < m.ratio < 2 for m in peak_rows)
    assert len(first) == 18 and all(m.goal == 1.0 and m.ours > 0 for m in first)
