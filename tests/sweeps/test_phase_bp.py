"""The built-in ``phase-bp`` sweep, its report, and the ``mlverify sweep`` command."""

import argparse

import numpy as np
import pytest
import toy_sweeps  # noqa: F401  (registers toy-fast and toy-slow)
from rich.console import Console

from mlverify import MLCSC, sample_instance, stripe_l0_inf
from mlverify.cli_sweep import add_sweep_parser
from mlverify.sweeps import (
    Grid,
    Store,
    Sweep,
    get,
    phase_bp,
    register,
    run_sweep,
    unregister,
    write_report,
)


def test_bounds_match_theory():
    mu = 1 / 13
    assert phase_bp.bp_bound(mu) == pytest.approx(14 / 3)
    assert phase_bp.omp_bound(mu, 0.05, 0.5) == pytest.approx(7 - 13 * 0.1)
    assert phase_bp.dictionary("barker13")[1] == pytest.approx(1 / 13)


def test_trial_is_pure_and_plants_the_requested_stripe_sparsity():
    first = phase_bp.trial({"dictionary": "lowcoh-2x13", "k": 3}, 12345)
    assert first == phase_bp.trial({"dictionary": "lowcoh-2x13", "k": 3}, 12345)
    assert first["stripe_sparsity"] == 3
    assert first["eps_l"] == pytest.approx(phase_bp.EPS, rel=1e-12)
    assert first["gamma_min"] >= phase_bp.CONTRAST
    assert first["mu"] == phase_bp.dictionary("lowcoh-2x13")[1]
    other = phase_bp.trial({"dictionary": "lowcoh-2x13", "k": 3}, 12346)
    assert other != first


def test_stripe_sparsity_recorded_is_the_measure():
    D, _ = phase_bp.dictionary("barker13")
    instance = sample_instance(MLCSC([D]), phase_bp.N, np.random.default_rng(5), k=4,
                               contrast=phase_bp.CONTRAST, noise_patch=phase_bp.EPS)
    assert stripe_l0_inf(instance.deepest, 13) == 4
    record = phase_bp.trial({"dictionary": "barker13", "k": 4}, 5)
    assert record["stripe_sparsity"] == 4 and record["n_nonzero"] == instance.layers[0].n_nonzero


def test_quick_sweep_report_and_sufficient_conditions(tmp_path):
    sweep = get("phase-bp").variant(True)
    with Store(tmp_path / "s.sqlite") as store:
        run_sweep(sweep, store, executor="serial")
        rows = store.rows(sweep)
    assert len(rows) == sweep.size == 60
    for row in rows:  # W7 / W6 are sufficient: inside them recovery must succeed
        r = row.record
        assert r["stripe_sparsity"] == row.params["k"]
        assert r["bp_gap"] <= phase_bp.BP_TOL
        if r["w7_support"]:
            assert r["bp_support"], row
        if r["w7"]:
            assert r["bp_subset"] and r["bp_linf"] <= 7.5 * r["eps_l"], row
        if r["w6"]:
            assert r["omp_support"], row
    assert any(r.record["w7_support"] for r in rows) and not all(r.record["w6"] for r in rows)
    figure, summary = write_report(sweep, rows, tmp_path / "reports")
    assert figure.name == "phase-bp-quick.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    text = summary.read_text()
    for name in ("barker13", "lowcoh-2x13", "random-2x13"):
        assert f"## {name} (μ = " in text
    assert "![phase map](phase-bp-quick.png)" in text
    assert text.count("\n| ") == 3 * 6  # header + 5 k values per dictionary


def _cli(argv):
    parser = argparse.ArgumentParser(prog="mlverify")
    add_sweep_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sweep", *argv])
    console = Console(record=True, width=200)
    code = args.run(args, console)
    return code, console.export_text()


def test_cli_list_run_resume_and_report(tmp_path):
    code, text = _cli(["--list"])
    assert code == 0 and "phase-bp" in text and "toy-fast" in text
    store, out = str(tmp_path / "s.sqlite"), str(tmp_path / "out")
    argv = ["toy-fast", "--quick", "--store", store, "--workers", "1", "--out", out]
    code, text = _cli(argv)
    assert code == 0 and "2 trials computed, 0 already stored" in text
    assert (tmp_path / "out" / "toy-fast-quick.md").exists()
    code, text = _cli(argv)
    assert code == 0 and "0 trials computed, 2 already stored" in text


@pytest.mark.parametrize("argv, message", [
    ([], "give a sweep NAME"),
    (["nope"], "unknown sweep 'nope'"),
    (["toy-slow", "--quick"], "no quick variant"),
    (["toy-fast", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --executor dask"),
    (["toy-fast", "--module", "no_such_module_xyz"], "no_such_module_xyz"),
])
def test_cli_bad_usage_exits_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        _cli([*argv, "--store", str(tmp_path / "s.sqlite")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_a_store_with_another_grid(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    register(Sweep("grid-clash", Grid({"a": [1]}), phase_bp.trial, trials=1))
    try:
        with Store(store) as s:
            s.register(Sweep("grid-clash", Grid({"a": [2]}), phase_bp.trial, trials=1))
        with pytest.raises(SystemExit) as exit_info:
            _cli(["grid-clash", "--store", str(store)])
    finally:
        unregister("grid-clash")
    assert exit_info.value.code == 2 and "another grid" in capsys.readouterr().err
