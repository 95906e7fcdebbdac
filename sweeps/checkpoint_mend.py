"""Mend a stored sweep whose snapshot names checkpoints that Tune has already pruned.

Tune keeps ``CheckpointConfig(num_to_keep)`` checkpoints a trial and deletes older ones as new
ones arrive, but it writes the experiment snapshot (``experiment_state-*.json``, which names
each trial's latest checkpoint) only every few seconds, or after ``num_to_keep`` new
checkpoints. A driver killed between the deletion and the next snapshot leaves a snapshot
that names checkpoints no longer on disk; ``Tuner.restore`` then fails such a trial with
"Could not recover from checkpoint as it does not exist on storage anymore" (seen in CI).

A newer checkpoint of the same trial is then always on disk (the deletion happened because
it arrived), and a trial goes on correctly from any of its own checkpoints: each holds the
whole trainer state, and the MLflow logger skips epochs it has already logged. So before a
resume each missing checkpoint the snapshot names gets a copy of the trial's newest one.
Only Ray's stored state is read; nothing of it is rewritten.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)$")


def mend_pruned_checkpoints(sweep_path: str) -> list[str]:
    """For each unfinished trial of the sweep at ``sweep_path`` (a local folder) whose stored
    checkpoints are missing, copy its newest checkpoint into their places; one line per
    mended trial. A remote storage (``scheme://``) or a sweep without a snapshot: nothing."""
    if "://" in sweep_path:
        return []
    snapshots = sorted(Path(sweep_path).glob("experiment_state-*.json"))
    if not snapshots:
        return []
    notes = []
    for state, metadata in json.loads(snapshots[-1].read_text())["trial_data"]:
        if json.loads(state).get("status") == "TERMINATED":
            continue  # an ended trial is not restored from its checkpoint
        stored = _stored_checkpoints(metadata)
        missing = [p for p in stored if not p.exists()]
        if not missing:
            continue
        newest = _newest_checkpoint(missing[-1].parent)
        if newest is None:
            continue  # nothing to go on from: Tune reports the trial as it would have
        # An older kept checkpoint is refilled too: Tune deletes it again when the trial's
        # next checkpoint arrives, and a missing one makes that delete raise, which Tune logs
        # and which skips the rest of its bookkeeping for that checkpoint (its index, the
        # snapshot it forces).
        for path in missing:
            shutil.copytree(newest, path)
        trial = missing[-1].parent.name
        if missing[-1] == stored[-1]:
            notes.append(f"{trial}: its stored {stored[-1].name} was pruned after the last "
                         f"snapshot; going on from {newest.name}")
        else:
            notes.append(f"{trial}: its older stored {', '.join(p.name for p in missing)} "
                         f"pruned after the last snapshot refilled; going on from "
                         f"{stored[-1].name}")
    return notes


def _stored_checkpoints(metadata: str) -> list[Path]:
    """The checkpoint folders a trial's stored run metadata names, the latest last."""
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    manager = _TrainingRunMetadata.from_json_state(metadata).checkpoint_manager
    if manager is None or manager.latest_checkpoint_result is None:
        return []
    latest = Path(manager.latest_checkpoint_result.checkpoint.path)
    kept = {Path(r.checkpoint.path) for r in manager.best_checkpoint_results} - {latest}
    return [*sorted(kept), latest]


def _newest_checkpoint(trial_dir: Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in trial_dir.glob("checkpoint_*")
             if (m := CHECKPOINT_DIR.search(p.name)) and p.is_dir()]
    return max(found)[1] if found else None
