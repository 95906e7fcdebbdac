"""The signals a grokking run is judged by, kept as running state so a run can stop early.

Rules (thresholds from RunConfig):
* memorization epoch: the first evaluation with train accuracy >= ``memorize_acc``.
* grok epoch: the first evaluation from which test accuracy stays >= ``grok_acc`` to the end of
  the run (a later dip resets it). ``grokked`` means there is one; ``grok_delay`` is grok epoch
  minus memorization epoch.
* loss spike: the training loss of an epoch exceeds ``spike_factor`` x the lowest training loss
  seen before it. Consecutive spiking epochs are one spike; its size is the largest ratio reached.
  Every epoch's loss is checked (it is computed by the training step anyway), so a spike between
  two evaluations is not missed. A running minimum of exactly 0 (float32 underflow) counts as
  1e-30, so the ratio stays finite.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


SPIKE_FLOOR = 1e-30  # the running minimum counts as at least this


@dataclass
class Spike:
    epoch: int  # first epoch above the threshold
    ratio: float  # peak loss / running minimum before it
    loss: float  # peak loss


@dataclass
class SignalTracker:
    memorize_acc: float = 0.99
    grok_acc: float = 0.99
    spike_factor: float = 10.0
    memorization_epoch: int | None = None
    grok_epoch: int | None = None
    evals_above_grok: int = 0  # consecutive evaluations with test accuracy >= grok_acc
    min_train_loss: float = math.inf
    spikes: list[Spike] = field(default_factory=list)
    in_spike: bool = False
    diverged_epoch: int | None = None

    def observe_step(self, epoch: int, train_loss: float) -> None:
        """Check one epoch's training loss for divergence and spikes."""
        if not math.isfinite(train_loss):
            if self.diverged_epoch is None:
                self.diverged_epoch = epoch
            return
        # A float32 loss can underflow to exactly 0; the floor keeps the ratio finite (and JSON).
        ratio = train_loss / max(self.min_train_loss, SPIKE_FLOOR)
        if ratio > self.spike_factor:
            if not self.in_spike:
                self.spikes.append(Spike(epoch, ratio, train_loss))
                self.in_spike = True
            elif ratio > self.spikes[-1].ratio:
                self.spikes[-1].ratio, self.spikes[-1].loss = ratio, train_loss
        else:
            self.in_spike = False
            self.min_train_loss = min(self.min_train_loss, train_loss)

    def observe_eval(self, epoch: int, train_acc: float, test_acc: float) -> None:
        if self.memorization_epoch is None and train_acc >= self.memorize_acc:
            self.memorization_epoch = epoch
        if test_acc >= self.grok_acc:
            if self.evals_above_grok == 0:
                self.grok_epoch = epoch
            self.evals_above_grok += 1
        else:
            self.evals_above_grok = 0
            self.grok_epoch = None

    @property
    def diverged(self) -> bool:
        return self.diverged_epoch is not None

    @property
    def grokked(self) -> bool:
        return self.grok_epoch is not None

    @property
    def grok_delay(self) -> int | None:
        if self.grok_epoch is None or self.memorization_epoch is None:
            return None
        return self.grok_epoch - self.memorization_epoch

    def status(self) -> str:
        if self.diverged:
            return "diverged"
        return "grokked" if self.grokked else "not_grokked"

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status(),
            "grokked": self.grokked,
            "grok_epoch": self.grok_epoch,
            "memorization_epoch": self.memorization_epoch,
            "grok_delay": self.grok_delay,
            "n_spikes": len(self.spikes),
            "spike_epochs": [s.epoch for s in self.spikes],
            "spike_ratios": [round(s.ratio, 3) for s in self.spikes],
            "diverged_epoch": self.diverged_epoch,
        }

    def state_dict(self) -> dict[str, Any]:
        state = asdict(self)
        state["spikes"] = [asdict(s) for s in self.spikes]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "SignalTracker":
        state = dict(state)
        state["spikes"] = [Spike(**s) for s in state["spikes"]]
        return cls(**state)


def softmax_collapse_fraction(logits, loss_dtype) -> float:
    """Share of samples whose sum(exp(z - z_max)) rounds to exactly 1 in ``loss_dtype``.

    For such a sample every non-maximal probability underflows: its cross-entropy gradient is
    exactly zero and it stops learning (Prieto et al. 2025).
    """
    z = logits.to(loss_dtype)
    total = (z - z.max(dim=-1, keepdim=True).values).exp().sum(dim=-1)
    return float((total == 1.0).double().mean())
