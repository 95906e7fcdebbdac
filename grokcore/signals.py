"""The signals a grokking run is judged by, kept as running state so a run can stop early.

Rules (thresholds from RunConfig):
* memorization epoch: the first evaluation with train accuracy >= ``memorize_acc``.
* threshold epoch: the first evaluation from which test accuracy (the grok signal) stays >=
  ``grok_acc`` to the end of the run (a later dip resets it). Status ``reached`` means there is
  one; ``threshold_delay`` is the threshold epoch minus the memorization epoch. Reaching the
  threshold is not grokking: the outcome says what it means (the names: grokcore.records).
* phases (``measure_phases``, from the history after the run): the ends of memorization,
  circuit formation and cleanup (Nanda et al. 2023); the last two need the progress measures.
* outcome (``outcome``): what the run shows, in words a table can use:
  ``grokked`` (the threshold reached at least ``min_delay`` evaluations after memorizing:
  delayed generalization; the only outcome called grokked), ``no_delay`` (reached with or
  before memorization: a negative threshold delay is kept, it means test accuracy held the
  threshold before train accuracy reached its own),
  ``lookup`` (test accuracy held the threshold, but the test examples whose class has no
  training example, where the task can tell, are not: test accuracy measured lookup, not
  generalization), ``not_generalized`` and ``diverged``.
* loss spike: the training loss of an epoch exceeds ``spike_factor`` x the lowest training loss
  seen before it, and that lowest loss is above ``spike_floor``. Consecutive spiking epochs are
  one spike; its size is the largest ratio reached. Every epoch's loss is checked (it is
  computed by the training step anyway), so a spike between two evaluations is not missed. The
  floor (the trainer's default: the model dtype's machine epsilon) keeps numerical noise out:
  after softmax collapse the loss is exactly 0 or 1e-20, and a rise from there is no slingshot.
  A floor of 0 is none: a running minimum of exactly 0 then counts as 1e-30.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from grokcore.values import number


OUTCOMES = ("grokked", "no_delay", "lookup", "not_generalized", "diverged")
# The status of a run whose signal held the threshold to the end, or did not (grokcore.records
# lists every name that travels; defined here, where it is decided, so that records imports this
# module and not the reverse).
REACHED, NOT_REACHED = "reached", "not_reached"


def outcome_legend(grok_acc: float = 0.99, min_delay: int = 5, signal: str = "test acc") -> str:
    """The outcomes in one line, for the foot of a table (``signal``: what the threshold reads)."""
    return (f"grokked: {signal} reached {grok_acc:g} at least {min_delay} evaluations after "
            "memorizing and held it; no_delay: reached with memorization; lookup: reached, but "
            "unseen-class acc did not (the test pairs were answered by lookup); "
            "not_generalized: never held it. threshold epoch: where that hold began")


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
    spike_floor: float = 0.0
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
        # Below the floor a rise is noise. With no floor, an exact 0 (underflow) counts as
        # 1e-30, so the ratio stays finite (and JSON).
        above_floor = self.min_train_loss > self.spike_floor or not self.spike_floor
        ratio = train_loss / max(self.min_train_loss, 1e-30) if above_floor else 0.0
        if ratio > self.spike_factor:
            if not self.in_spike:
                self.spikes.append(Spike(epoch, ratio, train_loss))
                self.in_spike = True
            elif ratio > self.spikes[-1].ratio:
                self.spikes[-1].ratio, self.spikes[-1].loss = ratio, train_loss
        else:
            self.in_spike = False
            self.min_train_loss = min(self.min_train_loss, train_loss)

    def observe_eval(self, epoch: int, train_acc: float, test_acc: float | None) -> None:
        """``test_acc`` None (no test example to measure on) never counts as generalized."""
        if self.memorization_epoch is None and train_acc >= self.memorize_acc:
            self.memorization_epoch = epoch
        if test_acc is not None and test_acc >= self.grok_acc:
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
    def reached(self) -> bool:
        """The signal held the threshold from ``grok_epoch`` (the threshold epoch) on."""
        return self.grok_epoch is not None

    @property
    def grok_delay(self) -> int | None:
        if self.grok_epoch is None or self.memorization_epoch is None:
            return None
        return self.grok_epoch - self.memorization_epoch

    def status(self) -> str:
        if self.diverged:
            return "diverged"
        return REACHED if self.reached else NOT_REACHED

    def outcome(self, eval_every: int, min_delay: int, unseen_acc: float | None = None,
                unseen_measured: bool = False) -> str:
        """One of OUTCOMES (see the module doc). ``unseen_measured``: the signal read all test
        examples and the task can tell those whose class has no training example; then
        ``unseen_acc`` is their accuracy at the end (None: there are none, and test accuracy
        can only be lookup)."""
        if self.diverged:
            return "diverged"
        if not self.reached:
            return "not_generalized"
        if unseen_measured and (unseen_acc is None or unseen_acc < self.grok_acc):
            return "lookup"
        delay = self.grok_delay
        if delay is None or delay < min_delay * eval_every:
            return "no_delay"
        return "grokked"

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status(),
            "reached": self.reached,
            "threshold_epoch": self.grok_epoch,
            "memorization_epoch": self.memorization_epoch,
            "threshold_delay": self.grok_delay,
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


# ---- phases ------------------------------------------------------------------------------------
PHASES = ("phase_memorization_end", "phase_circuit_end", "phase_cleanup_end")


def measure_phases(history: Sequence[dict[str, Any]], memorize_acc: float = 0.99,
                   grok_acc: float = 0.99, restricted_frac: float = 0.1,
                   slow_frac: float = 0.5) -> dict[str, float | None]:
    """The three phases of a run, measured from its history (None where not reached).

    * **memorization** ends at the first evaluation with train accuracy >= ``memorize_acc``;
    * **circuit formation** ends at the first measured evaluation after that whose restricted
      loss is at most ``restricted_frac`` (0.1) of the test loss there: the key frequencies alone
      do ten times better on all data than the whole model does on unseen data, so the circuit
      is built and only the memorizing part still hides it;
    * **cleanup** ends at the first evaluation, not before circuit formation's end and from which
      test accuracy stays >= ``grok_acc``, at which the sum of squared weights falls at under
      ``slow_frac`` (0.5) of the fastest rate (per epoch, between consecutive evaluations) it fell
      at since circuit formation ended: weight decay has removed most of what it removes.

    Rows without progress measures are skipped for the circuit rule, so a history with
    ``measure_every`` = 0 gets memorization only.
    """
    rows = sorted(history, key=lambda r: r["epoch"])
    mem = next((r["epoch"] for r in rows if r["train_acc"] >= memorize_acc), None)
    circuit = None
    if mem is not None:
        circuit = next((r["epoch"] for r in rows if r["epoch"] >= mem
                        and number(r.get("restricted_loss")) is not None
                        and r["restricted_loss"] <= restricted_frac * r["test_loss"]), None)
    cleanup = None
    held = _held_from(rows, lambda r: r["test_acc"] >= grok_acc)
    if circuit is not None and held is not None:
        fastest = 0.0
        for prev, row in zip(rows, rows[1:]):
            if prev["epoch"] < circuit:
                continue
            rate = (prev["sum_sq_weights"] - row["sum_sq_weights"]) / max(row["epoch"] - prev["epoch"], 1)
            fastest = max(fastest, rate)
            if row["epoch"] >= held and fastest > 0 and rate < slow_frac * fastest:
                cleanup = row["epoch"]
                break
    return {"phase_memorization_end": mem, "phase_circuit_end": circuit,
            "phase_cleanup_end": cleanup}


def _held_from(rows, pred) -> int | None:
    """The first epoch from which ``pred`` holds to the end of the history."""
    start = None
    for r in rows:
        if pred(r):
            start = r["epoch"] if start is None else start
        else:
            start = None
    return start
