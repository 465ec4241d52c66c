"""Grids, seeds, records, the SQLite store and aggregation."""

import json
import sqlite3

import numpy as np
import pytest
import toy_sweeps

from mlverify.sweeps import (
    SCHEMA_VERSION,
    Grid,
    Store,
    Sweep,
    aggregate,
    check_record,
    get,
    register,
    registry,
    run_sweep,
    trial_seed,
    unregister,
    write_report,
)


def test_grid_cells_in_c_order():
    grid = Grid({"k": [1, 2], "mu": [0.1, 0.2, 0.3], "name": ["x"]})
    assert len(grid) == 6 and grid.shape == (2, 3, 1)
    cells = [params for _, params in grid.cells()]
    assert cells[0] == {"k": 1, "mu": 0.1, "name": "x"}
    assert cells[4] == {"k": 2, "mu": 0.2, "name": "x"}
    assert [(c["k"], c["mu"]) for c in cells] == [(k, mu) for k in (1, 2) for mu in (0.1, 0.2, 0.3)]
    assert grid == Grid({"k": [1, 2], "mu": [0.1, 0.2, 0.3], "name": ["x"]})
    assert grid != Grid({"k": [1, 2], "mu": [0.1, 0.2, 0.3], "name": ["y"]})
    assert Grid({"k": [1]}) != Grid({"k": [True]})  # JSON keeps bool and int apart


@pytest.mark.parametrize("axes, error", [
    ({}, ValueError), ({"k": []}, ValueError), ({"k": 3}, TypeError), ({"k": "abc"}, TypeError),
    ({"k": [[1]]}, TypeError), ({"k": [float("nan")]}, ValueError), ({1: [1]}, TypeError),
])
def test_grid_rejects_bad_axes(axes, error):
    with pytest.raises(error, match="axes"):
        Grid(axes)


def test_grid_cell_index_checked():
    grid = Grid({"k": [1, 2]})
    with pytest.raises(ValueError, match="index"):
        grid.cell(2)
    with pytest.raises(TypeError, match="index"):
        grid.cell(1.0)


def test_trial_seed_is_a_pure_function_of_sweep_cell_trial():
    seeds = {trial_seed(name, cell, trial)
             for name in ("a", "b") for cell in range(5) for trial in range(5)}
    assert len(seeds) == 50
    assert all(0 <= s < 2**63 for s in seeds)
    assert trial_seed("a", 3, 4) == trial_seed("a", 3, 4)
    expected = np.random.SeedSequence((0xE8B7BE43, 3, 4)).generate_state(2, np.uint32)
    assert trial_seed("a", 3, 4) == (int(expected[0]) << 31) | (int(expected[1]) >> 1)
    with pytest.raises(ValueError, match="cell"):
        trial_seed("a", -1, 0)


def test_check_record_converts_numpy_scalars_and_refuses_others():
    record = check_record({"a": np.float32(0.5), "b": np.int64(3), "c": np.bool_(True), "d": "s"})
    assert record == {"a": 0.5, "b": 3, "c": True, "d": "s"}
    assert [type(v) for v in record.values()] == [float, int, bool, str]
    with pytest.raises(TypeError, match=r"record\['x'\]"):
        check_record({"x": np.zeros(2)})
    with pytest.raises(TypeError, match="keys"):
        check_record({1: 2.0})
    with pytest.raises(TypeError, match="dict"):
        check_record([1.0])


def test_sweep_validation_and_registry():
    with pytest.raises(ValueError, match="name"):
        Sweep("bad name", Grid({"a": [1]}), toy_sweeps.toy_trial, trials=1)
    with pytest.raises(ValueError, match="trials"):
        Sweep("ok", Grid({"a": [1]}), toy_sweeps.toy_trial, trials=0)
    with pytest.raises(TypeError, match="trial"):
        Sweep("ok", Grid({"a": [1]}), None, trials=1)
    assert {"phase-bp", "toy-slow", "toy-fast"} <= set(registry())
    with pytest.raises(ValueError, match="already registered"):
        register(Sweep("toy-fast", Grid({"a": [1]}), toy_sweeps.toy_trial, trials=1))
    with pytest.raises(ValueError, match="unknown sweep 'nope'"):
        get("nope")
    temporary = register(Sweep("tmp-sweep", Grid({"a": [1]}), toy_sweeps.toy_trial, trials=1))
    assert get("tmp-sweep") is temporary
    unregister("tmp-sweep")
    assert "tmp-sweep" not in registry()
    quick = toy_sweeps.FAST.variant(True)
    assert (quick.name, len(quick.grid), quick.trials) == ("toy-fast-quick", 1, 2)
    with pytest.raises(ValueError, match="no quick variant"):
        toy_sweeps.SLOW.variant(True)


def test_store_schema_wal_and_unique_key(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.register(toy_sweeps.FAST)
        store.add("toy-fast", 0, 0, 7, {"x": 1.5}, 0.1)
        with pytest.raises(sqlite3.IntegrityError):
            store.add("toy-fast", 0, 0, 7, {"x": 2.5}, 0.1)
        assert store.count("toy-fast") == 1
        assert store.sweeps() == ["toy-fast"]
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT record FROM trials").fetchall() == [(json.dumps({"x": 1.5}),)]
    raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(ValueError, match="schema version 99"):
        Store(path)


def test_store_refuses_another_grid_under_the_same_name(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.register(toy_sweeps.FAST)
        other = Sweep("toy-fast", Grid({"a": [9], "b": ["u"], "sleep": [0.0]}),
                      toy_sweeps.toy_trial, trials=4)
        with pytest.raises(ValueError, match="another grid"):
            store.register(other)


def test_resume_runs_only_missing_pairs(tmp_path):
    sweep = toy_sweeps.FAST
    with Store(tmp_path / "full.sqlite") as full:
        summary = run_sweep(sweep, full, executor="serial")
        assert (summary.computed, summary.already_stored, summary.total) == (24, 0, 24)
        reference = {(r.cell, r.trial): (r.seed, r.record) for r in full.rows(sweep)}
    path = tmp_path / "partial.sqlite"
    with Store(path) as store:
        run_sweep(sweep, store, executor="serial")
    raw = sqlite3.connect(path)
    raw.execute("DELETE FROM trials WHERE (cell + trial) % 3 = 0")
    raw.commit()
    raw.close()
    seen = []
    with Store(path) as store:
        kept = store.done(sweep.name)
        summary = run_sweep(sweep, store, executor="serial",
                            progress=lambda done, total: seen.append((done, total)))
        assert summary.already_stored == len(kept) and summary.computed == 24 - len(kept)
        assert seen[0] == (len(kept), 24) and seen[-1] == (24, 24) and len(seen) == 25 - len(kept)
        assert {(r.cell, r.trial): (r.seed, r.record) for r in store.rows(sweep)} == reference
        assert run_sweep(sweep, store, executor="serial").computed == 0


def test_records_follow_the_seed_of_sweep_cell_trial(tmp_path):
    sweep = toy_sweeps.FAST
    with Store(tmp_path / "s.sqlite") as store:
        run_sweep(sweep, store, executor="serial")
        rows = store.rows(sweep)
    for row in rows:
        assert row.seed == trial_seed("toy-fast", row.cell, row.trial)
        assert row.params == sweep.grid.cell(row.cell)
        assert row.record == check_record(toy_sweeps.toy_trial(row.params, row.seed))


def test_aggregate_and_default_summary(tmp_path):
    sweep = toy_sweeps.FAST
    with Store(tmp_path / "s.sqlite") as store:
        run_sweep(sweep, store, executor="serial")
        rows = store.rows(sweep)
    summaries = aggregate(rows)
    assert [s.cell for s in summaries] == list(range(6))
    for s in summaries:
        mine = [r.record for r in rows if r.cell == s.cell]
        assert s.trials == 4 and s.params == sweep.grid.cell(s.cell)
        assert s.means["x"] == pytest.approx(np.mean([r["x"] for r in mine]), abs=1e-15)
        assert s.means["flag"] == np.mean([r["flag"] for r in mine])
        assert s.means["a2"] == s.params["a"] ** 2
        assert "tag" not in s.means
    (path,) = write_report(sweep, rows, tmp_path / "out")
    text = path.read_text()
    assert path.name == "toy-fast.md"
    assert "| a | b | sleep | trials | a2 | flag | n | seed_low | x |" in text
    assert text.count("\n| ") == 7  # header + 6 cells
