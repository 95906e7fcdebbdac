"""Full-batch training of one RunConfig, with signals at every evaluation and a callback hook.

The trainer knows nothing of Ray or MLflow. Whoever runs it passes callbacks:

    class Callback:
        def on_eval(self, trainer, row, checkpoint): ...   # return True to stop the run
        def on_end(self, trainer, summary): ...

``row`` is one line of the history (the metric names that travel: train_loss, test_loss,
train_acc, test_acc, grad_norm, sum_sq_weights, unembed_norm, softmax_collapse). ``checkpoint``
is True at the checkpoint cadence and at the last evaluation; ``trainer.state_dict()`` then holds
everything needed to continue the run bit for bit with ``Trainer.load_state_dict``.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, Sequence

import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.provenance import device_name, provenance  # noqa: F401 (device_name: re-exported)
from grokcore.optim import GradientTransform, make_optimizer, make_scheduler, total_grad_norm
from grokcore.signals import SignalTracker, measure_phases, softmax_collapse_fraction
from grokcore.tasks import TASKS, Dataset, build_dataset, validate

METRICS = ("train_loss", "test_loss", "train_acc", "test_acc", "grad_norm", "sum_sq_weights",
           "unembed_norm", "softmax_collapse", "lr")


# Settings a resumed run may change: the budget and cadences, not what is trained or how.
# ``compile`` changes the speed of the step, not what it computes (as ``device``, within float
# tolerance), so a run may be resumed with it on or off.
RESUMABLE_CHANGES = ("epochs", "stop_after_grok", "checkpoint_every", "device", "measure_every",
                     "compile")
# compile=auto compiles when epochs x training examples x parameters reaches this: about 5,000
# epochs at the canonical p = 113 (225k parameters, 3,830 examples), where the compiled step
# (1.34x at 1 thread) wins back the compilation (about 21 s, once per machine with Inductor's
# on-disk cache) three times over. The demo (p = 31, 1,500 epochs) and the tests stay eager.
COMPILE_AUTO_WORK = 4e12


class Callback(Protocol):
    def on_eval(self, trainer: "Trainer", row: dict[str, float], checkpoint: bool) -> bool | None: ...

    def on_end(self, trainer: "Trainer", summary: dict[str, Any]) -> None: ...


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    def __init__(self, cfg: RunConfig, callbacks: Sequence[Callback] = (),
                 dataset: Dataset | None = None):
        self.cfg = validate(cfg)
        self.callbacks = list(callbacks)
        self.device = resolve_device(cfg.device)
        self.dataset = dataset if dataset is not None else build_dataset(cfg)
        # The task supplies the model and the objective (loss and evaluation); by default the
        # decoder Transformer classified at the last position, on its exact fast path.
        self.task = TASKS[cfg.task]
        self.task.validate_dataset(cfg, self.dataset)
        self.model = self.task.make_model(cfg, self.dataset).to(self.device)
        self.objective = self.task.objective(cfg, self.dataset)
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg)
        # Grokfast / orthogonal gradient between backward and step; None when both are off.
        self.grad_transform = GradientTransform.for_run(self.optimizer.param_groups[0]["params"], cfg)
        self.loss_dtype = getattr(torch, cfg.loss_dtype)
        self.compiled = wants_compile(cfg, self.model, len(self.dataset.train_labels), self.device)
        self._loss = compile_loss(self.objective.loss) if self.compiled else self.objective.loss
        self.signals = SignalTracker(cfg.memorize_acc, cfg.grok_acc, cfg.spike_factor,
                                     cfg.spike_floor or torch.finfo(getattr(torch, cfg.dtype)).eps)
        # The task's progress measures (expmod: grokcore/progress.py) join the evaluation row
        # before any callback sees it.
        self.measures = self.task.progress_measures(cfg, self.dataset) if cfg.measure_every else None
        self.history: list[dict[str, float]] = []
        self.epoch = 0
        self.pack_size = 1  # members of a pack that trained together (grokcore/pack.py)
        # In a stacked pack: brings this trainer's model and optimizer state up to date from the
        # stack before they are read (grokcore/pack.py); None for a run trained alone. A pack
        # evaluates its members on the stack, so a callback reads a member's current weights
        # through synced_model() or state_dict(), which call it, not through .model.
        self.state_source = None
        self.seconds = 0.0  # training time, summed over resumptions (see training_seconds)
        self._run_started: float | None = None  # perf_counter() at the start of run(), while it runs
        ds = self.dataset
        self.train_x, self.train_y = ds.train_inputs.to(self.device), ds.train_labels.to(self.device)
        self.test_x, self.test_y = ds.test_inputs.to(self.device), ds.test_labels.to(self.device)
        self.test_groups = {name: mask.to(self.device) for name, mask in ds.test_groups.items()}

    def use_eager_step(self) -> None:
        """Train on the eager step from here on, and say so in the provenance (compiled off):
        a pack's stacked step is eager, and so is its last member's own step."""
        self.compiled = False
        self._loss = self.objective.loss

    # ---- one epoch and one evaluation ---------------------------------------------------------
    def train_step(self) -> torch.Tensor:
        """One epoch: a full-batch AdamW step, or one step per minibatch when batch_size is set.

        Returns the loss before the step (the mean over minibatches), as a tensor, not synced.
        """
        n, size = len(self.train_y), self.cfg.batch_size
        if size and size < n:
            return self._minibatch_epoch(n, size)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(self.model, self.train_x, self.train_y)
        loss.backward()
        if self.grad_transform is not None:
            self.grad_transform()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()

    def _minibatch_epoch(self, n: int, size: int) -> torch.Tensor:
        # The shuffle depends on (seed, epoch) only, so a resumed run draws the same batches.
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=gen).to(self.device)
        losses = []
        for start in range(0, n, size):
            idx = order[start:start + size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._loss(self.model, self.train_x[idx], self.train_y[idx])
            loss.backward()
            if self.grad_transform is not None:
                self.grad_transform()
            self.optimizer.step()
            losses.append(loss.detach() * len(idx))
        self.scheduler.step()  # warm-up counts epochs
        return torch.stack(losses).sum() / n

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        train = self.objective.evaluate(self.model, self.train_x, self.train_y)
        test = self.objective.evaluate(self.model, self.test_x, self.test_y)
        grad_norm = total_grad_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        if self.grad_transform is not None and self.grad_transform.raw_grad_norm is not None:
            grad_norm = self.grad_transform.raw_grad_norm  # the loss gradient, before the transforms
        row = {
            "epoch": self.epoch,
            "train_loss": train.loss,
            "test_loss": test.loss,
            "train_acc": train.acc,
            "test_acc": test.acc,
            "grad_norm": float(grad_norm),
            "sum_sq_weights": self.model.sum_sq_weights(),
            "unembed_norm": self.model.unembed_norm(),
            "softmax_collapse": softmax_collapse_fraction(train.logits, self.loss_dtype),
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        for split, ev in (("train", train), ("test", test)):
            row.update({f"{split}_{name}": value for name, value in ev.extra.items()})
        for name, mask in self.test_groups.items():  # None where the group is empty
            row[f"test_loss_{name}"], row[f"test_acc_{name}"] = \
                self.objective.subset(test, self.test_y, mask)
        row.update(self.task.extra_metrics(self))
        return row

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self._run_started = time.perf_counter()
        stop = self.epoch == 0 and self._record_eval()
        losses = []
        while not stop and self.epoch < cfg.epochs:
            losses.append(self.train_step())
            self.epoch += 1
            if self.eval_due():
                # Losses stay on the device until here: no host sync per step on a GPU.
                self.observe_losses(self.epoch - len(losses), torch.stack(losses).tolist())
                losses = []
                stop = self._record_eval()
        return self.finish()

    def eval_due(self) -> bool:
        """Whether the epoch just trained is evaluated (the cadence, and the last epoch)."""
        return self.epoch % self.cfg.eval_every == 0 or self.epoch == self.cfg.epochs

    def observe_losses(self, first_epoch: int, losses: Sequence[float]) -> None:
        """The training losses of epochs first_epoch, first_epoch + 1, ... to the signals."""
        for offset, loss in enumerate(losses):
            self.signals.observe_step(first_epoch + offset, loss)

    def finish(self) -> dict[str, Any]:
        """End the run: its training time, its summary, the callbacks' on_end."""
        self.seconds, self._run_started = self.training_seconds(), None
        summary = self.summary()
        for cb in self.callbacks:
            cb.on_end(self, summary)
        return summary

    def _record_eval(self, row: dict[str, float] | None = None) -> bool:
        """Evaluate (or take ``row``, this model's evaluation computed elsewhere: a pack's
        stacked evaluation), update the signals, call back; True when the run should stop."""
        row = self.evaluate() if row is None else {"epoch": self.epoch, **row}
        self.history.append(row)
        train_key, test_key = self.task.signal_keys(self.cfg)  # acc, bacc or unseen-class acc
        self.signals.observe_eval(self.epoch, row[train_key], row[test_key])
        stop = self.ended_by_own_rule()
        every = self.cfg.checkpoint_every
        checkpoint = stop or bool(every and self.epoch % every == 0)
        if self.measures is not None:
            self.measures.on_eval(self, row, checkpoint, final=stop)
        for cb in self.callbacks:
            stop = bool(cb.on_eval(self, row, checkpoint)) or stop
        return stop

    def ended_by_own_rule(self) -> bool:
        """Whether the run's own rule stops it here: diverged, the threshold held for
        ``stop_after_grok`` evaluations, or out of epochs (not a callback, such as a budget)."""
        held = self.cfg.stop_after_grok and self.signals.evals_above_grok >= self.cfg.stop_after_grok
        return bool(self.signals.diverged or held or self.epoch >= self.cfg.epochs)

    def training_seconds(self) -> float:
        """Seconds in run() so far, summed over resumptions: what a checkpoint taken during the
        loop must hold, or a resumed run would count only the time after its last restart."""
        running = time.perf_counter() - self._run_started if self._run_started is not None else 0.0
        return self.seconds + running

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        summary = self.signals.summary()
        unseen_measured = self.cfg.grok_on == "test" and "unseen" in self.test_groups
        summary.update({
            "outcome": self.signals.outcome(self.cfg.eval_every, self.cfg.grok_min_delay,
                                            last.get("test_acc_unseen"), unseen_measured),
            "final_train_loss": last.get("train_loss"),
            "final_test_loss": last.get("test_loss"),
            "final_train_acc": last.get("train_acc"),
            "final_test_acc": last.get("test_acc"),
            **{f"final_test_acc_{name}": last.get(f"test_acc_{name}") for name in self.test_groups},
            "signal_metric": self.task.signal_metric,
            "epochs_run": self.epoch,
            "seconds": round(self.training_seconds(), 3),
            # What produced these numbers (code, torch, device, compiled step, threads).
            "provenance": provenance(self),
        })
        summary.update(measure_phases(self.history, self.cfg.memorize_acc, self.cfg.grok_acc))
        return summary

    # ---- checkpoints --------------------------------------------------------------------------
    def synced_model(self):
        """This run's model, brought up to date first where a stacked pack holds its weights."""
        if self.state_source is not None:
            self.state_source()
        return self.model

    def state_dict(self) -> dict[str, Any]:
        self.synced_model()  # (and the optimizer state, in a stacked pack)
        return {
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "seconds": self.training_seconds(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "signals": self.signals.state_dict(),
            "history": self.history,
            "grad_transform": self.grad_transform and self.grad_transform.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A setting added to RunConfig after the checkpoint was written had its default then.
        theirs = {**RunConfig().to_dict(), **state["config"]}
        ours = self.cfg.to_dict()
        differ = sorted(k for k in ours if k not in RESUMABLE_CHANGES and ours[k] != theirs.get(k))
        if differ:
            raise ConfigError(f"the checkpoint was written with other settings ({', '.join(differ)}); "
                              "use the same ones or start a new run")
        self.epoch = state["epoch"]
        self.seconds = state["seconds"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        floor = self.signals.spike_floor  # older checkpoints do not hold it
        self.signals = SignalTracker.from_state({**state["signals"], "spike_floor": floor})
        self.history = list(state["history"])
        if self.grad_transform is not None:
            self.grad_transform.load_state_dict(state.get("grad_transform") or {})


# ---- the compiled step ------------------------------------------------------------------------
def cpu_compiler() -> str | None:
    """The C++ compiler Inductor would use on the CPU, or None when there is none."""
    import shutil

    return next((found for name in ("g++", "c++", "clang++") if (found := shutil.which(name))),
                None)


def wants_compile(cfg: RunConfig, model: torch.nn.Module, n_train: int,
                  device: torch.device) -> bool:
    """Whether the run compiles its training step (``cfg.compile``; see COMPILE_AUTO_WORK)."""
    if cfg.compile == "off":
        return False
    can = device.type != "cpu" or cpu_compiler() is not None
    if cfg.compile == "on":
        if not can:
            raise ConfigError("compile=on needs a C++ compiler for torch.compile on the CPU (g++ "
                              "or clang++ on PATH); install one or use compile=auto/off")
        return True
    work = cfg.epochs * n_train * sum(p.numel() for p in model.parameters())
    return can and work >= COMPILE_AUTO_WORK


def compile_loss(loss_fn):
    """``loss_fn(model, x, y)`` (forward and loss; backward follows through AOTAutograd) compiled
    by Inductor, static shapes. Inductor's FX-graph and autograd caches on disk (on by default
    in torch; TORCHINDUCTOR_FX_GRAPH_CACHE / TORCHINDUCTOR_AUTOGRAD_CACHE turn them off,
    TORCHINDUCTOR_CACHE_DIR moves them) let later processes of a sweep skip most of the
    compilation."""
    return torch.compile(loss_fn, dynamic=False)


def train(cfg: RunConfig, callbacks: Sequence[Callback] = ()) -> tuple[Trainer, dict[str, Any]]:
    """Convenience: build a trainer, run it, return both it and its summary."""
    trainer = Trainer(cfg, callbacks)
    return trainer, trainer.run()
