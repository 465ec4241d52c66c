"""``mlverify verify``: the trial runner, the tightness search and the report writers."""

from .runner import TheoremReport, TrialRecord, run, run_trial

__all__ = ["TheoremReport", "TrialRecord", "run", "run_trial"]
