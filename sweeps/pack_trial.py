"""A pack as one Tune trial, in a Ray worker: K runs trained together (``grokcore.pack``), each
reported under its own trial key, so the driver logs each to its own MLflow run.

A pack trial's Tune config is ``{"trial": {"index": PACK, "key": PACK_KEY, "pack": [ENTRY,
...]}, "figures": MODE}``, each ENTRY a single trial's (``sweeps.trial.grid_param_space``:
index, key, run, fault). :func:`member_tune_config` turns an entry back into the config of the
single trial it stands for, which is all the driver needs to treat the member as that trial.

What a pack reports: ``"members"``: {member key: the part of a single trial's result that
belongs to one run: ``rows`` (JSON text), ``node`` (with the member's provenance), ``start_epoch``
and, once the member has ended, ``end``}; only members with something new appear. Checkpoints:
one folder with a sub-folder per member key holding its checkpoint (a single run's
``checkpoint.pt``) and, once it has ended, its record (``grokcore.records.write_run_folder``),
the same files as a single trial's final checkpoint. A report goes out at most every
REPORT_EVERY_S seconds, with a checkpoint at a member's checkpoint cadence and whenever a member
ends (its record must reach the driver). A restored pack continues from that folder; the members
whose folder holds a summary had ended and only report their end again.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from grokcore import records
from grokcore.config import RunConfig
from grokcore.records import CHECKPOINT_FILE, SUMMARY_FILE, jsonable
from sweeps.trial import (FIGURES_KEY, REPORT_EVERY_S, config_from_tune, figures_mode,
                          node_info, numeric, rows_text, scratch_folder)

PACK = "pack"  # where a pack trial's config lists its members


def pack_members(tune_config: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The member entries of a pack trial's config; None for a single trial."""
    trial = tune_config.get("trial")
    return trial.get(PACK) if isinstance(trial, Mapping) else None


def run_keys(tune_config: Mapping[str, Any]) -> list[str]:
    """The trial keys of the runs a trial trains: a pack's members', or a single trial's."""
    members = pack_members(tune_config)
    if members is not None:
        return [entry["key"] for entry in members]
    key = (tune_config.get("trial") or {}).get("key")
    return [key] if key else []


def member_tune_config(tune_config: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The Tune config of the single trial that a member entry stands for."""
    return {"trial": dict(entry), FIGURES_KEY: tune_config.get(FIGURES_KEY, "trial")}


def pack_param_space(configs: Sequence[RunConfig], packs: Sequence[Sequence[int]],
                     single_space: Mapping[str, Any], sweep: str) -> dict[str, Any]:
    """Tune's param_space for packs: one grid entry per pack, holding the entries that
    ``single_space`` (``sweeps.trial.grid_param_space`` of the same configs) has for its
    members."""
    import hashlib

    from ray import tune

    entries = single_space["trial"]["grid_search"]
    grid = []
    for number, members in enumerate(packs):
        keys = "\n".join(entries[i]["key"] for i in members)
        key = hashlib.sha1(f"{sweep}\npack\n{keys}".encode()).hexdigest()[:16]
        grid.append({"index": number, "key": key, PACK: [entries[i] for i in members]})
    return {"trial": tune.grid_search(grid), FIGURES_KEY: single_space[FIGURES_KEY]}


def pack_trainable(tune_config: dict[str, Any]) -> None:
    """Ray Tune function trainable of a pack: build (or restore) the members, train them as one
    pack, report each member under its own key."""
    entered = time.time()
    import logging

    import ray
    import torch
    from ray import tune

    from grokcore.pack import Pack
    from grokcore.trainer import Trainer

    clock = {"entered": entered, "imported": time.time()}
    for noisy in ("ray.train", "ray.tune"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    entries = pack_members(tune_config)
    members = [Trainer(config_from_tune(member_tune_config(tune_config, e))) for e in entries]
    finished = []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            for i, entry in enumerate(entries):
                sub = Path(folder) / entry["key"]
                members[i].load_state_dict(torch.load(sub / CHECKPOINT_FILE, map_location="cpu",
                                                      weights_only=False))
                if (sub / SUMMARY_FILE).exists():
                    finished.append(i)
    clock["built"], clock["cpu_built"] = time.time(), time.process_time()
    reporter = PackReporter(entries, [m.epoch for m in members], clock,
                            figures_mode(tune_config) == "trial")
    pack = Pack(members, [reporter], finished=finished)
    for i, member in enumerate(members):
        member.callbacks = [MemberRows(reporter, i)]
        reporter.node[i] = node_info(member)
    for i in finished:
        reporter.ends[i] = pack.summaries[i]
    pack.run()


class MemberRows:
    """A member's Trainer callback: its evaluation rows and its end, to the pack's reporter."""

    def __init__(self, reporter: "PackReporter", index: int):
        self.reporter, self.index = reporter, index

    def on_eval(self, trainer, row: dict[str, Any], checkpoint: bool) -> None:
        self.reporter.maybe_fail(self.index, trainer.epoch)
        self.reporter.rows[self.index].append(dict(row))

    def on_end(self, trainer, summary: dict[str, Any]) -> None:
        self.reporter.ends[self.index] = summary


class PackReporter:
    """The pack's callback: after each round of evaluations, a report (every REPORT_EVERY_S
    seconds, at a checkpoint and when a member ended) with each member's news under its key."""

    def __init__(self, entries: Sequence[Mapping[str, Any]], start_epochs: Sequence[int],
                 clock: dict[str, Any], figures_in_trial: bool):
        self.entries = list(entries)
        self.keys = [e["key"] for e in entries]
        self.start_epochs = list(start_epochs)
        self.clock = clock
        self.clock.setdefault("report_seconds", 0.0)
        self.clock.setdefault("report_cpu_seconds", 0.0)
        self.figures_in_trial = figures_in_trial
        self.rows: list[list[dict[str, Any]]] = [[] for _ in entries]
        self.ends: dict[int, dict[str, Any]] = {}  # ended, end not yet reported
        self.summaries: dict[int, dict[str, Any]] = {}  # every member that ended
        self.node: dict[int, dict[str, str]] = {}
        self._node_sent: set[int] = set()
        self._last_report = 0.0
        # The records of the members that ended, copied into every later checkpoint.
        self._records = Path(tempfile.mkdtemp(prefix="pack_records_", dir=scratch_folder()))

    def maybe_fail(self, index: int, epoch: int) -> None:
        """FOR TESTS: a member's injected fault fails the pack, once (``FaultInjection``)."""
        entry = self.entries[index]
        at = entry.get("fail_at_epoch", 0)
        if not at or epoch < at:
            return
        marker = Path(entry["fault_dir"]) / f"{entry['key']}.fault_injected"
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"fault injected at epoch {epoch}\n")
        raise RuntimeError(f"injected fault at epoch {epoch} (--fail-at-epoch, first attempt)")

    def on_round(self, pack, evaluated: list[int], ended: list[int], checkpoint: bool) -> None:
        started, cpu_started = time.time(), time.process_time()
        self.clock.setdefault("first_eval", started)
        try:
            if checkpoint or self.ends or started - self._last_report >= REPORT_EVERY_S:
                self._report(pack, checkpoint or bool(self.ends))
                self._last_report = time.time()
        finally:
            self.clock["report_seconds"] += time.time() - started
            self.clock["report_cpu_seconds"] += time.process_time() - cpu_started

    def on_end(self, pack, summaries: list[dict[str, Any]]) -> None:
        self.clock["loop_seconds"] = max(s.get("seconds", 0.0) for s in summaries)
        self.clock["end_started"], self.clock["cpu_end_started"] = time.time(), time.process_time()
        try:
            self._report(pack, True, final=True)
        finally:
            shutil.rmtree(self._records, ignore_errors=True)

    def _news(self, pack) -> dict[str, dict[str, Any]]:
        """Each member's rows since the last report, its node the first time, its end once."""
        news = {}
        for i, key in enumerate(self.keys):
            item: dict[str, Any] = {}
            if self.rows[i]:
                item["rows"] = rows_text(self.rows[i])
            if i not in self._node_sent and i in self.node:
                item["node"] = self.node[i]
            if i in self.ends:
                member = pack.members[i]
                item["end"] = {"summary": self.ends[i], "dataset_stats": jsonable(member.dataset.stats),
                               "start_epoch": self.start_epochs[i]}
            if item:
                news[key] = {"start_epoch": self.start_epochs[i], **item}
        return news

    def _report(self, pack, checkpoint: bool, final: bool = False) -> None:
        from ray import tune

        news = self._news(pack)
        last = next((rows[-1] for rows in self.rows if rows), {})
        result = {**numeric(last), "timesteps_total": pack.epoch, "members": news,
                  "members_training": len(pack.active), "pack_size": len(pack.members)}
        if final:
            result["trial_timing"] = dict(self.clock)
        self.rows = [[] for _ in self.keys]
        self._node_sent |= {i for i, key in enumerate(self.keys) if "node" in news.get(key, {})}
        for i, summary in self.ends.items():  # an ended member's record, written once
            records.write_run_folder(pack.members[i], summary, self._records / self.keys[i],
                                     figures=self.figures_in_trial)
        self.summaries.update(self.ends)
        self.ends = {}
        if not checkpoint:
            tune.report(result)
            return
        folder = Path(tempfile.mkdtemp(prefix="pack_", dir=scratch_folder()))
        try:
            self._write(pack, folder)
            if final:
                self.clock["record_written"] = time.time()
                result["trial_timing"] = dict(self.clock)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(folder)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _write(self, pack, folder: Path) -> None:
        """Every member's checkpoint, and the record of each that has ended."""
        pack.sync_all()
        for i, (key, member) in enumerate(zip(self.keys, pack.members)):
            sub = folder / key
            if i in self.summaries:
                shutil.copytree(self._records / key, sub)
            else:
                sub.mkdir()
            records.save_checkpoint(member, sub)
