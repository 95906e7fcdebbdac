"""Trials: one line per trial run, from MLflow (``trials_from_runs``) or a trials CSV.

A trial line holds the settings that name its table row (``config_keys``: the task, its
``table_keys``, the split where the task has a choice, dtype, frac), its seeds, its end values
(status, outcome, threshold and memorization epochs, ...), its end metrics (epochs run, final test
and unseen-class accuracy, seconds) and its dataset statistics. ``python -m analysis.grok_table
--write-trials FILE`` saves them; ``--trials FILE`` builds the table from such a file alone.

Runs and trials CSVs written before today's names (``grok_epoch``, status ``grokked``, ...:
``grokcore.records.OLD_NAMES``) are read under today's names by :func:`with_current_names`, here
and nowhere else in the analysis.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis import stats
from analysis.runs import AnalysisError
from grokcore.provenance import PROVENANCE_FIELDS
from grokcore.records import OUTCOME_VALUES, current_name, current_status
from grokcore.tasks import TASKS
from grokcore.values import number


# The dataset statistics that trial lines carry: those the tasks declare (``trial_stats``).
TASK_STATS = tuple(dict.fromkeys(s for task in TASKS.values() for s in task.trial_stats))
# What a trial line holds beside its task's keys (and the task metrics of its task).
TRIAL_COLUMNS = ("split", "dtype", "frac_train", "seed", "data_seed", "status", "outcome",
                 *OUTCOME_VALUES, "epochs_run", "final_test_acc", "final_test_acc_unseen",
                 *TASK_STATS, "seconds", *PROVENANCE_FIELDS, "run_name")


def config_keys(task: str) -> tuple[str, ...]:
    """The settings that name a row of ``task``: its ``table_keys``, the split (where the task
    has a choice of splits), dtype, frac_train."""
    known = TASKS.get(task)
    keys = known.table_keys if known else ()
    split = ("split",) if known and len(known.splits) > 1 and "split" not in keys else ()
    return ("task", *keys, *split, "dtype", "frac_train")


def run_keys(task: str) -> tuple[str, ...]:
    """What names one run of ``task``: its row's settings (``config_keys``), seed, data seed."""
    return (*config_keys(task), "seed", "data_seed")


def run_keys_of(trials: pd.DataFrame) -> list[str]:
    """``run_keys`` over every task of ``trials``, each key once."""
    return list(dict.fromkeys(k for task in trials.task.unique() for k in run_keys(str(task))))


def task_metrics(task: str) -> tuple[str, ...]:
    return TASKS[task].table_metrics if task in TASKS else ()


def task_columns(task: str) -> tuple:
    """The task's own columns of the grok table (its ``table_columns``); none for a task this
    code does not know."""
    return TASKS[task].table_columns if task in TASKS else ()


def param_value(value):
    """A param as MLflow stores it (a string) back to the value it stands for, so that keys sort
    and compare: a number (an int where it is whole; read by ``grokcore.values.number``),
    True / False, "none" for a missing one (None, NaN), other text as it is."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "none"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    found = number(value)
    if found is None:  # text that is not a number ("pairs", "float32", "none", "nan")
        return value
    return int(found) if found.is_integer() else found


def _column(runs: pd.DataFrame, name: str, default=None) -> pd.Series:
    return runs[name] if name in runs else pd.Series([default] * len(runs), index=runs.index,
                                                     dtype=object)


def with_current_names(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (runs of ``mlflow.search_runs``, or trial lines) with the columns written under
    old names (``grokcore.records.OLD_NAMES``, with their ``tags.`` / ``metrics.`` prefixes)
    merged into today's, and old status values (``grokked``, ``not_grokked``) renamed. A store
    with runs of both vocabularies gives one column of each value."""
    frame = frame.copy()
    for col in list(frame.columns):
        new = current_name(col)
        if new == col:
            continue
        frame[new] = frame[new].where(frame[new].notna(), frame[col]) if new in frame \
            else frame[col]
        frame = frame.drop(columns=col)
    for col in ("status", "tags.status"):  # (MLflow's run statuses are none of the old ones)
        if col in frame:
            frame[col] = frame[col].map(current_status)
    return frame


def trials_from_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One line per trial run (``analysis.runs.load_runs``): its row keys, seeds, end values,
    end metrics and dataset statistics, under the names of TRIAL_COLUMNS."""
    runs = with_current_names(runs)
    tasks = _column(runs, "params.task", "expmod").fillna("expmod")
    trials = pd.DataFrame({"task": tasks}, index=runs.index)
    params = {k for task in trials.task.unique() for k in config_keys(task)}
    for key in sorted(params - {"task"}) + ["seed", "data_seed"]:
        trials[key] = _column(runs, f"params.{key}").map(param_value)
    trials["frac_train"] = pd.to_numeric(trials["frac_train"], errors="coerce")
    # A run with no end tag either failed before reporting (MLflow FAILED) or was interrupted
    # and not resumed yet (RUNNING / KILLED): the latter is unfinished, not failed.
    # (``status`` is MLflow's run status, ``tags.status`` the trial's end value.)
    unended = _column(runs, "status", "FAILED").map(
        lambda s: "failed" if s == "FAILED" else "unfinished")
    status = _column(runs, "tags.status")
    trials["status"] = status.where(status.notna(), unended)
    outcome = _column(runs, "tags.outcome").map(lambda v: None if v in (None, "none") else v)
    ended = trials.status.isin([*stats.ESTIMABLE, "diverged"])
    trials["outcome"] = outcome.where(ended & outcome.notna(), None)
    for name in OUTCOME_VALUES:
        trials[name] = _column(runs, f"tags.{name}").map(number).astype(float)
    metrics = {"epochs_run": "epochs_run", "final_test_acc": "test_acc",
               "final_test_acc_unseen": "test_acc_unseen", "seconds": "seconds",
               **{m: m for m in TASK_STATS},
               **{m: m for task in trials.task.unique() for m in task_metrics(task)}}
    for name, metric in metrics.items():
        trials[name] = pd.to_numeric(_column(runs, f"metrics.{metric}", math.nan),
                                     errors="coerce")
    for name in PROVENANCE_FIELDS:  # what the run ran with (runs from before: empty)
        trials[name] = _column(runs, f"tags.{name}")
    trials["run_name"] = _column(runs, "tags.mlflow.runName", "")
    first = ["task", *sorted(params - {"task"} - set(TRIAL_COLUMNS))]
    trials = trials[first + [c for c in trials if c not in first]]
    return one_run_per_setting(trials, _column(runs, "start_time", 0))


def one_run_per_setting(trials: pd.DataFrame, started: pd.Series) -> pd.DataFrame:
    """The trials with one run per row setting and seed pair: two runs of the same settings
    and the same seed and data seed (a configuration trained again elsewhere, say on a GPU
    beside an interrupted CPU sweep) are one replicate, not two. Kept: an ended run before an
    unended one, then the earliest started. ``attrs["duplicates"]``: how many were left out."""
    keys = run_keys_of(trials)
    unended = ~trials.status.isin([*stats.ESTIMABLE, "diverged"])
    order = pd.DataFrame({"unended": unended.values, "started": pd.Series(started).values},
                         index=trials.index).sort_values(["unended", "started"], kind="stable")
    ranked = trials.loc[order.index]
    kept = ranked[~ranked[keys].astype(str).duplicated(keep="first")].sort_index()
    kept = kept.reset_index(drop=True)
    kept.attrs["duplicates"] = len(trials) - len(kept)
    return kept


def read_trials(path: Path) -> pd.DataFrame:
    try:
        # round_trip: the floats back bit for bit (pandas' fast parser can be one ulp off)
        trials = with_current_names(pd.read_csv(path, float_precision="round_trip"))
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise AnalysisError(f"cannot read trials from {path}: {err}") from None
    missing = [c for c in ("task", "status", "threshold_epoch", "epochs_run") if c not in trials]
    if missing:
        raise AnalysisError(f"{path} is not a trials CSV (no column {', '.join(missing)}); write "
                            "one with --write-trials")
    return trials.astype({"outcome": object}) if "outcome" in trials else trials
