"""RunConfig.compile: the compiled training step agrees with the eager one, resumes exactly, and
``auto`` leaves short runs eager. One tiny model is compiled (a few seconds with Inductor's cache
on disk, under a minute without); the rest builds trainers without stepping them."""

from __future__ import annotations

import pytest
import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.trainer import COMPILE_AUTO_WORK, Trainer

TINY = dict(p=5, d_model=16, d_head=4, n_heads=2, d_mlp=32, frac_train=0.5, epochs=20,
            eval_every=5, device="cpu", lr=3e-3)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.fixture(scope="module")
def compiled_and_eager():
    eager = Trainer(RunConfig(**TINY, compile="off"))
    compiled = Trainer(RunConfig(**TINY, compile="on"))
    assert not eager.compiled and compiled.compiled
    eager.run()
    compiled.run()
    return eager, compiled


def test_compiled_step_agrees_with_eager_within_float_tolerance(compiled_and_eager):
    eager, compiled = compiled_and_eager
    assert compiled._loss is not compiled.objective.loss  # the compiled step really ran
    for name, value in _weights(eager).items():
        torch.testing.assert_close(_weights(compiled)[name], value, rtol=1e-4, atol=1e-5)
    for a, b in zip(eager.history, compiled.history):
        assert a["epoch"] == b["epoch"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-5)
    # A changed setting shows: the weights moved, so agreement is not trivial.
    start = Trainer(RunConfig(**TINY, compile="off"))
    assert any((w - _weights(eager)[k]).abs().max() > 1e-3 for k, w in _weights(start).items())


def test_resumed_compiled_run_continues_bit_for_bit(compiled_and_eager):
    _, whole = compiled_and_eager
    cfg = RunConfig(**TINY, compile="on")
    first = Trainer(cfg.replace(epochs=10))
    first.run()
    resumed = Trainer(cfg)
    resumed.load_state_dict(first.state_dict())
    resumed.run()
    assert resumed.compiled and resumed.epoch == whole.epoch == 20
    for name, value in _weights(whole).items():
        assert torch.equal(_weights(resumed)[name], value), name
    assert resumed.history == whole.history


def test_auto_leaves_demo_and_test_runs_eager_and_compiles_long_runs():
    demo = RunConfig(p=31, frac_train=0.5, lr=3e-3, weight_decay=3.0, epochs=1500,
                     eval_every=20, device="cpu")
    assert demo.compile == "auto"
    assert not Trainer(demo).compiled
    assert not Trainer(RunConfig(**TINY)).compiled
    canonical = Trainer(RunConfig(p=113, frac_train=0.3, epochs=40_000, device="cpu"))
    assert canonical.compiled  # built lazily: nothing is compiled before the first step
    work = 40_000 * len(canonical.train_y) * sum(p.numel() for p in canonical.model.parameters())
    assert work >= COMPILE_AUTO_WORK
    assert not Trainer(RunConfig(p=113, frac_train=0.3, epochs=1000, device="cpu")).compiled
    assert not Trainer(RunConfig(p=113, frac_train=0.3, epochs=40_000, device="cpu",
                                 compile="off")).compiled


def test_compile_setting_is_validated_and_needs_a_compiler(monkeypatch):
    with pytest.raises(ConfigError, match="compile='fast'"):
        RunConfig(compile="fast").check_fields()
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        Trainer(RunConfig(**TINY, compile="on"))
    # auto quietly stays eager without one
    assert not Trainer(RunConfig(p=113, frac_train=0.3, epochs=40_000, device="cpu")).compiled


def test_compile_may_change_on_resume_and_old_checkpoints_resume():
    cfg = RunConfig(**TINY, compile="off")
    first = Trainer(cfg.replace(epochs=10))
    first.run()
    state = first.state_dict()
    Trainer(cfg.replace(compile="auto")).load_state_dict(state)  # speed only: allowed
    del state["config"]["compile"]  # a checkpoint written before the setting existed
    resumed = Trainer(cfg)
    resumed.load_state_dict(state)
    assert resumed.epoch == 10
    with pytest.raises(ConfigError, match="seed"):
        Trainer(cfg.replace(seed=1)).load_state_dict(first.state_dict())
