"""A pack: K runs trained together in one process, each member a whole run.

Members are ordinary :class:`grokcore.trainer.Trainer` objects: each has its own dataset and
split, model, optimizer, signals, history, progress measures, callbacks, checkpoint and summary,
and is evaluated on its own model by the trainer's own code. What the pack shares is the loop,
and on a GPU the arithmetic:

* ``stacked`` engine (``grokcore.stacked``): the members' parameters stacked along a leading
  axis, one batched forward on the exact fast path, one loss, one AdamW step. A GPU spends a
  single run's step launching kernels; a stacked step launches the same kernels for K members.
  Needs the same tensor shapes (the same number of training examples) and a task whose loss is
  classification at the last position, full batch.
* ``loop`` engine: each member's own training step, one after another. On a CPU the step is
  compute-bound and stacking gains nothing per model (README, "Packs"), so there a pack's gain
  is what it shares outside training (one process, one trial, one report for K runs); each
  member's arithmetic is then exactly the single run's.

``auto`` takes ``stacked`` on cuda where the members allow it, else ``loop``.

Members may differ only in :data:`PACK_FREE_FIELDS` (the data, the seeds, the budget, cadences
and signal thresholds); everything that sets tensor shapes, the optimizer's constants or the
device must agree (:func:`check_pack_configs`, one-line error naming the field). A member that
stops (the threshold reached and held, diverged, out of epochs, or stopped by a callback) is
frozen: it leaves the stack, which is rebuilt from the members still training, so they run
faster.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Protocol, Sequence

from grokcore.config import ConfigError, RunConfig

# What may differ between the members of a pack: neither tensor shapes (the number of training
# examples, which the split and frac set, is checked once the data are built) nor optimizer
# constants nor the device.
PACK_FREE_FIELDS = ("seed", "data_seed", "a", "b", "split", "frac_train", "epochs", "eval_every",
                    "checkpoint_every", "stop_after_grok", "measure_every", "memorize_acc",
                    "grok_acc", "grok_on", "grok_min_delay", "spike_factor", "spike_floor")
ENGINES = ("auto", "stacked", "loop")
# (torch is imported where it is used: the command line reads ENGINES before it needs torch.)


def pack_key(cfg: RunConfig) -> str:
    """What a run's pack-mates must share (every field but PACK_FREE_FIELDS), as text."""
    values = cfg.to_dict()
    return repr(sorted((k, v) for k, v in values.items() if k not in PACK_FREE_FIELDS))


def pack_groups(configs: Sequence[RunConfig], stacked: bool) -> list[list[int]]:
    """Indices of the runs that may share a pack, grouped, in order of first appearance; with
    ``stacked``, also by number of training examples (a stacked step's shapes)."""
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        key = pack_key(cfg)
        if stacked:
            key += f" n_train={_n_train(cfg)}"
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _n_train(cfg: RunConfig) -> int:
    from grokcore.tasks import build_dataset

    return len(build_dataset(cfg).train_labels)


def check_pack_configs(configs: Sequence[RunConfig], label: str = "run") -> None:
    """ConfigError (one line, naming the field) unless the configs may share a pack."""
    if not configs:
        raise ConfigError("a pack needs at least one run")
    first = configs[0].to_dict()
    for i, cfg in enumerate(configs[1:], start=1):
        for name, value in cfg.to_dict().items():
            if name not in PACK_FREE_FIELDS and value != first[name]:
                raise ConfigError(
                    f"{label}s of a pack must agree on {name} ({label} 0: {first[name]!r}, "
                    f"{label} {i}: {value!r}); only {', '.join(PACK_FREE_FIELDS)} may differ: "
                    "train them in separate packs")


def stack_problem(members: Sequence[Any]) -> str | None:
    """Why these trainers cannot train as one stacked model (None: they can)."""
    from grokcore.model import Transformer
    from grokcore.objectives import LastPosition

    first = members[0]
    if not isinstance(first.model, Transformer) or not isinstance(first.objective, LastPosition):
        return (f"task {first.cfg.task} trains on several positions or a decoder; the stacked "
                "step needs classification at the last position (expmod, primality, coprimality)")
    for i, m in enumerate(members):
        n = len(m.train_y)
        if m.epoch != first.epoch:  # one AdamW step count and warm-up for the stack
            return (f"member {i} is at epoch {m.epoch}, member 0 at {first.epoch}: stacked "
                    "members train in step; resume them with the loop engine or one by one")
        if m.cfg.batch_size and m.cfg.batch_size < n:
            return f"member {i} trains in minibatches (batch_size={m.cfg.batch_size}); the " \
                   "stacked step is full-batch"
        if n != len(first.train_y) or m.train_x.shape != first.train_x.shape:
            return (f"member {i} trains on {n} examples, member 0 on {len(first.train_y)} "
                    f"(split={m.cfg.split}, frac_train={m.cfg.frac_train}): stacked members need "
                    "the same number; pack such runs apart (--split pairs gives every seed the "
                    "same count)")
    return None


def choose_engine(engine: str, members: Sequence[Any]) -> str:
    """``stacked`` or ``loop`` for ``engine`` (see ENGINES); ConfigError for ``stacked`` that
    the members cannot take."""
    if engine not in ENGINES:
        raise ConfigError(f"pack engine {engine!r} is not known; choose one of: {', '.join(ENGINES)}")
    if engine == "loop":
        return engine
    problem = stack_problem(members)
    if engine == "stacked" and problem:
        raise ConfigError(problem)
    if engine == "auto":
        return "stacked" if members[0].device.type == "cuda" and not problem else "loop"
    return engine


class LoopSteps:
    """Each member's own training step, one after another (a CPU's engine)."""

    def __init__(self, members: Sequence[Any]):
        self.members = list(members)

    def step(self) -> "torch.Tensor":
        import torch

        return torch.stack([m.train_step() for m in self.members])

    def sync(self, slot: int, full: bool = True) -> None:
        """The members hold their own state: nothing to write."""


class PackCallback(Protocol):
    def on_round(self, pack: "Pack", evaluated: list[int], ended: list[int],
                 checkpoint: bool) -> None: ...

    def on_end(self, pack: "Pack", summaries: list[dict[str, Any]]) -> None: ...


class Pack:
    """K member Trainers trained together; ``run()`` returns their summaries in order.

    Each member's own callbacks see its evaluations and its end as in a single run. Pack
    callbacks (:class:`PackCallback`) see each round of evaluations: which members were
    evaluated, which ended, and whether a checkpoint is due (some member's cadence, or an end);
    :meth:`sync_all` then brings every member's trainer up to date for saving.
    ``finished``: indices of members that had ended before (a resumed pack): they do not train.
    """

    def __init__(self, members: Sequence[Any], callbacks: Sequence[PackCallback] = (),
                 engine: str = "auto", finished: Sequence[int] = ()):
        check_pack_configs([m.cfg for m in members], "member")
        if len({m.device for m in members}) > 1:
            raise ConfigError("members of a pack must train on the same device")
        self.members = list(members)
        self.callbacks = list(callbacks)
        for member in self.members:
            member.pack_size = len(self.members)
        self.summaries: dict[int, dict[str, Any]] = {i: self.members[i].summary()
                                                     for i in finished}
        self.active = [i for i in range(len(self.members)) if i not in self.summaries]
        self.engine = choose_engine(engine, [self.members[i] for i in self.active]
                                    or self.members)
        self.steps = self._engine_for(self.active)

    @classmethod
    def from_configs(cls, configs: Sequence[RunConfig], callbacks: Sequence[PackCallback] = (),
                     engine: str = "auto") -> "Pack":
        from grokcore.trainer import Trainer

        check_pack_configs(configs)
        return cls([Trainer(cfg) for cfg in configs], callbacks, engine)

    @classmethod
    def resume(cls, configs: Sequence[RunConfig], states: Sequence[dict[str, Any]],
               finished: Sequence[int] = (), callbacks: Sequence[PackCallback] = (),
               engine: str = "auto") -> "Pack":
        """A pack continued from its members' checkpoints (:meth:`state_dicts`, each a single
        run's ``Trainer.state_dict``); ``finished``: the members that had ended."""
        from grokcore.trainer import Trainer

        check_pack_configs(configs)
        members = [Trainer(cfg) for cfg in configs]
        for member, state in zip(members, states):
            member.load_state_dict(state)
        return cls(members, callbacks, engine, finished)

    def state_dicts(self) -> list[dict[str, Any]]:
        """Every member's checkpoint (a single run's ``Trainer.state_dict``, which
        ``python -m grokcore train --resume`` also takes), the active members' brought up to
        date from the engine first."""
        self.sync_all()
        return [m.state_dict() for m in self.members]

    @property
    def finished(self) -> list[int]:
        """The members that have ended."""
        return sorted(self.summaries)

    def _engine_for(self, indices: Sequence[int]):
        members = [self.members[i] for i in indices]
        if not members:
            return None
        if self.engine == "stacked":
            from grokcore.stacked import StackedSteps

            for member in members:
                member.use_eager_step()  # the stack is eager (vmap): no member's compiled step
            if len(members) == 1:
                # The last member trains on its own step: a stack of one is slower than the run
                # alone (0.72-0.79x on an H200; benchmarks/pack_speed.py --stack-of-one), and the
                # slowest member is what a pack waits for. Its state was synced in full when
                # the others ended, so it holds its own state again.
                members[0].state_source = None
                return LoopSteps(members)
            # An evaluation syncs what it reads; reading a member's state (a checkpoint) syncs
            # the rest (optimizer moments...) first.
            for i in indices:
                self.members[i].state_source = functools.partial(self._sync_member, i)
            return StackedSteps(members)
        return LoopSteps(members)

    def _sync_member(self, index: int) -> None:
        self.steps.sync(self.active.index(index))

    # ---- the loop -------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        started = time.perf_counter()
        for i in self.active:
            self.members[i]._run_started = started
        fresh = [i for i in self.active if self.members[i].epoch == 0]
        if fresh:
            self._round(fresh)
        losses: list = []  # [members] tensors, on the device until the next round
        while self.active:
            losses.append(self.steps.step())
            for i in self.active:
                self.members[i].epoch += 1
            due = [i for i in self.active if self.members[i].eval_due()]
            if due:
                self._observe(losses)
                losses = []
                self._round(due)
        summaries = [self.summaries[i] for i in range(len(self.members))]
        for cb in self.callbacks:
            cb.on_end(self, summaries)
        return summaries

    def _observe(self, losses: list) -> None:
        """The training losses since the last round to each active member's signals (one host
        sync for all)."""
        import torch

        columns = list(zip(*torch.stack(losses).tolist()))
        for slot, i in enumerate(self.active):
            member = self.members[i]
            member.observe_losses(member.epoch - len(columns[slot]), columns[slot])

    def _round(self, due: list[int]) -> None:
        """Evaluate the members due (each on its own model), end those that stop, drop them
        from the engine, and tell the pack callbacks."""
        ended = []
        slots = [self.active.index(i) for i in due]
        rows = self.steps.evaluate(slots) if getattr(self.steps, "batched_eval", False) else None
        for j, i in enumerate(due):
            if rows is None:
                self.steps.sync(slots[j], full=False)  # it evaluates its own model
            if self.members[i]._record_eval(None if rows is None else rows[j]):
                ended.append(i)
        checkpoint = bool(ended) or any(
            self.members[i].cfg.checkpoint_every
            and self.members[i].epoch % self.members[i].cfg.checkpoint_every == 0 for i in due)
        if ended:
            # Every member's own state, once: the ended ones' records hold it, and the engine
            # of the rest is rebuilt from it.
            self.sync_all()
        for i in ended:
            self.summaries[i] = self.members[i].finish()
        if ended:
            for i in ended:
                self.members[i].state_source = None  # frozen: its own state is final
            self.active = [i for i in self.active if i not in ended]
            self.steps = self._engine_for(self.active)
        for cb in self.callbacks:
            cb.on_round(self, due, ended, checkpoint)

    def sync_all(self) -> None:
        """Write every active member's part of the engine into its own trainer (for saving)."""
        for slot in range(len(self.active)):
            self.steps.sync(slot)

    @property
    def epoch(self) -> int:
        """The epoch of the members still training (they train in step); the last epoch of
        any member once all have ended."""
        if self.active:
            return self.members[self.active[0]].epoch
        return max(m.epoch for m in self.members)
