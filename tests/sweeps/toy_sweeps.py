"""Small user-defined sweeps for the tests (imported by name in worker processes)."""

import time

import numpy as np

from mlverify.sweeps import Grid, Sweep, register


def toy_trial(params: dict, seed: int) -> dict:
    """Random draws from the trial's seed, a function of the parameters, and a short sleep."""
    time.sleep(params["sleep"])
    rng = np.random.default_rng(seed)
    return {"x": rng.random(), "n": int(rng.integers(1000)), "flag": bool(rng.random() < 0.5),
            "tag": f"{params['b']}{params['a']}", "a2": params["a"] ** 2, "seed_low": seed % 97}


SLOW = register(Sweep("toy-slow", Grid({"a": list(range(6)), "b": ["u", "v"], "sleep": [0.04]}),
                      toy_trial, trials=3, description="test sweep, 40 ms per trial"))
FAST = register(Sweep("toy-fast", Grid({"a": [0, 1, 2], "b": ["u", "v"], "sleep": [0.0]}),
                      toy_trial, trials=4, description="test sweep",
                      quick=(Grid({"a": [5], "b": ["w"], "sleep": [0.0]}), 2)))
