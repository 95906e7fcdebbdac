import math
from collections import deque

import pytest
import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.optim import (GrokfastEMA, GrokfastMA, cross_entropy, log_stablemax, orthogonalize_,
                            stablemax, stablemax_cross_entropy, stablemax_s)
from grokcore.tasks import validate
from grokcore.trainer import Trainer

# Small models for the trainer tests: the variants act on any parameter list.
SMALL = dict(p=23, d_model=32, d_head=8, d_mlp=128)


# ---- orthogonal gradient ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 3, 2)])
def test_orthogonal_gradient_is_orthogonal_and_keeps_the_norm(dtype, tol, shape):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=gen, dtype=dtype)
    # a gradient with a large component along w, so the projection has work to do
    g = torch.randn(shape, generator=gen, dtype=dtype) + 3 * w
    original = g.clone()
    orthogonalize_([w], [g])
    assert g.shape == shape
    assert abs(float((w * g).sum())) < tol * float(w.norm() * g.norm())
    assert math.isclose(float(g.norm()), float(original.norm()), rel_tol=tol)
    # it is the rescaled rejection of original from w, not just any orthogonal vector
    perp = original - (w * original).sum() / (w * w).sum() * w
    torch.testing.assert_close(g, perp * original.norm() / perp.norm(), rtol=tol, atol=tol)
    assert float((original * g).sum()) > 0, "it still points downhill"


def test_orthogonal_gradient_edge_cases():
    zero_w, g = torch.zeros(4), torch.tensor([1.0, -2.0, 3.0, 0.5])
    kept = g.clone()
    orthogonalize_([zero_w], [kept])
    assert torch.equal(kept, g), "with w = 0 there is nothing to project out"
    w = torch.tensor([1.0, 2.0, -1.0])
    parallel = 2.5 * w
    orthogonalize_([w], [parallel])
    assert torch.all(torch.isfinite(parallel)) and float(parallel.norm()) < 1e-5


# ---- StableMax --------------------------------------------------------------------------------
def test_stablemax_s_follows_its_definition():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0, 1e6, -1e6], dtype=torch.float64)
    expected = torch.tensor([1 / 4, 1 / 2, 1 / 1.5, 1.0, 1.5, 3.0, 1e6 + 1, 1 / (1 + 1e6)],
                            dtype=torch.float64)
    torch.testing.assert_close(stablemax_s(x), expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stablemax_probabilities(dtype):
    z = torch.tensor([[0.0, 1.0, -1.0], [2.0, -3.0, 0.5]], dtype=dtype)
    probs = stablemax(z)
    # s = [1, 2, 0.5] -> [2/7, 4/7, 1/7]; s = [3, 1/4, 1.5] -> / 4.75
    expected = torch.tensor([[2 / 7, 4 / 7, 1 / 7], [3 / 4.75, 0.25 / 4.75, 1.5 / 4.75]], dtype=dtype)
    torch.testing.assert_close(probs, expected)
    big = torch.randn(50, 113, generator=torch.Generator().manual_seed(1), dtype=dtype) * 40
    torch.testing.assert_close(stablemax(big).sum(-1), torch.ones(50, dtype=dtype))
    torch.testing.assert_close(log_stablemax(big).exp(), stablemax(big))
    # the argmax is the softmax's (s is increasing), but the distribution is not the softmax
    assert torch.equal(stablemax(big).argmax(-1), big.argmax(-1))
    assert not torch.allclose(stablemax(z), torch.softmax(z, -1))


def test_stablemax_cross_entropy_and_its_gradient_where_softmax_collapses():
    labels = torch.tensor([1, 0])
    z = torch.tensor([[0.0, 1.0, -1.0], [2.0, -3.0, 0.5]], dtype=torch.float64)
    loss = stablemax_cross_entropy(z, labels, torch.float64)
    assert math.isclose(float(loss), -(math.log(4 / 7) + math.log(3 / 4.75)) / 2, rel_tol=1e-12)
    # A logit gap of 20 collapses the float32 softmax: p_y rounds to 1, the loss is exactly 0
    # and so is the gradient on the correct logit. StableMax has no exponential: the same
    # logits keep a positive loss and a gradient on every logit.
    collapsed = torch.tensor([[0.0, 20.0, 0.0]], requires_grad=True)
    softmax_loss = cross_entropy(collapsed, torch.tensor([1]), torch.float32)
    softmax_loss.backward()
    assert float(softmax_loss.detach()) == 0.0 and float(collapsed.grad[0, 1]) == 0.0
    collapsed.grad = None
    stable_loss = stablemax_cross_entropy(collapsed, torch.tensor([1]), torch.float32)
    stable_loss.backward()
    assert math.isclose(float(stable_loss.detach()), math.log(23 / 21), rel_tol=1e-6)
    assert torch.count_nonzero(collapsed.grad) == 3 and float(collapsed.grad[0, 1]) < 0
    # huge logits of either sign: finite loss and gradient (no NaN from the branch not taken)
    huge = torch.tensor([[1e30, -1e30, 0.0, 1.0]], requires_grad=True)
    stablemax_cross_entropy(huge, torch.tensor([3]), torch.float32).backward()
    assert torch.all(torch.isfinite(huge.grad))


# ---- Grokfast ---------------------------------------------------------------------------------
def _grads(n, gen, shapes=((3,), (2, 2))):
    return [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(n)]


def test_grokfast_ema_updates_as_defined():
    alpha, lamb = 0.9, 2.0
    seq = _grads(6, torch.Generator().manual_seed(2))
    ema = GrokfastEMA(alpha, lamb)
    mu = None
    for grads in seq:
        raw = [g.clone() for g in grads]
        ema(grads)
        mu = [r.clone() for r in raw] if mu is None else [alpha * m + (1 - alpha) * r
                                                          for m, r in zip(mu, raw)]
        for got, r, m, state in zip(grads, raw, mu, ema.mu):
            torch.testing.assert_close(state, m, rtol=1e-14, atol=1e-14)
            torch.testing.assert_close(got, r + lamb * m, rtol=1e-14, atol=1e-14)


def test_grokfast_ma_updates_as_defined():
    window, lamb = 3, 5.0
    seq = _grads(9, torch.Generator().manual_seed(3))
    ma = GrokfastMA(window, lamb)
    recent = deque(maxlen=window)
    for step, grads in enumerate(seq):
        raw = [g.clone() for g in grads]
        recent.append(raw)
        ma(grads)
        for i, (got, r) in enumerate(zip(grads, raw)):
            if step < window - 1:
                assert torch.equal(got, r), "the filter waits until the window is full"
            else:
                mean = sum(past[i] for past in recent) / window
                torch.testing.assert_close(got, r + lamb * mean, rtol=1e-13, atol=1e-13)
    assert ma.count == window and ma.pos == len(seq) % window


# ---- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [dict(loss="sparsemax"), dict(grokfast="fir"),
                                 dict(grokfast_alpha=1.0), dict(grokfast_window=0),
                                 dict(grokfast_ema_lambda=-1.0), dict(grokfast_ma_lambda=float("nan"))])
def test_invalid_variant_settings_are_one_line_errors(bad):
    with pytest.raises(ConfigError) as err:
        validate(RunConfig(p=23, **bad))
    assert "\n" not in str(err.value) and next(iter(bad)) in str(err.value)


def test_defaults_are_the_plain_run():
    cfg = RunConfig()
    assert (cfg.loss, cfg.grokfast, cfg.ortho_grad) == ("softmax", "none", False)
    assert Trainer(RunConfig(p=23, epochs=1)).grad_transform is None


# ---- in the trainer ---------------------------------------------------------------------------
def test_adamw_receives_the_orthogonal_gradient():
    trainer = Trainer(RunConfig(**SMALL, epochs=5, ortho_grad=True, grokfast="ema"))
    before = [p.detach().clone() for p in trainer.optimizer.param_groups[0]["params"]]
    trainer.train_step()
    trainer.train_step()  # the second step: the EMA is no longer the raw gradient
    after = [p.detach().clone() for p in trainer.optimizer.param_groups[0]["params"]]
    trainer2 = Trainer(RunConfig(**SMALL, epochs=5, ortho_grad=True, grokfast="ema"))
    trainer2.train_step()
    weights = [p.detach().clone() for p in trainer2.optimizer.param_groups[0]["params"]]
    trainer2.train_step()
    for w, p in zip(weights, trainer2.optimizer.param_groups[0]["params"]):
        assert abs(float((w.double() * p.grad.double()).sum())) < 1e-4 * float(w.norm() * p.grad.norm())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_grad_norm_is_the_loss_gradient_before_the_transforms():
    plain = Trainer(RunConfig(**SMALL, epochs=1, eval_every=1))
    varied = Trainer(RunConfig(**SMALL, epochs=1, eval_every=1, grokfast="ema", ortho_grad=True))
    plain.run(), varied.run()
    # the first step's loss gradient depends only on the initial weights: the same in both
    assert varied.history[1]["grad_norm"] == plain.history[1]["grad_norm"]


@pytest.mark.parametrize("variant", [
    dict(grokfast="ema", ortho_grad=True, loss="stablemax"),
    dict(grokfast="ma", grokfast_window=7, dtype="float64"),
    dict(grokfast="ema", dtype="float64", loss="stablemax", loss_dtype="float32"),
])
def test_variants_resume_bit_for_bit(variant):
    cfg = RunConfig(**SMALL, epochs=120, eval_every=20, checkpoint_every=60, lr=3e-3, **variant)
    whole = Trainer(cfg)
    whole.run()
    plain = Trainer(RunConfig(**SMALL, epochs=120, eval_every=20, lr=3e-3,
                              dtype=variant.get("dtype", "float32")))
    plain.run()
    assert whole.history[-1]["sum_sq_weights"] != plain.history[-1]["sum_sq_weights"]
    assert all(math.isfinite(r["train_loss"]) for r in whole.history)

    states = []

    class GrabAndStop:
        def on_eval(self, trainer, row, checkpoint):
            if checkpoint and row["epoch"] == 60:
                states.append(trainer.state_dict())
                return True

        def on_end(self, trainer, summary):
            pass

    Trainer(cfg, callbacks=[GrabAndStop()]).run()
    state = torch.load(_roundtrip(states[0]), weights_only=False)
    resumed = Trainer(cfg)
    resumed.load_state_dict(state)
    resumed.run()
    assert resumed.history == whole.history
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def _roundtrip(state):
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf


def test_stablemax_training_learns():
    trainer = Trainer(RunConfig(**SMALL, loss="stablemax", epochs=300, eval_every=50, lr=1e-2,
                                weight_decay=0.1))
    summary = trainer.run()
    assert summary["final_train_acc"] > 0.95
    assert trainer.history[-1]["train_loss"] < 0.2 * trainer.history[0]["train_loss"]
