"""Every executor stores the same records (seeds depend on sweep, cell and trial only)."""

import pytest
import toy_sweeps

from mlverify.sweeps import Store, run_sweep


def _records(path, sweep) -> dict:
    with Store(path) as store:
        return {(r.cell, r.trial): (r.seed, r.record) for r in store.rows(sweep)}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "s.sqlite"
    with Store(path) as store:
        run_sweep(toy_sweeps.FAST, store, executor="serial")
    return _records(path, toy_sweeps.FAST)


def test_local_process_pool_matches_serial(tmp_path, serial):
    with Store(tmp_path / "local.sqlite") as store:
        summary = run_sweep(toy_sweeps.FAST, store, executor="local", workers=2)
    assert summary.computed == toy_sweeps.FAST.size
    assert _records(tmp_path / "local.sqlite", toy_sweeps.FAST) == serial


def test_dask_local_cluster_matches_serial(tmp_path, serial):
    pytest.importorskip("distributed", reason="executor='dask' needs dask[distributed]")
    # Two worker processes (processes=True, the default): 2-4 s to start here.
    with Store(tmp_path / "dask.sqlite") as store:
        summary = run_sweep(toy_sweeps.FAST, store, executor="dask", workers=2)
    assert summary.computed == toy_sweeps.FAST.size
    assert _records(tmp_path / "dask.sqlite", toy_sweeps.FAST) == serial


def test_run_sweep_rejects_bad_arguments(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(ValueError, match="executor"):
            run_sweep(toy_sweeps.FAST, store, executor="threads")
        with pytest.raises(ValueError, match="workers"):
            run_sweep(toy_sweeps.FAST, store, workers=0)
        with pytest.raises(ValueError, match="scheduler"):
            run_sweep(toy_sweeps.FAST, store, scheduler="tcp://127.0.0.1:1")
        with pytest.raises(TypeError, match="store"):
            run_sweep(toy_sweeps.FAST, str(tmp_path / "s.sqlite"))
