"""The verify runner, tightness search, reports and the ``mlverify verify`` command."""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from mlverify.cli import main
from mlverify.theorems import Outcome, Theorem, _base, get, registry
from mlverify.verify import runner, tightness


@dataclass(frozen=True)
class _Scalar:
    value: float
    qualifies: bool


class _Planted(Theorem):
    """A test theorem: 'value <= 1' holds unless the knob crosses ``break_at``."""

    paper = "test"
    status = "D"
    statement = "value ≤ 1"
    break_at = 2.0
    qualify_every = 1

    def sample(self, rng, knob):
        trial_draw = rng.integers(1000)
        return _Scalar(knob * self.break_at + 1e-3 * rng.random(),
                       trial_draw % self.qualify_every == 0)

    def hypotheses(self, instance):
        return {"qualifies": 1.0 if instance.qualifies else -1.0}

    def check(self, instance, engine="auto"):
        return Outcome(instance.value, 1.0, instance.value <= 1.0)


@pytest.fixture
def planted():
    """Register theorems for the test only (and remove them afterwards)."""
    made = []

    def make(theorem_id, **attrs):
        cls = type(f"T_{theorem_id}", (_Planted,), {"id": theorem_id, **attrs})
        _base.register(cls)
        made.append(theorem_id)
        return get(theorem_id)

    yield make
    for theorem_id in made:
        _base._REGISTRY.pop(theorem_id)


def test_registry_holds_the_builtin_theorems():
    theorems = registry()
    assert {"COH-1", "COH-c", "W4"} <= set(theorems)
    for theorem in theorems.values():
        assert theorem.status in _base.STATUSES and theorem.statement and theorem.paper


def test_get_unknown_names_the_known_ids():
    with pytest.raises(ValueError, match=r"unknown theorem 'nope'; known: .*W4"):
        get("nope")


def test_register_refuses_duplicates_and_bad_tags(planted):
    planted("T-dup")
    with pytest.raises(ValueError, match="registered twice"):
        _base.register(type("X", (_Planted,), {"id": "T-dup"}))
    with pytest.raises(ValueError, match="status"):
        _base.register(type("Y", (_Planted,), {"id": "T-bad", "status": "Q"}))


def test_outcome_ratio():
    assert Outcome(1.0, 2.0, True).ratio == 0.5
    assert Outcome(0.0, 0.0, True).ratio == 0.0
    assert Outcome(1.0, 0.0, False).ratio == math.inf


def test_knobs_spread_below_the_boundary():
    knobs = [runner.knob_of(t, 10) for t in range(10)]
    assert knobs == sorted(knobs) and 0 < knobs[0] and knobs[-1] < 1


def test_results_do_not_depend_on_workers():
    one = runner.run(["W4", "COH-1"], target=12, seed=3, engine="auto", workers=1,
                     search_budget=3)
    two = runner.run(["W4", "COH-1"], target=12, seed=3, engine="auto", workers=2, chunk=5,
                     search_budget=3)
    for a, b in zip(one, two, strict=True):
        assert (a.trials, a.hypotheses_met, a.violations) == (b.trials, b.hypotheses_met,
                                                              b.violations)
        assert a.ratios == b.ratios


def test_run_counts_violations(planted):
    planted("T-break", break_at=2.0)  # knob > 0.5 breaks value <= 1
    one = runner.run(["T-break", "W4"], target=12, seed=3, engine="auto")
    broken = one[0]
    assert broken.status == "violated"
    assert broken.violations == sum(runner.knob_of(t, 12) * 2 > 1 for t in range(12))
    assert broken.worst_ratio > 1 and broken.worst["ratio"] == broken.worst_ratio
    assert all(not v["holds"] for v in broken.violating)
    assert one[1].status == "ok" and one[1].violations == 0


def test_run_reports_too_few_qualifying_trials(planted):
    planted("T-rare", break_at=0.5, qualify_every=1000)  # almost never qualifies
    (report,) = runner.run(["T-rare"], target=5, seed=0, engine="auto")
    assert report.trials == runner.MAX_ATTEMPT_FACTOR * 5
    assert report.hypotheses_met < 5 and report.status == "insufficient"


def test_tightness_search_moves_toward_the_boundary(planted):
    theorem = planted("T-tight", break_at=1.0)  # ratio = knob, never violated below knob 1
    records = tightness.search(theorem, seed=0, engine="auto", budget=20)
    assert len(records) == 20 and all(r.holds for r in records)
    assert max(r.ratio for r in records) > 0.97


def test_verify_cli_json_report_and_exit_codes(tmp_path, planted, capsys):
    out = tmp_path / "v.json"
    assert main(["verify", "--theorem", "W4", "--trials", "6", "--search", "2", "--workers", "1",
                 "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["violations"] == 0
    (row,) = document["theorems"]
    for key in ("id", "status", "trials", "hypotheses_met", "violations", "worst_ratio",
                "median_ratio", "seconds"):
        assert key in row
    assert row["hypotheses_met"] >= 6 and row["status"] == "ok"

    planted("T-cli", break_at=2.0)
    report_dir = tmp_path / "report"
    code = main(["verify", "--theorem", "T-cli", "--trials", "8", "--search", "0",
                 "--workers", "1", "--report", str(report_dir)])
    assert code == 1
    saved = sorted(report_dir.glob("violation-T-cli-*.json"))
    assert saved and (report_dir / "report.md").exists() and (report_dir / "T-cli.png").exists()
    assert "T-cli" in (report_dir / "report.md").read_text()
    assert main(["verify", "--replay", str(saved[0])]) == 1
    assert "VIOLATED" in capsys.readouterr().out


def test_verify_cli_bad_usage():
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--theorem", "no-such-theorem"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--trials", "0"])
    assert exit_info.value.code == 2


def test_same_seed_same_instances():
    theorem = get("W4")
    a = theorem.sample(theorem.rng(5, 7), 0.3)
    b = theorem.sample(theorem.rng(5, 7), 0.3)
    np.testing.assert_array_equal(a.support, b.support)
    np.testing.assert_array_equal(a.dictionary.filters, b.dictionary.filters)
