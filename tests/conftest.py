"""Test configuration: Hypothesis profiles (DESIGN.md §6).

- ``dev`` (default locally): ``deadline=None`` because jitted code compiles on first call.
- ``ci``: Hypothesis' built-in profile (derandomised, no deadline), loaded when ``CI`` is set.
- ``thorough``: thousands of examples for long runs (``HYPOTHESIS_PROFILE=thorough``).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None, max_examples=50)
settings.register_profile(
    "thorough", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
