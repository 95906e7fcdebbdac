"""One trial, in a Ray worker: its key, its Tune config, the trainable and what it reports.

What a trial reports to Tune (a "result"), for the evaluations of up to REPORT_EVERY_S seconds:
every numeric key of the last history row, flat (so ``metric="test_acc"`` works),
``timesteps_total`` = epoch, that row under ``"row"``, every row since the last report under
``"rows"`` (JSON text: :func:`rows_of`) and where the trial runs under ``"node"``
(:func:`node_info`). At the end one more result carries ``"end"``: the summary and dataset
statistics.
Checkpoints: the trainer's state every ``checkpoint_every`` epochs (the runner makes that 10 x
``eval_every`` when it is 0); the last one also holds the artifacts (history.csv, model.pt,
config.json, dataset_stats.json, summary.json and, when the sweep leaves them to the trial, the
figures: ``grokcore.records.write_run_folder``, the same files as ``python -m grokcore train
--out``), which the driver logs to MLflow (and draws the figures from: ``sweeps.figures_after``).

The key and config helpers are pure; Ray, torch and the analysis are imported only inside the
functions that run in a worker, so the driver's console and the search can use the helpers
without loading them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from grokcore.config import RunConfig
from grokcore import records
from grokcore.records import CHECKPOINT_FILE, SUMMARY_FILE, jsonable
from sweeps import knobs
from sweeps.grid import FIELD_NAMES

FAULT_MARKER = "fault_injected"
# Where a trial's config says who draws its figures (sweeps.figures_after).
FIGURES_KEY = "figures"
# Where a search's param_space keeps the base run's settings. Not a RunConfig field name (the
# searched fields sit beside it at the top level; "base" would be the digit base).
BASE_RUN = "base_run"


@dataclass(frozen=True)
class FaultInjection:
    """For tests: trials at these grid indices raise at the first evaluation at or after
    ``at_epoch``, on their first attempt only (a marker file in the trial folder remembers it)."""

    at_epoch: int
    trials: tuple[int, ...] = (0,)


# ==== keys and configs of trials =================================================================

def config_hash(cfg: RunConfig) -> str:
    return hashlib.sha1(cfg.to_json().encode()).hexdigest()[:12]


def trial_key(sweep: str, cfg_json: str) -> str:
    """Stable key of a trial: the same sweep and settings give the same key (and MLflow run)."""
    return hashlib.sha1(f"{sweep}\n{cfg_json}".encode()).hexdigest()[:16]


def grid_param_space(configs: Sequence[RunConfig], sweep: str,
                     fault: FaultInjection | None = None, fault_dir: str = "",
                     figures: str = "after") -> dict[str, Any]:
    """Tune's param_space for a grid: one grid_search entry per RunConfig, keyed and indexed,
    and who draws the figures (``figures``).

    ``fault_dir`` (with ``fault``) is where the trials remember that their fault was injected;
    it must be visible to every node (the sweep's folder under a shared storage).
    """
    from ray import tune

    entries = []
    for i, cfg in enumerate(configs):
        faulty = fault is not None and i in fault.trials
        entries.append({
            "index": i,
            "key": trial_key(sweep, cfg.to_json()),
            "run": cfg.to_dict(),
            "fail_at_epoch": fault.at_epoch if faulty else 0,
            "fault_dir": fault_dir if faulty else "",
        })
    return {"trial": tune.grid_search(entries), FIGURES_KEY: figures}


def figures_mode(tune_config: Mapping[str, Any]) -> str:
    """Who draws the trial's figures (``sweeps.figures_after.FIGURE_MODES``); sweeps started
    before the setting existed drew them in the trial."""
    return tune_config.get(FIGURES_KEY, "trial")


def config_from_tune(tune_config: Mapping[str, Any]) -> RunConfig:
    """The RunConfig of a trial: a grid entry's ``run``, or the base run with the searched fields."""
    if "trial" in tune_config:
        values = dict(tune_config["trial"]["run"])
    else:
        values = dict(tune_config.get(BASE_RUN, {}))
    values.update({k: v for k, v in tune_config.items() if k in FIELD_NAMES})
    return RunConfig.from_dict(values)


def key_of(tune_config: Mapping[str, Any], trial_id: str, sweep: str) -> str:
    if "trial" in tune_config:
        return tune_config["trial"]["key"]
    return trial_key(sweep, f"search trial {trial_id}")


def index_of(tune_config: Mapping[str, Any]) -> int | None:
    return tune_config["trial"]["index"] if "trial" in tune_config else None


def trial_dirname(trial) -> str:
    index = index_of(trial.config)
    return f"trial_{index:04d}_{trial.trial_id}" if index is not None else f"trial_{trial.trial_id}"


def index_from_dirname(name: str) -> int | None:
    """The grid index in a folder name made by :func:`trial_dirname` (None for a search trial)."""
    parts = name.split("_")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "trial" and parts[1].isdigit() else None


def rows_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """History rows as a result carries them: JSON text (Tune's loggers take no lists; Python's
    float text round-trips exactly)."""
    return json.dumps(list(rows))


def rows_of(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history rows a result carries (:func:`rows_text`); a result of a sweep started before
    rows were gathered carries one, under ``"row"``."""
    if isinstance(result.get("rows"), str):
        return json.loads(result["rows"])
    return [dict(result["row"])] if isinstance(result.get("row"), Mapping) else []


def numeric(row: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a history row (booleans left out), as floats."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ==== the trainable (runs in a Ray worker) =======================================================

def single_trainable(tune_config: dict[str, Any]) -> None:
    """Train one RunConfig as a Tune trial (``sweeps.trainable.grok_trainable`` calls it for a
    trial that is not a pack): report every evaluation, checkpoint.

    A restarted trial continues from ``tune.get_checkpoint()``; a trial whose last checkpoint is
    its final one (the run had ended) only reports its end again.
    """
    entered = time.time()
    import logging

    import ray
    import torch
    from ray import tune

    from grokcore.trainer import Trainer

    clock = {"entered": entered, "imported": time.time()}

    for noisy in ("ray.train", "ray.tune"):  # "Checkpoint successfully created" per checkpoint
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    cfg = config_from_tune(tune_config)
    trainer = Trainer(cfg)
    finished = False
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu",
                               weights_only=False)
            finished = (Path(folder) / SUMMARY_FILE).exists()
        trainer.load_state_dict(state)
    clock["built"], clock["cpu_built"] = time.time(), time.process_time()
    entry = tune_config.get("trial", {})
    marker = (Path(entry["fault_dir"]) / f"{entry['key']}.{FAULT_MARKER}"
              if entry.get("fail_at_epoch") else None)
    reporter = TuneReporter(start_epoch=trainer.epoch, fail_at_epoch=entry.get("fail_at_epoch", 0),
                            fault_marker=marker, node=node_info(trainer), clock=clock,
                            figures_in_trial=figures_mode(tune_config) == "trial")
    trainer.callbacks = [reporter]
    if finished:
        reporter.on_end(trainer, trainer.summary())
    else:
        trainer.run()


def node_info(trainer) -> dict[str, str]:
    """Where and with what this worker runs: Ray node id, node IP, host name, the ids of the
    GPUs Ray gave the trial and the trainer's provenance (``grokcore.provenance``: device,
    torch, threads, compiled step, code commit); every result carries it."""
    import ray

    from grokcore.provenance import provenance

    return {"node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(), "hostname": socket.gethostname(),
            "gpu_ids": ",".join(str(i) for i in ray.get_gpu_ids()) or "none",
            **provenance(trainer)}


SCRATCH_PREFIX = "grok_scratch_"


@functools.cache
def scratch_folder() -> Path:
    """This worker process's folder (in the temp dir) for the checkpoints it hands to Tune, each
    removed once reported. A worker killed in between (its node lost, its driver killed) leaves
    one behind, megabytes each; so the first call in a worker also removes the folders of this
    host's processes that are gone."""
    root = Path(tempfile.gettempdir())
    host = socket.gethostname()
    for folder in root.glob(f"{SCRATCH_PREFIX}{host}_*"):
        pid = folder.name.rsplit("_", 1)[1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = root / f"{SCRATCH_PREFIX}{host}_{os.getpid()}"
    mine.mkdir(exist_ok=True)
    return mine


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it exists
        return True
    return True


# A report is a round trip to the driver, which takes one result of a trial at a time; at the
# demo's cadence (an evaluation every 0.2 s) reporting each row cost a trial about a tenth of its
# time. So rows are gathered and reported together, at most every REPORT_EVERY_S seconds, and
# always with a checkpoint (a resume then skips no row) and at the end.
REPORT_EVERY_S: float | None = None  # set by tests; else GROK_REPORT_EVERY_S (sweeps/knobs.py)


def report_every_s() -> float:
    return REPORT_EVERY_S if REPORT_EVERY_S is not None else knobs.seconds("GROK_REPORT_EVERY_S")


class TuneReporter:
    """Trainer callback: evaluations -> tune.report (rows gathered for up to REPORT_EVERY_S
    seconds); at the checkpoint cadence, with a checkpoint."""

    def __init__(self, start_epoch: int = 0, fail_at_epoch: int = 0,
                 fault_marker: Path | None = None, node: Mapping[str, str] | None = None,
                 clock: dict[str, float] | None = None, figures_in_trial: bool = True):
        self.start_epoch = start_epoch
        self.figures_in_trial = figures_in_trial
        self.node = dict(node or {})
        self.fail_at_epoch = fail_at_epoch
        self.fault_marker = fault_marker
        # Where a trial's time goes (benchmarks/sweep_overhead.py): wall-clock timestamps of the
        # worker's steps, the seconds spent in reports inside the training loop, and the
        # process's CPU seconds (time.process_time) when built, in reports and at the end: the
        # loop's wall time also counts time the process waited for a core.
        self.clock = clock if clock is not None else {}
        self.clock.setdefault("report_seconds", 0.0)
        self.clock.setdefault("report_cpu_seconds", 0.0)
        self._rows: list[dict[str, Any]] = []  # evaluated, not yet reported
        self._last_report = 0.0  # time.time() of the last report: the first row goes at once

    def _maybe_fail(self, epoch: int) -> None:
        if not self.fail_at_epoch or epoch < self.fail_at_epoch:
            return
        marker = self.fault_marker
        if marker is None or marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"fault injected at epoch {epoch}\n")
        raise RuntimeError(f"injected fault at epoch {epoch} (--fail-at-epoch, first attempt)")

    def on_eval(self, trainer, row: dict[str, float], checkpoint: bool) -> None:
        started, cpu_started = time.time(), time.process_time()
        self.clock.setdefault("first_eval", started)
        try:
            self._maybe_fail(trainer.epoch)
            self._rows.append(dict(row))
            if checkpoint or started - self._last_report >= report_every_s():
                self._report_rows(trainer, checkpoint)
                self._last_report = time.time()
        finally:
            self.clock["report_seconds"] += time.time() - started
            self.clock["report_cpu_seconds"] += time.process_time() - cpu_started

    def _report_rows(self, trainer, checkpoint: bool) -> None:
        """Report the rows gathered since the last report (the last one flat, for Tune)."""
        from ray import tune

        rows, self._rows = self._rows, []
        result = {**numeric(rows[-1]), "timesteps_total": trainer.epoch, "row": rows[-1],
                  "rows": rows_text(rows), "start_epoch": self.start_epoch, "node": self.node}
        if not checkpoint:
            tune.report(result)
            return
        folder = tempfile.mkdtemp(prefix="ckpt_", dir=scratch_folder())
        try:
            records.save_checkpoint(trainer, folder)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def on_end(self, trainer, summary: dict[str, Any]) -> None:
        """Write the run's record and its checkpoint into one folder, then report the end
        (summary, dataset statistics) with it as the last checkpoint."""
        from ray import tune

        self.clock["loop_seconds"] = summary.get("seconds", 0.0)  # summed over resumptions
        self.clock["end_started"], self.clock["cpu_end_started"] = time.time(), time.process_time()
        folder = Path(tempfile.mkdtemp(prefix="final_", dir=scratch_folder()))
        try:
            records.save_checkpoint(trainer, folder)
            records.write_run_folder(trainer, summary, folder, figures=self.figures_in_trial)
            self.clock["record_written"] = time.time()
            last = trainer.history[-1] if trainer.history else {}
            result = {**numeric(last), "timesteps_total": trainer.epoch,
                      "rows": rows_text(self._rows),
                      "start_epoch": self.start_epoch, "node": self.node,
                      "reached": int(bool(summary["reached"])),
                      "epochs_run": summary["epochs_run"],
                      "end": {"summary": summary, "dataset_stats": jsonable(trainer.dataset.stats),
                              "start_epoch": self.start_epoch},
                      "trial_timing": dict(self.clock)}
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(folder)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
