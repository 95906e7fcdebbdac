"""``python -m sweeps.import_runs DIR``: runs trained elsewhere (``python -m grokcore grid``, on a
GPU machine without Ray or MLflow) logged into MLflow as one sweep.  [driver]

DIR holds one folder per run (``grokcore.pack_grid``: config.json, summary.json, history.csv,
dataset_stats.json) and grid_run.json. Each run becomes a child run of the sweep's parent, written
by the sweep's own logger (:class:`sweeps.tracking.MLflowTrialLogger`): the same trial key
(sweep name and config), name, params, history metrics at step = epoch, end values, tags
(provenance, node) and record artifacts as a trial of ``sweeps/expmod_grid.py`` with that grid
would leave, so the grok table, the UI and ``analysis`` read them alike. Differences, as tags:
``imported_from`` (DIR) and, where the grid was run with ``--history-every N``,
``history_every`` (the history metrics are every N epochs; the end values used every
evaluation).

A run the budget stopped (``UNFINISHED`` in its folder) is not logged: it is counted as
unfinished, and the parent run is KILLED, as after an interrupted sweep. Importing again skips
runs already logged, so a later DIR with the rest completes the sweep.

    python -m sweeps.import_runs DIR [DIR ...] --experiment E --name SWEEP [--tracking-uri URI]
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Sequence

from grokcore.config import ConfigError, RunConfig
from grokcore.pack_grid import GRID_RUN_FILE, UNFINISHED_FILE
from grokcore.records import (CONFIG_FILE, DATASET_STATS_FILE, DEFAULT_TRACKING_URI,
                              HISTORY_FILE, SUMMARY_FILE, current_names, read_history_csv)
from sweeps.console import say


class FolderCheckpoint:
    """A run folder where the logger expects a Tune checkpoint (it reads ``as_directory``)."""

    def __init__(self, folder: Path):
        self.folder = folder

    @contextlib.contextmanager
    def as_directory(self):
        yield str(self.folder)


def run_folders(dirs: Sequence[Path]) -> list[Path]:
    """Every run folder (one holding config.json) of the DIRs, in order; ConfigError if none."""
    folders = []
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"{d} is not a folder; give the --out folder of python -m grokcore grid")
        folders += sorted(p for p in d.iterdir() if (p / CONFIG_FILE).is_file())
    if not folders:
        raise ConfigError(f"no run folders (with {CONFIG_FILE}) in {', '.join(map(str, dirs))}")
    return folders


@functools.lru_cache(maxsize=None)
def grid_run_info(folder: Path) -> dict:
    """A grid's grid_run.json (read once per grid, not once per run); {} without one."""
    path = folder / GRID_RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def node_of(folder: Path, summary: dict) -> dict[str, str]:
    """The node tags of a run trained by ``python -m grokcore grid`` (no Ray node there)."""
    info = grid_run_info(folder.parent)
    where = str(summary.get("provenance", {}).get("device") or info.get("device") or "unknown")
    return {"node_id": f"grid:{folder.parent.name}", "hostname": "grokcore grid",
            "gpu_ids": "none", "device": where}


def import_runs(dirs: Sequence[Path], experiment: str, sweep: str,
                tracking_uri: str = DEFAULT_TRACKING_URI) -> list:
    """Log the runs of ``dirs`` as sweep ``sweep``; returns each run's TrialOutcome."""
    from mlflow.tracking import MlflowClient

    from sweeps.grid import varying_fields
    from sweeps.run_names import run_name
    from sweeps.sweep_run import close_sweep_run, command_line, open_sweep_run, publish_table
    from sweeps.tracking import (MLflowTrialLogger, TrialOutcome, ensure_experiment,
                                 normalize_tracking_uri)
    from sweeps.trial import trial_key

    folders = run_folders(dirs)
    configs = [RunConfig.from_dict(json.loads((f / CONFIG_FILE).read_text())) for f in folders]
    tracking_uri = normalize_tracking_uri(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment)
    client = MlflowClient(tracking_uri)
    extras = varying_fields(configs)
    keys = [trial_key(sweep, c.to_json()) for c in configs]
    labels = {k: run_name(c, extras=extras) for k, c in zip(keys, configs)}
    parent = open_sweep_run(client, experiment_id, sweep, configs=configs, command=command_line())
    logger = MLflowTrialLogger(tracking_uri, experiment, sweep, parent, labels)
    outcomes = []
    for n, (folder, cfg, key) in enumerate(zip(folders, configs, keys)):
        if (folder / UNFINISHED_FILE).exists():
            outcomes.append(TrialOutcome(key=key, config=cfg, status="unfinished"))
            continue
        outcomes.append(log_run(logger, client, folder, cfg, key, n, dirs))
        if (n + 1) % 100 == 0:
            say(f"{n + 1}/{len(folders)} runs")
    logger.flush()
    close_sweep_run(client, parent, outcomes)
    note = publish_table(tracking_uri, experiment, sweep)
    if note:
        say(f"no grok table: {note}")
    return outcomes


def log_run(logger, client, folder: Path, cfg: RunConfig, key: str, index: int, dirs):
    """One run folder as a trial: created (or found: then left as it is), rows, end, files."""
    from sweeps.tracking import outcome_of_run

    summary = current_names(json.loads((folder / SUMMARY_FILE).read_text()))
    run_id = logger.attach(key, cfg, None, index)
    if key in logger._closed:  # logged by an earlier import: read back as a resumed sweep does
        return outcome_of_run(client.get_run(run_id), key, cfg)
    logger.tag_node(run_id, node_of(folder, summary))
    for row in read_history_csv(folder / HISTORY_FILE):
        logger.log_row(run_id, row)
    every = grid_run_info(folder.parent).get("history_every")
    client.set_tag(run_id, "imported_from", str(folder.parent))
    if every:
        client.set_tag(run_id, "history_every", str(every))
    stats = json.loads((folder / DATASET_STATS_FILE).read_text())
    end = {"summary": summary, "dataset_stats": stats, "start_epoch": 0}
    outcome = logger.finish(key, run_id, end, FolderCheckpoint(folder), figures="none")
    outcome.config = cfg
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    from grokcore.cli import OneLineErrorParser

    parser = OneLineErrorParser(prog="python -m sweeps.import_runs",
                                description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("dirs", type=Path, nargs="+", metavar="DIR",
                        help="--out folder(s) of python -m grokcore grid")
    parser.add_argument("--experiment", required=True, help="MLflow experiment (created if missing)")
    parser.add_argument("--name", required=True, help="the sweep's name (its parent run)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"MLflow store (default: {DEFAULT_TRACKING_URI})")
    args = parser.parse_args(argv)
    try:
        outcomes = import_runs(args.dirs, args.experiment, args.name, args.tracking_uri)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from collections import Counter

    from sweeps.sweep_run import outcome_word

    counts = Counter(outcome_word(o) for o in outcomes)  # per outcome, as the parent run counts
    print(f"{len(outcomes)} runs into sweep {args.name!r} of experiment {args.experiment!r}: "
          + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return 1 if counts.get("unfinished") or counts.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
