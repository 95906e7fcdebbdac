import pytest

from grokcore.config import RunConfig

# A configuration that groks in seconds on a 2-core CPU (see README, "A run that groks fast").
QUICK = dict(p=31, frac_train=0.5, lr=3e-3, weight_decay=3.0, eval_every=10)


@pytest.fixture
def quick_config() -> RunConfig:
    return RunConfig(**QUICK, epochs=3000, stop_after_grok=3)
