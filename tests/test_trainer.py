import math
import time

import torch

from grokcore.config import RunConfig
from grokcore.signals import SignalTracker, softmax_collapse_fraction
from grokcore.trainer import Trainer


def test_quick_config_groks_after_memorizing(quick_config):
    trainer = Trainer(quick_config)
    summary = trainer.run()
    assert summary["status"] == "reached"
    mem, grok = summary["memorization_epoch"], summary["threshold_epoch"]
    assert mem is not None and grok is not None
    assert grok >= mem + 200, "test accuracy should reach 0.99 well after train accuracy does"
    # the history agrees with the signals
    rows = {r["epoch"]: r for r in trainer.history}
    assert rows[mem]["train_acc"] >= 0.99
    assert all(r["train_acc"] < 0.99 for r in trainer.history if r["epoch"] < mem)
    assert rows[grok]["test_acc"] >= 0.99
    assert all(r["test_acc"] >= 0.99 for r in trainer.history if r["epoch"] >= grok)
    assert rows[mem]["test_acc"] < 0.5, "at memorization the model has not generalized yet"
    assert summary["threshold_delay"] == grok - mem
    # stop_after_grok=3 ends the run on the third evaluation above the threshold
    assert summary["epochs_run"] == grok + 2 * quick_config.eval_every
    # cleanup: the weights shrink between memorization and grokking
    assert rows[grok]["sum_sq_weights"] < rows[mem]["sum_sq_weights"]


def test_same_seeds_give_identical_histories():
    cfg = RunConfig(p=23, epochs=120, eval_every=20, lr=3e-3)
    first, second = Trainer(cfg), Trainer(cfg)
    first.run(), second.run()
    assert first.history == second.history
    other = Trainer(cfg.replace(seed=1))
    other.run()
    assert other.history != first.history


def test_resume_from_checkpoint_matches_uninterrupted_run():
    cfg = RunConfig(p=23, epochs=200, eval_every=20, checkpoint_every=100, lr=3e-3, warmup_epochs=10)
    whole = Trainer(cfg)
    whole.run()

    states = []

    class GrabAndStop:
        def on_eval(self, trainer, row, checkpoint):
            if checkpoint and row["epoch"] == 100:
                states.append(trainer.state_dict())
                return True

        def on_end(self, trainer, summary):
            pass

    first_part = Trainer(cfg, callbacks=[GrabAndStop()])
    first_part.run()
    # a checkpoint taken inside the loop holds the training time up to it (it used to hold 0)
    assert 0 < states[0]["seconds"] <= first_part.seconds
    resumed = Trainer(cfg)
    resumed.load_state_dict(states[0])
    assert resumed.epoch == 100
    resumed_at = time.perf_counter()
    summary = resumed.run()
    second_part = time.perf_counter() - resumed_at
    assert resumed.history == whole.history
    # the summary's seconds are the checkpoint's plus the resumed part's (at most its wall time)
    assert states[0]["seconds"] < summary["seconds"] <= states[0]["seconds"] + second_part + 1e-3
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_absurd_learning_rate_diverges():
    cfg = RunConfig(p=23, epochs=400, eval_every=50, lr=1e6, weight_decay=0.0, dtype="float32",
                    loss_dtype="float32")
    summary = Trainer(cfg).run()
    assert summary["status"] == "diverged"
    assert summary["epochs_run"] < 400
    assert summary["diverged_epoch"] is not None


def test_spike_rule():
    tracker = SignalTracker(spike_factor=10.0)
    losses = [4.0, 2.0, 1.0, 0.1, 0.01, 0.5, 0.9, 0.02, 0.005, 0.2, 0.004]
    for epoch, loss in enumerate(losses):
        tracker.observe_step(epoch, loss)
    # 0.5 and 0.9 (epochs 5-6) are one spike above 10 x 0.01; 0.2 (epoch 9) is above 10 x 0.005
    assert [s.epoch for s in tracker.spikes] == [5, 9]
    assert math.isclose(tracker.spikes[0].ratio, 90.0)
    assert math.isclose(tracker.spikes[1].ratio, 40.0)
    zero = SignalTracker(spike_factor=10.0)
    for epoch, loss in enumerate([1.0, 0.0, 1e-6]):  # float32 loss underflowing to 0, then back
        zero.observe_step(epoch, loss)
    assert [s.epoch for s in zero.spikes] == [2] and math.isfinite(zero.spikes[0].ratio)
    tracker.observe_step(11, float("nan"))
    assert tracker.status() == "diverged"


def test_grok_epoch_resets_when_test_accuracy_drops():
    tracker = SignalTracker()
    for epoch, (train, test) in enumerate([(0.5, 0.1), (1.0, 0.2), (1.0, 0.995), (1.0, 0.9),
                                           (1.0, 0.999), (1.0, 1.0)]):
        tracker.observe_eval(epoch * 100, train, test)
    assert tracker.memorization_epoch == 100
    assert tracker.grok_epoch == 400
    assert tracker.grok_delay == 300


def test_softmax_collapse_fraction():
    logits = torch.tensor([[0.0, 20.0, 0.0], [0.0, 1.0, 0.0], [0.0, 50.0, 0.0]])
    # a gap of 20 collapses in float32 (threshold about 16.6) but not in float64 (about 36.7)
    assert softmax_collapse_fraction(logits, torch.float32) == 2 / 3
    assert softmax_collapse_fraction(logits, torch.float64) == 1 / 3


def test_history_rows_carry_the_metric_names():
    trainer = Trainer(RunConfig(p=23, epochs=40, eval_every=20))
    trainer.run()
    assert [r["epoch"] for r in trainer.history] == [0, 20, 40]
    for name in ("train_loss", "test_loss", "train_acc", "test_acc", "grad_norm",
                 "sum_sq_weights", "unembed_norm", "softmax_collapse"):
        assert all(math.isfinite(r[name]) for r in trainer.history), name
    assert trainer.history[-1]["grad_norm"] > 0
    expected = sum(float((p.double() ** 2).sum()) for p in trainer.model.parameters())
    assert math.isclose(trainer.history[-1]["sum_sq_weights"], expected, rel_tol=1e-12)


def test_spike_floor_ignores_rises_from_a_collapsed_loss():
    # float32's machine epsilon as the floor: an exact 0 followed by 1e-20 is numerical noise
    floor = float(torch.finfo(torch.float32).eps)
    t = SignalTracker(spike_factor=10.0, spike_floor=floor)
    for epoch, loss in enumerate([0.5, 1e-3, 0.0, 1e-20, 1e-12, 1e-9]):
        t.observe_step(epoch, loss)
    assert t.spikes == []
    # above the floor the same rule finds a spike
    t = SignalTracker(spike_factor=10.0, spike_floor=floor)
    for epoch, loss in enumerate([0.5, 1e-3, 2e-2, 1e-3]):
        t.observe_step(epoch, loss)
    assert [(s.epoch, round(s.ratio)) for s in t.spikes] == [(2, 20)]
    # without a floor the collapsed run "spikes" (what the floor is there to prevent)
    t = SignalTracker(spike_factor=10.0, spike_floor=0.0)
    for epoch, loss in enumerate([0.5, 1e-3, 1e-20, 1e-12]):
        t.observe_step(epoch, loss)
    assert len(t.spikes) == 1


def test_trainer_spike_floor_defaults_to_the_dtype_epsilon():
    assert Trainer(RunConfig(p=7, epochs=1)).signals.spike_floor == float(torch.finfo(torch.float32).eps)
    assert Trainer(RunConfig(p=7, epochs=1, dtype="float64")).signals.spike_floor == float(
        torch.finfo(torch.float64).eps)
    assert Trainer(RunConfig(p=7, epochs=1, spike_floor=1e-4)).signals.spike_floor == 1e-4


def test_outcomes_tell_grokking_from_lookup_and_no_delay():
    def tracker(mem, grok):
        t = SignalTracker()
        for epoch in range(0, 1001, 100):
            t.observe_eval(epoch, 1.0 if epoch >= mem else 0.0, 1.0 if epoch >= grok else 0.0)
        return t

    assert tracker(100, 800).outcome(100, 5) == "grokked"
    assert tracker(100, 800).outcome(100, 5, unseen_acc=1.0, unseen_measured=True) == "grokked"
    assert tracker(100, 800).outcome(100, 5, unseen_acc=0.3, unseen_measured=True) == "lookup"
    assert tracker(100, 800).outcome(100, 5, unseen_acc=None, unseen_measured=True) == "lookup"
    assert tracker(100, 300).outcome(100, 5) == "no_delay"  # 2 evaluations after memorizing
    delayed = tracker(300, 100)  # generalized before memorizing: the negative delay is kept
    assert delayed.grok_delay == -200 and delayed.outcome(100, 5) == "no_delay"
    assert tracker(100, 2000).outcome(100, 5) == "not_generalized"
    t = tracker(100, 800)
    t.observe_step(900, math.nan)
    assert t.outcome(100, 5) == "diverged"
