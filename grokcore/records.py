"""What a run leaves behind: the names of its end values, tags and artifacts, and their writer.

This module is the one owner of the contract between the trainer, a run folder, MLflow and the
analysis. A single run (``python -m grokcore train --out DIR``) and a sweep trial (its final
checkpoint, which the driver logs to MLflow) are written by the same :func:`write_run_folder`,
so both hold the same files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

# ---- where runs are tracked ----------------------------------------------------------------------
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # relative: the working directory's mlflow.db

# ---- the vocabulary ------------------------------------------------------------------------------
# "Grokked" names one outcome only: generalization well after memorization (the outcome
# ``grokked`` of grokcore.signals.OUTCOMES: grokked, no_delay, lookup, not_generalized,
# diverged). That the grok signal (test accuracy, or unseen-class accuracy with grok_on unseen)
# held the threshold (grok_acc) to the end is the status ``reached``, and the first evaluation
# from which it held is the ``threshold_epoch``: a lookup run reaches the threshold and is not
# grokked. ``threshold_delay`` is the threshold epoch minus the memorization epoch.
from grokcore.signals import NOT_REACHED, OUTCOMES, REACHED  # noqa: E402,F401  (OUTCOMES too)

# How a trial ended. "failed" (crashed after its retries) and "unfinished" (interrupted, to be
# resumed) are written by the sweep, never by the trainer.
DONE_STATUSES = (REACHED, NOT_REACHED, "diverged")
STATUSES = (*DONE_STATUSES, "failed", "unfinished")
# The end values every run's summary has; a sweep sets each as an MLflow tag ("none" when absent)
# and the numeric ones as metrics too (``reached`` as 1/0).
END_VALUES = ("status", "outcome", "reached", "threshold_epoch", "memorization_epoch",
              "threshold_delay", "n_spikes")
# The numeric end values the analysis reads back from the tags.
OUTCOME_VALUES = ("threshold_epoch", "memorization_epoch", "threshold_delay", "n_spikes")

# Names written before the vocabulary above (summaries, MLflow tags and metrics, trials CSVs):
# every reader maps them with current_names / current_status, so old runs still read correctly.
OLD_NAMES = {"grokked": "reached", "grok_epoch": "threshold_epoch",
             "grok_delay": "threshold_delay"}
OLD_STATUSES = {"grokked": REACHED, "not_grokked": NOT_REACHED}


def current_status(status: Any) -> Any:
    """A status as named today (``grokked`` -> ``reached``, ``not_grokked`` -> ``not_reached``)."""
    return OLD_STATUSES.get(status, status) if isinstance(status, str) else status


def current_name(name: str) -> str:
    """A key as named today; a ``tags.`` or ``metrics.`` prefix (mlflow.search_runs) is kept."""
    for prefix in ("tags.", "metrics."):
        if name.startswith(prefix):
            return prefix + OLD_NAMES.get(name[len(prefix):], name[len(prefix):])
    return OLD_NAMES.get(name, name)


def current_names(values: Mapping[str, Any]) -> dict[str, Any]:
    """A summary, a run's tags or metrics, written with the old names, in today's names (a key
    written under both keeps today's value); the status value is mapped too."""
    out = {k: v for k, v in values.items() if current_name(k) == k}
    for key, value in values.items():
        out.setdefault(current_name(key), value)
    if "status" in out:
        out["status"] = current_status(out["status"])
    return out


# ---- tags ----------------------------------------------------------------------------------------
# Runs that are not trials carry this tag (a trial does not): the analysis's tables and figures
# ("analysis"), a search's summary ("search_summary"), a sweep's parent run ("sweep"). Every reader
# of trials skips runs that have it.
RUN_KIND_TAG = "run_kind"
TRIAL_KEY_TAG = "trial_key"  # stable per sweep and settings: the same trial finds its run again
SWEEP_TAG = "sweep"  # the sweep's name
SWEEP_RUN_KIND = "sweep"  # run_kind of a sweep's parent run (its trials are its child runs)
# MLflow's own tags: a child run names its parent (the UI nests it); Markdown descriptions of an
# experiment (experiment tag) or a run (run tag).
PARENT_RUN_TAG = "mlflow.parentRunId"
DESCRIPTION_TAG = "mlflow.note.content"

# ---- artifacts -----------------------------------------------------------------------------------
CHECKPOINT_FILE = "checkpoint.pt"  # trainer.state_dict(): resumes the run bit for bit
HISTORY_FILE = "history.csv"
SUMMARY_FILE = "summary.json"  # end values, measured phases, final metrics
CONFIG_FILE = "config.json"
DATASET_STATS_FILE = "dataset_stats.json"
WEIGHTS_FILE = "model.pt"  # the model's state_dict alone
# A sweep's parent run: every trial's test and unseen-class accuracy against epoch on one plot
# (artifact TRIALS_FIGURE.png, and the image of that key that MLflow's chart view shows).
TRIALS_FIGURE = "trials_compared"


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


# ---- the writer ----------------------------------------------------------------------------------
def write_run_folder(trainer, summary: Mapping[str, Any], folder: str | Path,
                     figures: bool = True, weights: bool = True, history_every: int = 0) -> Path:
    """Write what a finished run leaves behind into ``folder``: the history, the summary (end
    values, measured phases, final metrics), the dataset statistics, the config, the final
    weights and, with ``figures``, the figures (``grokcore.figures.write_run_figures``).

    The command line's ``--out`` folder and a sweep trial's final checkpoint (whose files the
    driver logs to MLflow) are both written here, so both hold the same files. A sweep may leave
    the figures to its driver, which draws them from these files later
    (:func:`load_run_folder`). The checkpoint (``CHECKPOINT_FILE``) is written by
    :func:`save_checkpoint`, beside these. ``weights=False`` leaves model.pt out;
    ``history_every`` N > 0 writes only the evaluations at multiples of N epochs and those of
    the memorization and grok epochs and the last (a grid carried off a GPU machine:
    ``grokcore.pack_grid``); the summary was computed from all of them.
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_history_csv(thinned(trainer.history, summary, history_every), folder / HISTORY_FILE)
    (folder / SUMMARY_FILE).write_text(json.dumps(jsonable(summary), indent=2))
    (folder / CONFIG_FILE).write_text(json.dumps(trainer.cfg.to_dict(), indent=2))
    (folder / DATASET_STATS_FILE).write_text(json.dumps(jsonable(trainer.dataset.stats), indent=2))
    if weights:
        torch.save(trainer.model.state_dict(), folder / WEIGHTS_FILE)
    if figures:
        from grokcore.figures import write_run_figures

        write_run_figures(trainer.cfg, trainer.history, summary, trainer.model, trainer.dataset,
                          folder, task=trainer.task)
    return folder


def thinned(history: Sequence[Mapping[str, Any]], summary: Mapping[str, Any],
            every: int) -> Sequence[Mapping[str, Any]]:
    """The rows at multiples of ``every`` epochs, at the memorization and threshold epochs, and the
    last; all of them for ``every`` 0."""
    if not every or not history:
        return history
    events = {summary.get("memorization_epoch"), summary.get("threshold_epoch")}
    last = history[-1]["epoch"]
    return [r for r in history if r["epoch"] % every == 0 or r["epoch"] in events
            or r["epoch"] == last]


def load_run_folder(folder: str | Path):
    """What :func:`write_run_folder` wrote, read back: ``(cfg, history, summary, model,
    dataset)``, the model with its final weights on the CPU and the dataset rebuilt from the
    config (datasets are a function of the config and its seeds)."""
    import torch

    from grokcore.config import RunConfig
    from grokcore.tasks import TASKS, build_dataset

    folder = Path(folder)
    cfg = RunConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    dataset = build_dataset(cfg)
    model = TASKS[cfg.task].make_model(cfg, dataset)
    model.load_state_dict(torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    summary = current_names(json.loads((folder / SUMMARY_FILE).read_text()))
    return cfg, read_history_csv(folder / HISTORY_FILE), summary, model.eval(), dataset


def save_checkpoint(trainer, folder: str | Path) -> Path:
    """``trainer.state_dict()`` as ``folder/CHECKPOINT_FILE``, replaced atomically: an
    interruption never leaves a half-written checkpoint."""
    import torch

    path = Path(folder) / CHECKPOINT_FILE
    tmp = path.with_suffix(".tmp")
    torch.save(trainer.state_dict(), tmp)
    tmp.replace(path)
    return path


def record_files(folder: str | Path) -> list[Path]:
    """The files of a run folder that make its record (everything but the checkpoint)."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name != CHECKPOINT_FILE)


def write_history_csv(history: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    with open(path, "w", newline="") as fh:
        # rows may differ in keys (progress measures come every measure_every epochs only)
        names = list(dict.fromkeys(k for row in history for k in row))
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        writer.writerows(history)


def read_history_csv(path: str | Path) -> list[dict[str, Any]]:
    """The rows :func:`write_history_csv` wrote, as they were: empty cells (an absent key, None
    or empty text) are absent keys, integers and floats come back as such (Python's float text
    round-trips exactly), other text stays text (``key_freqs`` of a single frequency reads as a
    number)."""
    with open(path, newline="") as fh:
        return [{k: _cell(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


def _cell(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class RunDirectory:
    """The ``--out`` folder: the checkpoint at the checkpoint cadence, and at the end what every
    run leaves behind (``grokcore.write_run_folder``: the same files as a sweep trial)."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def on_eval(self, trainer, row: dict[str, float], checkpoint: bool) -> None:
        if checkpoint:
            save_checkpoint(trainer, self.path)

    def on_end(self, trainer, summary: dict[str, Any]) -> None:
        write_run_folder(trainer, summary, self.path)
