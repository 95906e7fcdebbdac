"""Packs (grokcore/pack.py, grokcore/stacked.py): each member of a pack is the run it would be
alone. Compared against single runs trained by the plain Trainer, on the CPU, float64 where a
tolerance is claimed."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.pack import Pack, check_pack_configs
from grokcore.tasks import config_for
from grokcore.trainer import Trainer


# The quick config (README, "A run that groks fast") in float64, eager, on the CPU.
QUICK64 = RunConfig(p=31, frac_train=0.5, lr=3e-3, weight_decay=3.0, eval_every=10,
                    dtype="float64", device="cpu", compile="off")


def worst_relative(rows, reference) -> float:
    """The largest relative difference over every number of two histories of equal length."""
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in reference]
    worst = 0.0
    for row, ref in zip(rows, reference):
        assert row.keys() == ref.keys()
        for key, value in ref.items():
            if isinstance(value, float) and math.isfinite(value):
                worst = max(worst, abs(row[key] - value) / max(abs(value), 1e-300))
    return worst


def weights_relative(model, reference) -> float:
    ours, theirs = model.state_dict(), reference.state_dict()
    return max(float((ours[k] - theirs[k]).abs().max() / theirs[k].abs().max().clamp(min=1e-300))
               for k in theirs)


class EnginesSeen:
    """A pack callback: the engine's class after each round, by the number of members active."""

    def __init__(self):
        self.by_active: dict[int, set[str]] = {}

    def on_round(self, pack, evaluated, ended, checkpoint):
        if pack.active:
            self.by_active.setdefault(len(pack.active), set()).add(type(pack.steps).__name__)

    def on_end(self, pack, summaries):
        pass


def test_adamw_on_a_stacked_parameter_is_independent_optimizations():
    """AdamW over one [K, ...] tensor gives each slice exactly what an AdamW of its own gives,
    for gradients that differ in scale by orders of magnitude between the slices."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
             * torch.tensor([1e-6, 1.0, 1e4], dtype=torch.float64)[:, None, None]
             for _ in range(20)]
    stacked = start.clone().requires_grad_()
    singles = [start[i].clone().requires_grad_() for i in range(3)]
    settings = dict(lr=3e-3, weight_decay=3.0, betas=(0.9, 0.98), foreach=True)
    opt = torch.optim.AdamW([stacked], **settings)
    opts = [torch.optim.AdamW([p], **settings) for p in singles]
    for g in grads:
        stacked.grad = g.clone()
        opt.step()
        for i, (p, o) in enumerate(zip(singles, opts)):
            p.grad = g[i].clone()
            o.step()
    for i in range(3):
        assert torch.equal(stacked.detach()[i], singles[i].detach())
        assert torch.equal(opt.state[stacked]["exp_avg_sq"][i], opts[i].state[singles[i]]["exp_avg_sq"])


def test_members_equal_their_single_runs_float64():
    """Three members differing in seed, data seed and (a, b), trained as one stacked model until
    each stops: every history value within 1e-9 of the single run's, the same memorization and
    grok epochs, outcome and epochs run; the same final weights. The evaluations are the
    stack's (one batched forward), the progress measures each member's own synced model's; the
    last member left trains on its own step."""
    base = QUICK64.replace(epochs=1500, stop_after_grok=3, measure_every=500)
    configs = [base, base.replace(seed=1, data_seed=7), base.replace(a=3, b=3, seed=2)]
    engines = EnginesSeen()
    pack = Pack.from_configs(configs, [engines], engine="stacked")
    assert pack.engine == "stacked"
    summaries = pack.run()
    assert engines.by_active[3] == engines.by_active[2] == {"StackedSteps"}
    assert engines.by_active[1] == {"LoopSteps"}
    outcomes = set()
    for cfg, member, summary in zip(configs, pack.members, summaries):
        single = Trainer(cfg)
        alone = single.run()
        for key in ("memorization_epoch", "threshold_epoch", "outcome", "status", "epochs_run",
                    "n_spikes"):
            assert summary[key] == alone[key], (cfg.seed, key)
        assert worst_relative(member.history, single.history) <= 1e-9
        measured = [r for r in member.history if r.get("key_freqs") is not None]
        assert len(measured) >= 2 and \
            [r["key_freqs"] for r in measured] == [r.get("key_freqs") for r in single.history
                                                   if r.get("key_freqs") is not None]
        assert weights_relative(member.model, single.model) <= 1e-9
        assert summary["provenance"]["pack_size"] == "3"
        assert alone["provenance"]["pack_size"] == "1"
        outcomes.add(summary["outcome"])
    assert "grokked" in outcomes  # the comparison covers a run that groks
    assert len({s["epochs_run"] for s in summaries}) == 3  # they stopped at different epochs


@pytest.mark.parametrize("variant", [dict(grokfast="ema", ortho_grad=True),
                                     dict(grokfast="ma", grokfast_window=5, warmup_epochs=20)])
def test_per_member_rules_follow_the_single_run(variant):
    """Gradient norm, Grokfast state, orthogonal gradient and warm-up are each member's own."""
    base = QUICK64.replace(epochs=60, **variant)
    configs = [base, base.replace(seed=5, data_seed=9, a=2, b=5)]
    pack = Pack.from_configs(configs, engine="stacked")
    pack.run()
    for cfg, member in zip(configs, pack.members):
        single = Trainer(cfg)
        single.run()
        assert worst_relative(member.history, single.history) <= 1e-9
        assert member.history[-1]["grad_norm"] > 0


def test_a_stopped_member_is_frozen_while_the_others_train_on():
    """Member 0 ends at epoch 40 (its budget): its weights and optimizer state no longer change,
    they equal those of a single 40-epoch run, and the others keep training to 120."""
    base = QUICK64.replace(epochs=120)
    configs = [base.replace(seed=0, epochs=40), base.replace(seed=1), base.replace(seed=2, a=3)]
    at_end = {}

    class Snapshot:
        def on_eval(self, trainer, row, checkpoint):
            if row["epoch"] == 40:  # state_dict(): a stacked member's state, brought up to date
                state = copy.deepcopy(trainer.state_dict())
                at_end[trainer.cfg.seed] = (state["model"], state["optimizer"])

        def on_end(self, trainer, summary):
            pass

    pack = Pack.from_configs(configs, engine="stacked")
    for member in pack.members:
        member.callbacks = [Snapshot()]
    pack.run()
    stopped = pack.members[0]
    weights, optimizer = at_end[0]
    assert stopped.epoch == 40 and stopped.history[-1]["epoch"] == 40
    assert all(torch.equal(stopped.model.state_dict()[k], v) for k, v in weights.items())
    state = stopped.optimizer.state_dict()["state"]
    assert all(torch.equal(state[i]["exp_avg"], s["exp_avg"]) for i, s in optimizer["state"].items())
    single = Trainer(configs[0])
    single.run()
    assert weights_relative(stopped.model, single.model) <= 1e-9
    for member in pack.members[1:]:
        assert member.epoch == 120
        before = at_end[member.cfg.seed][0]
        assert not torch.equal(member.model.state_dict()["W_E"], before["W_E"])


@pytest.mark.parametrize("engine", ["stacked", "loop"])
def test_a_pack_resumes_bit_for_bit(engine):
    """A pack continued from its members' checkpoints at epoch 100 (one member ended before,
    one ends after) gives the same histories and weights, bit for bit, as the pack that ran
    through (float32, Grokfast on: its state travels too)."""
    base = RunConfig(p=23, frac_train=0.5, lr=3e-3, weight_decay=1.0, eval_every=10,
                     checkpoint_every=50, epochs=200, grokfast="ema", device="cpu", compile="off")
    configs = [base.replace(epochs=50), base.replace(seed=1, epochs=150), base.replace(seed=2)]
    saved = {}

    class SaveAt100:
        def on_round(self, pack, evaluated, ended, checkpoint):
            if checkpoint and pack.epoch == 100:
                saved["states"] = copy.deepcopy(pack.state_dicts())
                saved["finished"] = pack.finished

        def on_end(self, pack, summaries):
            pass

    whole = Pack.from_configs(configs, [SaveAt100()], engine=engine)
    whole.run()
    assert saved["finished"] == [0]
    resumed = Pack.resume(configs, saved["states"], saved["finished"], engine=engine)
    resumed.run()
    for a, b in zip(whole.members, resumed.members):
        assert a.history == b.history
        assert a.epoch == b.epoch
        assert all(torch.equal(a.model.state_dict()[k], v) for k, v in b.model.state_dict().items())


def test_runs_that_cannot_share_a_pack_are_named():
    with pytest.raises(ConfigError, match=r"agree on lr .*0\.001.*0\.003"):
        check_pack_configs([RunConfig(), RunConfig(lr=3e-3)])
    with pytest.raises(ConfigError, match="agree on d_model"):
        check_pack_configs([RunConfig(), RunConfig(seed=3), RunConfig(d_model=64)])
    check_pack_configs([RunConfig(), RunConfig(seed=3, data_seed=4, a=5, b=7, epochs=10)])
    # The classes split gives each split seed its own number of training examples when
    # x -> x^3 is not a bijection of Z_31 (gcd(3, 30) = 3): they cannot be stacked.
    classes = QUICK64.replace(a=3, b=3, split="classes", epochs=10)
    with pytest.raises(ConfigError, match="examples"):
        Pack.from_configs([classes, classes.replace(data_seed=1)], engine="stacked")
    with pytest.raises(ConfigError, match="several positions"):
        Pack.from_configs([config_for("sorting", epochs=2, device="cpu")] * 2, engine="stacked")


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_stacked_evaluation_equals_each_members_own(dtype, tol):
    """The stacked engine evaluates every member on the stack in one batched forward: each
    member's row equals the row its own trainer computes on its own synced model (accuracies
    exactly; the rest within the rounding of a batched product), every key in the same order,
    the test groups ('unseen': test pairs whose class no training pair has) included, also
    after steps."""
    from grokcore.stacked import StackedSteps

    base = QUICK64.replace(dtype=dtype, epochs=50)
    members = [Trainer(c) for c in (base, base.replace(seed=1, data_seed=5),
                                    base.replace(a=3, b=5, seed=2, data_seed=9))]
    steps = StackedSteps(members)
    assert steps.batched_eval
    for _ in range(3):
        steps.step()
    rows = steps.evaluate([0, 1, 2])
    for slot, member in enumerate(members):
        steps.sync(slot, full=False)
        own = member.evaluate()
        own.pop("epoch")
        assert list(rows[slot]) == list(own)
        for key, value in own.items():
            if value is None or key.endswith("_acc") or key.startswith("test_acc"):
                assert rows[slot][key] == value, key
            else:
                assert rows[slot][key] == pytest.approx(value, rel=tol, abs=1e-300), key
    assert any(r.get("test_acc_unseen") is not None for r in rows)
