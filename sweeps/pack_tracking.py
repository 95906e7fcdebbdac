"""Packs on the driver: each member of a pack trial logged as the single trial it stands for.

A pack trial (``sweeps.pack_trial``) reports each member's rows, node and end under the
member's own trial key, and its checkpoints hold a folder per member key. :class:`PackLogger`
hands each member to :class:`sweeps.tracking.MLflowTrialLogger`'s own code with the Tune config
of that single trial (``member_tune_config``) and :class:`MemberCheckpoint` (the member's folder
of the pack's checkpoint), so a member's MLflow run is created, named, tagged, logged, finished
and found again on resume exactly as a single trial's. A member is finished as soon as a
checkpoint holding its record arrives, not when its pack ends. Single trials pass through.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from grokcore.records import DATASET_STATS_FILE, SUMMARY_FILE, current_names
from sweeps.console import ProgressPrinter, ended_text, one_line
from sweeps.pack_trial import member_tune_config, pack_members
from sweeps.tracking import MLflowTrialLogger, TrialOutcome
from sweeps.trial import index_from_dirname


class MemberCheckpoint:
    """A member's part of a pack's Tune checkpoint: ``as_directory()`` gives its folder."""

    def __init__(self, checkpoint, key: str):
        self.checkpoint, self.key = checkpoint, key

    @contextlib.contextmanager
    def as_directory(self):
        with self.checkpoint.as_directory() as folder:
            yield str(Path(folder) / self.key)

    def end(self, start_epoch: int = 0) -> dict[str, Any] | None:
        """The member's end payload from its record in this checkpoint (None: not ended)."""
        with self.as_directory() as folder:
            summary, stats = Path(folder) / SUMMARY_FILE, Path(folder) / DATASET_STATS_FILE
            if not summary.exists():
                return None
            return {"summary": json.loads(summary.read_text()),
                    "dataset_stats": json.loads(stats.read_text()) if stats.exists() else {},
                    "start_epoch": start_epoch}


class PackLogger(MLflowTrialLogger):
    """:class:`MLflowTrialLogger` for sweeps whose trials may be packs."""

    def on_trial_start(self, iteration, trials, trial, **info):
        members = pack_members(trial.config)
        if members is None:
            return super().on_trial_start(iteration, trials, trial, **info)
        for entry in members:
            self.start(entry["key"], member_tune_config(trial.config, entry), trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        members = pack_members(trial.config)
        if members is None:
            return super().on_trial_result(iteration, trials, trial, result, **info)
        news = result.get("members") or {}
        for entry in members:
            if entry["key"] in news:
                self.take_result(entry["key"], member_tune_config(trial.config, entry),
                                 trial.trial_id, news[entry["key"]])

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        members = pack_members(trial.config)
        if members is None:
            return super().on_checkpoint(iteration, trials, trial, checkpoint, **info)
        for entry in members:
            key = entry["key"]
            if key in self._closed:
                continue
            own = MemberCheckpoint(checkpoint, key)
            self.take_checkpoint(key, own)
            if key in self._ends and own.end() is not None:  # ended: its record is here
                self.complete(key, member_tune_config(trial.config, entry), None, own)
                self._closed.add(key)

    def on_trial_complete(self, iteration, trials, trial, **info):
        members = pack_members(trial.config)
        if members is None:
            return super().on_trial_complete(iteration, trials, trial, **info)
        for entry in members:
            if entry["key"] in self._closed:
                continue
            own = MemberCheckpoint(trial.checkpoint, entry["key"]) if trial.checkpoint else None
            last = {"end": own.end()} if own is not None else None  # its record, if it ended
            self.complete(entry["key"], member_tune_config(trial.config, entry), last, own)
            self._closed.add(entry["key"])

    def on_trial_error(self, iteration, trials, trial, **info):
        members = pack_members(trial.config)
        if members is None:
            return super().on_trial_error(iteration, trials, trial, **info)
        from sweeps.console import error_text

        for entry in members:
            self.fail(entry["key"], member_tune_config(trial.config, entry), error_text(trial))
            self._closed.add(entry["key"])

    def reconcile(self, results, configs: Sequence[Any] = (),
                  packs: Sequence[Sequence[int]] | None = None) -> list[TrialOutcome]:
        """``MLflowTrialLogger.reconcile`` over the members of the packs (``packs``: the grid
        indices of each pack, for packs that never started)."""
        return super().reconcile(list(member_results(results, packs)), configs)


@dataclass
class MemberResult:
    """What ``reconcile`` reads of a Tune result, for one member of a pack."""

    config: dict[str, Any]
    path: str
    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint: Any = None
    error: Any = None


def member_results(results, packs: Sequence[Sequence[int]] | None):
    """Each result of a single trial as it is; each pack's result as one result per member;
    a pack that never started as its members' grid indices (in their folder names)."""
    for result in results:
        tune_config = result.config or {}
        members = pack_members(tune_config)
        if members is None and tune_config:
            yield result
        elif members:
            last = (result.metrics or {}).get("members") or {}
            for entry in members:
                key = entry["key"]
                own = MemberCheckpoint(result.checkpoint, key) if result.checkpoint else None
                start = (last.get(key) or {}).get("start_epoch", 0)
                end = (last.get(key) or {}).get("end") or (own.end(start) if own else None)
                yield MemberResult(member_tune_config(tune_config, entry), result.path,
                                   {"trial_id": Path(result.path).name, "end": end}, own,
                                   result.error)
        else:  # never started: the folder's index is the pack's
            index = index_from_dirname(Path(result.path).name)
            for i in (packs[index] if packs is not None and index is not None
                      and index < len(packs) else ()):
                yield MemberResult({}, str(Path(result.path).parent / f"trial_{i:04d}_x"))


class PackProgress(ProgressPrinter):
    """Progress lines for packs: a line when a pack starts, every ``every_s`` seconds while it
    trains, and one per member when it ends (counted over all runs)."""

    def __init__(self, labels=None, total: int = 0, every_s: float = 30.0, sweep: str = ""):
        super().__init__(labels, total, every_s, sweep)
        self._done: set[str] = set()

    def __getstate__(self):
        state = super().__getstate__()
        state["_done"] = set()
        return state

    def _pack_label(self, trial, members) -> str:
        first = self.labels.get(members[0]["key"], members[0]["key"])
        return f"[pack {trial.config['trial']['index']}] {len(members)} runs from {first}"

    def on_trial_start(self, iteration, trials, trial, **info):
        members = pack_members(trial.config)
        if members is None:
            return super().on_trial_start(iteration, trials, trial, **info)
        self._last[trial.trial_id] = 0.0
        self._say(f"start    {self._pack_label(trial, members)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        members = pack_members(trial.config)
        if members is None:
            return super().on_trial_result(iteration, trials, trial, result, **info)
        news = result.get("members") or {}
        now = time.monotonic()
        if now - self._last.get(trial.trial_id, 0) >= self.every_s and news:
            self._last[trial.trial_id] = now
            self._say(f"running  {self._pack_label(trial, members)}  epoch "
                      f"{int(result.get('timesteps_total', 0))}, "
                      f"{result.get('members_training', '?')} of {len(members)} training")
        for entry in members:
            end = (news.get(entry["key"]) or {}).get("end")
            if end and entry["key"] not in self._done:
                self._done.add(entry["key"])
                s = current_names(end["summary"])
                name = self.labels.get(entry["key"], entry["key"])
                self._say(f"done     [{entry['index']}] {name}: {ended_text(s)}, "
                          f"{s.get('epochs_run')} epochs  ({len(self._done)}/{self.total or '?'})")

    def on_trial_complete(self, iteration, trials, trial, **info):
        if pack_members(trial.config) is None:
            return super().on_trial_complete(iteration, trials, trial, **info)

    def on_trial_error(self, iteration, trials, trial, **info):
        members = pack_members(trial.config)
        if members is None:
            return super().on_trial_error(iteration, trials, trial, **info)
        from sweeps.console import error_text

        self._say(f"FAILED   {self._pack_label(trial, members)}: "
                  f"{one_line(error_text(trial))}")
