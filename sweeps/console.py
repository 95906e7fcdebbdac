"""What a sweep prints: its tables (the grid, the outcomes; laid out by
``analysis.text_table.format_table``) and progress lines.

Nothing here imports Ray, MLflow or torch (a dry run prints the grid table at once).
:class:`ProgressPrinter` has the hooks of a Tune callback; the runner mixes it with
``tune.Callback`` to hand it to Tune.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from analysis.text_table import format_table
from grokcore.config import RunConfig
from grokcore.records import current_names, tag_text
from grokcore.signals import outcome_legend
from sweeps.grid import FIELD_NAMES, varying_fields
from sweeps.trial import index_of, key_of


def short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def task_keys(configs: Sequence[RunConfig]) -> list[str]:
    """The fields that name a configuration of the configs' task (its ``table_keys``: a, b, p
    for expmod); ``task`` first where the configs mix tasks."""
    from grokcore.tasks import TASKS  # imports torch: the callers have it already

    tasks = sorted({c.task for c in configs})
    if len(tasks) != 1:
        return ["task"]
    return list(TASKS[tasks[0]].table_keys)


def format_grid(configs: Sequence[RunConfig], always: Sequence[str] | None = None) -> str:
    """A table of the grid: index, the ``always`` fields (by default the task's
    :func:`task_keys`) and every field that varies."""
    always = task_keys(configs) if always is None else list(always)
    cols = always + [n for n in varying_fields(configs) if n not in always]
    return format_table(["#"] + cols, [[i] + [getattr(c, n) for n in cols]
                                       for i, c in enumerate(configs)])


def format_outcomes(outcomes: Sequence[Any], always: Sequence[str] | None = None) -> str:
    """A table of the trials (TrialOutcomes), sorted by their settings (p, a, b first): the
    settings that vary, the outcome (grokked, no_delay, lookup, ...; a trial without one shows
    its status: failed, unfinished), the memorization and threshold epochs, for expmod the final
    unseen-class accuracy and the leakage, and the epochs run; a one-line legend below."""
    configs = [o.config for o in outcomes if o.config is not None]
    always = (task_keys(configs) if configs else []) if always is None else list(always)
    cols = always + [n for n in varying_fields(configs) if n not in always]
    order = [n for n in ("p", "a", "b") if n in cols] + [n for n in cols if n not in "pab"]
    expmod = any(getattr(o, "leakage", None) is not None for o in outcomes)

    def settings(o) -> dict[str, Any]:
        return o.config.to_dict() if o.config else {}

    rows = []
    for o in sorted(outcomes, key=lambda o: [_sortable(settings(o).get(n)) for n in order]):
        d = settings(o)
        rows.append([short(d.get(n, "?")) for n in cols]
                    + [getattr(o, "outcome", None) or o.status, tag_text(o.memorization_epoch),
                       tag_text(o.threshold_epoch)]
                    + ([_acc(o.unseen_acc), _acc(o.leakage, 2)] if expmod else [])
                    + [tag_text(o.epochs_run)])
    head = cols + ["outcome", "memorized", "threshold epoch"] \
        + (["unseen acc", "leakage"] if expmod else []) + ["epochs"]
    return format_table(head, rows) + "\n" + _legend(configs)


def _legend(configs: Sequence[RunConfig]) -> str:
    """The outcomes' legend, naming the metric the first trial's threshold read."""
    from grokcore.tasks import TASKS  # imports torch: only once a sweep has run

    first = configs[0] if configs else RunConfig()
    signal = TASKS[first.task].signal_keys(first)[1].replace("_", " ")  # e.g. "test acc"
    return outcome_legend(first.grok_acc, first.grok_min_delay, signal)


def ended_text(summary: Mapping[str, Any]) -> str:
    """How a trial ended, for its ``done`` line: its outcome (its status when it has none) and
    its threshold epoch when it has one, e.g. ``grokked, threshold epoch 680``."""
    held = summary.get("threshold_epoch")
    what = summary.get("outcome") or summary.get("status", "?")
    return what + (f", threshold epoch {held}" if held is not None else "")


def _sortable(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _acc(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def say(text: str) -> None:
    """A progress line of the sweep, behind the time of day."""
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def one_line(err: BaseException | str) -> str:
    """The last line of an error (a traceback's is the exception itself)."""
    text = str(err).strip().splitlines()
    return text[-1] if text else repr(err)


def error_text(trial) -> str:
    """A failed Tune trial's error file, or a note that it has none."""
    path = getattr(trial, "error_file", None) or ""
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    return text.strip() or "trial failed (no error file)"


class ProgressPrinter:
    """A line per trial when it starts, ends or fails, and every ``every_s`` seconds while it
    runs, instead of Tune's tables. Its methods are Tune callback hooks."""

    def __init__(self, labels: Mapping[str, str] | None = None, total: int = 0,
                 every_s: float = 30.0, sweep: str = ""):
        self.labels = dict(labels or {})
        self.total = total
        self.every_s = every_s
        self.sweep = sweep
        self._last: dict[str, float] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_last"] = {}
        return state

    @staticmethod
    def _ended(trials, trial) -> int:
        """Trials ended so far, this one included. Counted from Tune's list, not by this printer,
        so that a resumed sweep counts the trials that ended before the interruption."""
        ended = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
        return len(ended | {trial.trial_id})

    def _label(self, trial) -> str:
        key = key_of(trial.config, trial.trial_id, self.sweep)
        index = index_of(trial.config)
        name = self.labels.get(key)
        if name is None:
            searched = {k: v for k, v in trial.config.items() if k in FIELD_NAMES}
            name = " ".join(f"{k}={short(v)}" for k, v in searched.items()) or trial.trial_id
        return f"[{index if index is not None else trial.trial_id}] {name}"

    def _say(self, text: str) -> None:
        say(text)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._last[trial.trial_id] = time.monotonic()
        self._say(f"start    {self._label(trial)}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._say(f"retry    {self._label(trial)}: crashed, restarting from its last checkpoint")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        now = time.monotonic()
        if now - self._last.get(trial.trial_id, 0) < self.every_s or "end" in result:
            return
        self._last[trial.trial_id] = now
        row = result.get("row") or {}
        # The accuracy the grok signals read: balanced where the task's classes are imbalanced.
        acc = "bacc" if "test_bacc" in row else "acc"
        self._say(f"running  {self._label(trial)}  epoch {int(row.get('epoch', 0))}  "
                  f"train {acc} {row.get(f'train_{acc}', math.nan):.3f}  "
                  f"test {acc} {row.get(f'test_{acc}', math.nan):.3f}  "
                  f"loss {row.get('train_loss', math.nan) + 0.0:.2e}")  # + 0.0: no "-0.00"

    def on_trial_complete(self, iteration, trials, trial, **info):
        end = (trial.last_result or {}).get("end") or {}
        s = current_names(end.get("summary", {}))
        self._say(f"done     {self._label(trial)}: {ended_text(s)}, "
                  f"{s.get('epochs_run')} epochs in {s.get('seconds', 0):.1f} s"
                  f"  ({self._ended(trials, trial)}/{self.total or '?'})")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._say(f"FAILED   {self._label(trial)}: {one_line(error_text(trial))}"
                  f"  ({self._ended(trials, trial)}/{self.total or '?'})")
