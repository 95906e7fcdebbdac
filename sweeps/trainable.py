"""The Ray Tune trainable of every sweep: a trial is one run (``sweeps.trial``) or a pack of runs
(``sweeps.pack_trial``). Its own module so that neither of those imports the other.  [WORKER]
"""

from __future__ import annotations

from typing import Any


def grok_trainable(tune_config: dict[str, Any]) -> None:
    """Ray Tune function trainable (its name is part of every trial folder's name: keep it)."""
    if "pack" in tune_config.get("trial", {}):
        from sweeps.pack_trial import pack_trainable

        return pack_trainable(tune_config)
    from sweeps.trial import single_trainable

    return single_trainable(tune_config)


def trainable_with_resources(cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0):
    """The trainable with the Ray resources each trial reserves (GPUs settled: a number)."""
    from ray import tune

    return tune.with_resources(grok_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
