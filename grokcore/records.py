"""What a run leaves behind: the names of its end values, tags and artifacts, and their writer.

This module is the one owner of the contract between the trainer, a run folder, MLflow and the
analysis. A single run (``python -m grokcore train --out DIR``) and a sweep trial (its final
checkpoint, which the driver logs to MLflow) are written by the same :func:`write_run_folder`,
so both hold the same files.
"""

from __future__ import annotations

from typing import Any, Mapping

# ---- where runs are tracked ----------------------------------------------------------------------
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # relative: the working directory's mlflow.db

# ---- end values ----------------------------------------------------------------------------------
# How a trial ended. "failed" (crashed after its retries) and "unfinished" (interrupted, to be
# resumed) are written by the sweep, never by the trainer.
DONE_STATUSES = ("grokked", "not_grokked", "diverged")
# The end values every run's summary has; a sweep sets each as an MLflow tag ("none" when absent)
# and the numeric ones as metrics too.
END_VALUES = ("status", "grokked", "grok_epoch", "memorization_epoch", "grok_delay", "n_spikes")
# The numeric end values the analysis reads back from the tags.
OUTCOME_VALUES = END_VALUES[2:]

# ---- tags ----------------------------------------------------------------------------------------
# Runs that are not trials carry this tag (a trial does not): the analysis's tables and figures
# ("analysis"), a search's summary ("search_summary"), a sweep's parent run ("sweep"). Every reader
# of trials skips runs that have it.
RUN_KIND_TAG = "run_kind"
TRIAL_KEY_TAG = "trial_key"  # stable per sweep and settings: the same trial finds its run again
SWEEP_TAG = "sweep"  # the sweep's name

# ---- artifacts -----------------------------------------------------------------------------------
CHECKPOINT_FILE = "checkpoint.pt"  # trainer.state_dict(): resumes the run bit for bit
HISTORY_FILE = "history.csv"
SUMMARY_FILE = "summary.json"  # end values, measured phases, final metrics
CONFIG_FILE = "config.json"
DATASET_STATS_FILE = "dataset_stats.json"
WEIGHTS_FILE = "model.pt"  # the model's state_dict alone
CURVES_FILE = "curves.png"


def tag_text(value: Any) -> str:
    """A value as an MLflow tag or param: "none" for None, "true"/"false" for booleans."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def jsonable(value: Any) -> Any:
    """Nested mappings and sequences with numpy/torch scalars turned into Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
