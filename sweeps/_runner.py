"""Run grokcore trainings as Ray Tune trials, with every trial logged to MLflow by the driver.

The one entry point for a sweep script is :func:`run_sweep`::

    from grokcore.config import RunConfig
    from sweeps._runner import run_sweep

    grid = [RunConfig(p=31, a=a, b=b, seed=s, epochs=3000) for a in (1, 3) for b in (1, 3)
            for s in (0, 1)]
    result = run_sweep(grid, experiment="my_sweep")          # local Ray, ./mlflow.db
    for o in result.outcomes:
        print(o.config.a, o.config.b, o.status, o.grok_epoch)

A search instead of a grid (e.g. Optuna) passes ``param_space`` (Tune domains over RunConfig
field names), ``base`` (the settings not searched), ``search_alg``, ``num_samples``, ``metric`` and
``mode``; everything else (trainable, MLflow, stopping, resume, retries) is the same::

    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    run_sweep(base=RunConfig(p=31, frac_train=0.5, epochs=2000, stop_after_grok=3),
              param_space={"lr": tune.loguniform(1e-4, 1e-2), "weight_decay": tune.uniform(0.1, 5)},
              search_alg=OptunaSearch(), metric="test_acc", mode="max", num_samples=20,
              experiment="optuna_lr_wd")

Lower-level pieces for a custom Tuner: :func:`grok_trainable` (the function trainable),
:func:`trainable_with_resources`, :class:`MLflowTrialLogger` (a driver-side Tune callback, the
only MLflow writer) and :class:`ProgressPrinter`.

What a trial reports to Tune (a "result") at each evaluation: every numeric key of the trainer's
history row, flat (so ``metric="test_acc"`` works), ``timesteps_total`` = epoch, and the row itself
under ``"row"``. At the end one more result carries ``"end"``: the summary and dataset statistics.
Checkpoints: the trainer's state every ``checkpoint_every`` epochs (the runner makes that 10 x
``eval_every`` when it is 0); the last one also holds the artifacts (history.csv, model.pt,
config.json, dataset_stats.json, summary.json, curves.png), which the driver logs to MLflow.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ray import tune

from grokcore.config import ConfigError, RunConfig
from sweeps._cli import FIELD_NAMES, prepare_configs, varying_fields

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
STATE_FILE = "trainer.pt"
FAULT_MARKER = "fault_injected"
DONE_STATUSES = ("grokked", "not_grokked", "diverged")
END_VALUES = ("status", "grokked", "grok_epoch", "memorization_epoch", "grok_delay", "n_spikes")


class SweepError(RuntimeError):
    """The sweep could not start (no cluster, nothing to resume...); the message is one line."""


@dataclass(frozen=True)
class FaultInjection:
    """For tests: trials at these grid indices raise at the first evaluation at or after
    ``at_epoch``, on their first attempt only (a marker file in the trial folder remembers it)."""

    at_epoch: int
    trials: tuple[int, ...] = (0,)


@dataclass
class TrialOutcome:
    key: str
    config: RunConfig | None
    status: str  # grokked, not_grokked, diverged, failed
    grok_epoch: int | None = None
    memorization_epoch: int | None = None
    epochs_run: int | None = None
    run_id: str | None = None
    error: str | None = None


@dataclass
class SweepResult:
    name: str  # the sweep's name: Tune's experiment folder and the MLflow tag "sweep"
    path: str  # Tune's experiment folder (what --resume restores)
    experiment: str
    experiment_id: str
    tracking_uri: str
    outcomes: list[TrialOutcome]
    seconds: float
    # With resume: run names of the grid given that the stored grid lacks (they did not run).
    not_in_stored_grid: list[str] = field(default_factory=list)

    @property
    def ui_command(self) -> str:
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"open {self.tracking_uri} in a browser"
        return f"mlflow ui --backend-store-uri {self.tracking_uri}"


# ==== keys and configs of trials =================================================================

def config_hash(cfg: RunConfig) -> str:
    return hashlib.sha1(cfg.to_json().encode()).hexdigest()[:12]


def trial_key(sweep: str, cfg_json: str) -> str:
    """Stable key of a trial: the same sweep and settings give the same key (and MLflow run)."""
    return hashlib.sha1(f"{sweep}\n{cfg_json}".encode()).hexdigest()[:16]


def grid_param_space(configs: Sequence[RunConfig], sweep: str,
                     fault: FaultInjection | None = None, fault_dir: str = "") -> dict[str, Any]:
    """Tune's param_space for a grid: one grid_search entry per RunConfig, keyed and indexed.

    ``fault_dir`` (with ``fault``) is where the trials remember that their fault was injected;
    it must be visible to every node (the sweep's folder under a shared storage).
    """
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
    return {"trial": tune.grid_search(entries)}


# Where a search's param_space keeps the base run's settings. Not a RunConfig field name (the
# searched fields sit beside it at the top level; "base" would be the digit base).
BASE_RUN = "base_run"


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


# ==== the trainable (runs in a Ray worker) =======================================================

def grok_trainable(tune_config: dict[str, Any]) -> None:
    """Ray Tune function trainable: train one RunConfig, report every evaluation, checkpoint.

    A restarted trial continues from ``tune.get_checkpoint()``; a trial whose last checkpoint is
    its final one (the run had ended) only reports its end again.
    """
    import logging

    import ray
    import torch

    from grokcore.trainer import Trainer

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
            state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)
            finished = (Path(folder) / "summary.json").exists()
        trainer.load_state_dict(state)
    entry = tune_config.get("trial", {})
    marker = (Path(entry["fault_dir"]) / f"{entry['key']}.{FAULT_MARKER}"
              if entry.get("fail_at_epoch") else None)
    reporter = TuneReporter(start_epoch=trainer.epoch, fail_at_epoch=entry.get("fail_at_epoch", 0),
                            fault_marker=marker)
    trainer.callbacks = [reporter]
    if finished:
        reporter.on_end(trainer, trainer.summary())
    else:
        trainer.run()


def trainable_with_resources(cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0):
    return tune.with_resources(grok_trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})


def _numeric(row: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TuneReporter:
    """Trainer callback: each evaluation -> tune.report; at the cadence, with a checkpoint."""

    def __init__(self, start_epoch: int = 0, fail_at_epoch: int = 0,
                 fault_marker: Path | None = None):
        self.start_epoch = start_epoch
        self.fail_at_epoch = fail_at_epoch
        self.fault_marker = fault_marker

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
        import torch

        self._maybe_fail(trainer.epoch)
        result = {**_numeric(row), "timesteps_total": trainer.epoch, "row": dict(row),
                  "start_epoch": self.start_epoch}
        if not checkpoint:
            tune.report(result)
            return
        folder = tempfile.mkdtemp(prefix="grok_ckpt_")
        try:
            torch.save(trainer.state_dict(), Path(folder) / STATE_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def on_end(self, trainer, summary: dict[str, Any]) -> None:
        import torch

        from analysis.figures import plot_training_curves
        from analysis.figures_progress import write_run_figures
        from grokcore.cli import write_history_csv

        stats = _jsonable(trainer.dataset.stats)
        folder = Path(tempfile.mkdtemp(prefix="grok_final_"))
        try:
            torch.save(trainer.state_dict(), folder / STATE_FILE)
            torch.save(trainer.model.state_dict(), folder / "model.pt")
            if trainer.history:
                write_history_csv(trainer.history, folder / "history.csv")
            (folder / "config.json").write_text(json.dumps(trainer.cfg.to_dict(), indent=2))
            (folder / "dataset_stats.json").write_text(json.dumps(stats, indent=2))
            (folder / "summary.json").write_text(json.dumps(summary, indent=2))
            phases = write_run_figures(trainer, folder)
            summary.update(phases)  # the measured phase_* ends join the end values
            plot_training_curves(trainer.history, summary, folder / "curves.png",
                                 title=_title(trainer.cfg, summary), phases=phases)
            last = trainer.history[-1] if trainer.history else {}
            result = {**_numeric(last), "timesteps_total": trainer.epoch,
                      "start_epoch": self.start_epoch, "grokked": int(bool(summary["grokked"])),
                      "epochs_run": summary["epochs_run"],
                      "end": {"summary": summary, "dataset_stats": stats,
                              "start_epoch": self.start_epoch}}
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(str(folder)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _title(cfg: RunConfig, summary: Mapping[str, Any]) -> str:
    """The task and the fields that name its configuration (as in the grok table)."""
    from grokcore.tasks import TASKS

    keys = " ".join(f"{k}={getattr(cfg, k)}" for k in TASKS[cfg.task].table_keys)
    return (f"{cfg.task} {keys} frac={cfg.frac_train} {cfg.dtype} seed={cfg.seed}: "
            f"{summary['status']}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return value


# ==== MLflow: the driver is the only writer ======================================================

def normalize_tracking_uri(uri: str) -> str:
    """Make a relative SQLite path absolute, so every part of the driver writes the same file."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    if "://" not in uri:
        raise ConfigError(f"tracking URI {uri!r} is not a URI; use sqlite:///FILE.db or "
                          "http://HOST:PORT")
    return uri


def ensure_experiment(tracking_uri: str, experiment: str) -> str:
    """Create the store (schema migrations run here, once, in the driver) and the experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    return client.create_experiment(experiment)


def _tag(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class MLflowTrialLogger(tune.Callback):
    """Driver-side Tune callback: one MLflow run per trial, found again by its trial key.

    * trial start (or restart, or resume): find the run tagged with the trial's key, or create
      it with every RunConfig field as a param; mark it RUNNING.
    * each result: the history row's numeric keys as metrics at step = epoch; steps at or below
      the last logged one are skipped, so a trial continued from a checkpoint never logs a step
      twice.
    * trial end: the end values as tags (and numeric ones as metrics), the dataset statistics,
      the artifacts of the final checkpoint; the run is FINISHED. A trial that failed after its
      retries gets status ``failed`` and run status FAILED.
    """

    def __init__(self, tracking_uri: str, experiment: str, sweep: str):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.sweep = sweep
        self._reset()

    def _reset(self) -> None:
        self._client = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # trial key -> run id
        self._last_step: dict[str, int] = {}  # run id -> last logged epoch
        self._ends: dict[str, dict[str, Any]] = {}  # trial key -> end payload
        self._checkpoints: dict[str, Any] = {}  # trial key -> latest Checkpoint
        self._closed: set[str] = set()  # trial keys whose runs were finished before this process

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with the experiment
        return {"tracking_uri": self.tracking_uri, "experiment": self.experiment,
                "sweep": self.sweep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
            self._experiment_id = ensure_experiment(self.tracking_uri, self.experiment)
        return self._client

    # ---- finding and creating runs ----------------------------------------------------------
    def find_run(self, key: str):
        runs = self.client.search_runs([self._experiment_id], f"tags.trial_key = '{key}'",
                                       max_results=10)
        return runs[0] if runs else None

    def attach(self, key: str, cfg: RunConfig | None, trial_id: str | None = None,
               index: int | None = None) -> str:
        """The run id of this trial's run, creating it if there is none; marks it RUNNING."""
        from mlflow.entities import Param, RunStatus

        if key in self._runs:
            run_id = self._runs[key]
            if key not in self._closed:
                self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            return run_id
        run = self.find_run(key)
        if run is not None:
            run_id = run.info.run_id
            if run.info.status == "FINISHED" and run.data.tags.get("status") in DONE_STATUSES:
                # Finished before an interruption and run again by a resume (Tune's state was
                # saved before it ended): it only reports its end again; keep the run as it is.
                self._closed.add(key)
            elif run.info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            steps = [m.step for m in self.client.get_metric_history(run_id, "train_loss")]
            self._last_step[run_id] = max(steps) if steps else -1
        else:
            tags = {"trial_key": key, "sweep": self.sweep}
            if cfg is not None:
                tags["config_hash"] = config_hash(cfg)
            if trial_id:
                tags["trial_id"] = trial_id
            if index is not None:
                tags["grid_index"] = str(index)
            name = _run_name(cfg, index) if cfg is not None else None
            if name and index is None and trial_id:
                name = f"{name}-{trial_id}"  # search trials: no grid index to tell them apart
            run = self.client.create_run(self._experiment_id, run_name=name, tags=tags)
            run_id = run.info.run_id
            if cfg is not None:
                params = [Param(k, _tag(v)) for k, v in cfg.to_dict().items()]
                self.client.log_batch(run_id, params=params)
            self._last_step[run_id] = -1
        self._runs[key] = run_id
        return run_id

    def log_row(self, run_id: str, row: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        epoch = int(row["epoch"])
        if epoch <= self._last_step.get(run_id, -1):
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, epoch) for k, v in _numeric(row).items() if k != "epoch"]
        self.client.log_batch(run_id, metrics=metrics)
        self._last_step[run_id] = epoch

    def finish(self, key: str, run_id: str, end: Mapping[str, Any] | None, checkpoint,
               error: str | None = None) -> TrialOutcome:
        """Write the end values and artifacts and close the run."""
        from mlflow.entities import Metric

        client = self.client
        now = int(time.time() * 1000)
        summary = dict(end["summary"]) if end else {}
        if error is not None or not end:
            summary["status"] = "failed"
        tags = {name: _tag(summary.get(name)) for name in END_VALUES}
        if end:
            tags["resumed_from_epoch"] = str(end.get("start_epoch", 0))
        if error is not None:
            tags["error"] = error[-4000:]
        metrics = []
        step = int(summary.get("epochs_run") or 0)
        phases = tuple(k for k in summary if k.startswith("phase_"))
        for name in END_VALUES[1:] + ("epochs_run", "seconds") + phases:
            value = summary.get(name)
            if value is not None:
                metrics.append(Metric(name, float(value), now, step))
        stats = (end or {}).get("dataset_stats", {})
        for name, value in stats.items():
            if isinstance(value, (bool, int, float)):
                metrics.append(Metric(name, float(value), now, 0))
        client.log_batch(run_id, metrics=metrics)
        client.set_tag(run_id, "sweep", self.sweep)
        for name, value in tags.items():
            client.set_tag(run_id, name, value)
        if checkpoint is not None and end:
            with checkpoint.as_directory() as folder:
                for path in sorted(Path(folder).iterdir()):
                    if path.is_file() and path.name != STATE_FILE:  # every artifact, figures too
                        client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FAILED" if tags["status"] == "failed" else "FINISHED")
        return TrialOutcome(key=key, config=None, status=tags["status"],
                            grok_epoch=summary.get("grok_epoch"),
                            memorization_epoch=summary.get("memorization_epoch"),
                            epochs_run=summary.get("epochs_run"), run_id=run_id, error=error)

    # ---- Tune callback hooks ----------------------------------------------------------------
    def _key(self, trial) -> str:
        return key_of(trial.config, trial.trial_id, self.sweep)

    def on_trial_start(self, iteration, trials, trial, **info):
        cfg = config_from_tune(trial.config)
        self.attach(self._key(trial), cfg, trial.trial_id, index_of(trial.config))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        key = self._key(trial)
        run_id = self._runs.get(key) or self.attach(key, config_from_tune(trial.config),
                                                    trial.trial_id, index_of(trial.config))
        if key in self._closed:
            return
        if isinstance(result.get("row"), Mapping):
            self.log_row(run_id, result["row"])
        if isinstance(result.get("end"), Mapping):
            self._ends[key] = result["end"]

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self._checkpoints[self._key(trial)] = checkpoint

    def on_trial_complete(self, iteration, trials, trial, **info):
        key = self._key(trial)
        run_id = self._runs.get(key) or self.attach(key, config_from_tune(trial.config))
        if key in self._closed:
            return
        end = self._ends.pop(key, None) or (trial.last_result or {}).get("end")
        checkpoint = self._checkpoints.pop(key, None) or trial.checkpoint
        error = None if end else "the trial ended without reporting its end"
        self.finish(key, run_id, end, checkpoint, error)

    def on_trial_error(self, iteration, trials, trial, **info):
        key = self._key(trial)
        run_id = self._runs.get(key) or self.attach(key, config_from_tune(trial.config))
        if key in self._closed:
            return
        self.finish(key, run_id, None, None, error=_error_text(trial))

    # ---- after fit: make MLflow agree with Tune ---------------------------------------------
    def reconcile(self, results, configs: Sequence[RunConfig] = ()) -> list[TrialOutcome]:
        """Close every run of this sweep: finish what Tune finished, fail what errored, mark
        runs of trials that never ended (an interrupted sweep) KILLED until a resume. Trials
        that never started get no run."""
        outcomes = []
        seen = set()
        for result in results:
            tune_config = result.config or {}
            if tune_config:
                trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
                key, cfg = key_of(tune_config, trial_id, self.sweep), config_from_tune(tune_config)
                index = index_of(tune_config)
            else:  # never started: Tune kept no config; the folder name has the grid index
                index = _index_from_dirname(Path(result.path).name)
                if index is None or index >= len(configs):
                    continue
                cfg, trial_id = configs[index], None
                key = trial_key(self.sweep, cfg.to_json())
            seen.add(key)
            run = self.find_run(key)
            end = (result.metrics or {}).get("end")
            if run is not None and run.info.status in ("FINISHED", "FAILED") \
                    and "status" in run.data.tags:
                tags = run.data.tags
                outcome = TrialOutcome(
                    key=key, config=cfg, status=tags["status"],
                    grok_epoch=_int_or_none(tags.get("grok_epoch")),
                    memorization_epoch=_int_or_none(tags.get("memorization_epoch")),
                    epochs_run=_int_or_none(run.data.metrics.get("epochs_run")),
                    run_id=run.info.run_id, error=tags.get("error"))
            elif end:
                outcome = self.finish(key, self.attach(key, cfg, trial_id, index), end,
                                      result.checkpoint)
            elif result.error is not None:
                outcome = self.finish(key, self.attach(key, cfg, trial_id, index), None, None,
                                      error=_one_line(result.error))
            else:  # interrupted (or never started): --resume continues it
                run_id = run.info.run_id if run is not None else None
                if run_id is not None and run.info.status == "RUNNING":
                    self.client.set_terminated(run_id, "KILLED")
                outcome = TrialOutcome(key=key, config=cfg, status="unfinished", run_id=run_id)
            outcome.config = cfg
            outcomes.append((index if index is not None else len(outcomes), outcome))
        # Runs of this sweep that no trial owns, still RUNNING: close them.
        for run in self.client.search_runs([self._experiment_id],
                                           f"tags.sweep = '{self.sweep}' and "
                                           "attributes.status = 'RUNNING'"):
            if run.data.tags.get("trial_key") not in seen:
                self.client.set_terminated(run.info.run_id, "KILLED")
        return [o for _, o in sorted(outcomes, key=lambda pair: pair[0])]


def _index_from_dirname(name: str) -> int | None:
    parts = name.split("_")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "trial" and parts[1].isdigit() else None


def _run_name(cfg: RunConfig, index: int | None) -> str:
    """E.g. ``0003-expmod-a1b2p31-f0.5-float32-s0`` or
    ``0001-sorting-list_len=10,n_max=50,variable_len=off,...-f0.8-float32-s0``: the task's table
    keys, frac, dtype and seed."""
    from grokcore.tasks import TASKS

    prefix = f"{index:04d}-" if index is not None else ""
    keys = TASKS[cfg.task].table_keys
    if all(len(k) == 1 for k in keys):  # expmod's a, b, p: as the paper writes them
        named = "".join(f"{k}{getattr(cfg, k)}" for k in keys)
    else:
        named = ",".join(f"{k}={_name_part(getattr(cfg, k))}" for k in keys)
    return f"{prefix}{cfg.task}-{named}-f{cfg.frac_train}-{cfg.dtype}-s{cfg.seed}"


def _name_part(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _one_line(err: BaseException | str) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else repr(err)


def _error_text(trial) -> str:
    path = getattr(trial, "error_file", None) or ""
    try:
        text = Path(path).read_text() if path else ""
    except OSError:
        text = ""
    return text.strip() or "trial failed (no error file)"


# ==== progress lines ============================================================================

class ProgressPrinter(tune.Callback):
    """A line per trial when it starts, ends or fails, and every ``every_s`` seconds while it
    runs, instead of Tune's tables."""

    def __init__(self, labels: Mapping[str, str] | None = None, total: int = 0,
                 every_s: float = 30.0, sweep: str = ""):
        self.labels = dict(labels or {})
        self.total = total
        self.every_s = every_s
        self.sweep = sweep
        self._last: dict[str, float] = {}
        self._done = 0

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_last"], state["_done"] = {}, 0
        return state

    def _label(self, trial) -> str:
        key = key_of(trial.config, trial.trial_id, self.sweep)
        index = index_of(trial.config)
        name = self.labels.get(key)
        if name is None:
            searched = {k: v for k, v in trial.config.items() if k in FIELD_NAMES}
            name = " ".join(f"{k}={_short(v)}" for k, v in searched.items()) or trial.trial_id
        return f"[{index if index is not None else trial.trial_id}] {name}"

    def _say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

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
        self._done += 1
        end = (trial.last_result or {}).get("end") or {}
        s = end.get("summary", {})
        grok = f"grok epoch {s.get('grok_epoch')}" if s.get("grokked") else "no grok"
        self._say(f"done     {self._label(trial)}: {s.get('status', '?')}, {grok}, "
                  f"{s.get('epochs_run')} epochs in {s.get('seconds', 0):.1f} s"
                  f"  ({self._done}/{self.total or '?'})")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._done += 1
        self._say(f"FAILED   {self._label(trial)}: {_one_line(_error_text(trial))}"
                  f"  ({self._done}/{self.total or '?'})")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def format_outcomes(outcomes: Sequence[TrialOutcome], always: Sequence[str] = ("a", "b", "p"),
                    ) -> str:
    """A table of the trials: their varying settings, status, memorization and grok epochs."""
    configs = [o.config for o in outcomes if o.config is not None]
    cols = list(always) + [n for n in varying_fields(configs) if n not in always]
    header = cols + ["status", "memorized", "grok_epoch", "epochs"]
    rows = [header]
    for o in outcomes:
        d = o.config.to_dict() if o.config else {}
        rows.append([_short(d.get(n, "?")) for n in cols]
                    + [o.status, _tag(o.memorization_epoch), _tag(o.grok_epoch),
                       _tag(o.epochs_run)])
    widths = [max(len(str(r[j])) for r in rows) for j in range(len(header))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(r, widths)) for r in rows)


# ==== Ray =======================================================================================

def _token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).is_file()


def connect_ray(address: str | None) -> bool:
    """Connect to a cluster (``address``: 'auto' or HOST:PORT) or start a local Ray (None).

    Ray 2.60 clusters use token authentication by default. A local Ray and ``auto`` handle it
    themselves; for an explicit address the token is used when one is available (the
    ``RAY_AUTH_TOKEN`` variable, ``RAY_AUTH_TOKEN_PATH`` or ~/.ray/auth_token) and
    ``RAY_AUTH_MODE`` is not set. Returns True when this call started Ray (so it should stop it).
    """
    import logging

    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=True)
    # Workers must import this checkout's grokcore/sweeps/analysis, as the driver does.
    root = str(Path(__file__).resolve().parents[1])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in (str(Path(p).resolve()) for p in paths):
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join([root, *paths])}}
    try:
        if address is None:
            ray.init(address="local", include_dashboard=False, **kwargs)
            return True
        if address != "auto" and "RAY_AUTH_MODE" not in os.environ and _token_available():
            os.environ["RAY_AUTH_MODE"] = "token"
        ray.init(address=address, **kwargs)
        return False
    except (ConnectionError, RuntimeError) as err:
        hint = ("start one with `ray start --head`" if address == "auto" else
                "check the address, and for a cluster with token authentication set "
                "RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to its token")
        raise SweepError(f"cannot connect to a Ray cluster at {address!r} "
                         f"({_one_line(err)[:200]}); {hint}") from None


# ==== the sweep =================================================================================

def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _storage_path(storage: str | os.PathLike) -> str:
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


def _latest_sweep(storage: str, experiment: str) -> str | None:
    root = Path(storage)
    if "://" in storage or not root.is_dir():
        return None
    prefix = _safe_name(experiment) + "-"
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)
             and tune.Tuner.can_restore(str(p))]
    return max(found, key=lambda p: p.stat().st_mtime).name if found else None


def run_sweep(
    configs: Sequence[RunConfig] = (),
    *,
    experiment: str = "grokking",
    name: str | None = None,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    storage: str | os.PathLike = "ray_results",
    address: str | None = None,
    resume: bool = False,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_concurrent: int = 0,
    retries: int = 2,
    fault: FaultInjection | None = None,
    param_space: Mapping[str, Any] | None = None,
    base: RunConfig | None = None,
    search_alg: Any = None,
    num_samples: int = 1,
    metric: str | None = None,
    mode: str | None = None,
    progress_every_s: float = 30.0,
) -> SweepResult:
    """Run a grid (``configs``) or a search (``param_space`` + ``base`` + ``search_alg``) of
    grokcore trainings on Ray Tune, one MLflow run per trial, and return their outcomes.

    configs: the grid, one RunConfig per trial (validated here; duplicates dropped;
        ``checkpoint_every`` 0 becomes 10 x ``eval_every``). Stopping is each config's own:
        ``stop_after_grok`` evaluations held above ``grok_acc``, divergence, or ``epochs``.
        Tune's scheduler is FIFO: nothing prunes a trial on its early test metrics.
    experiment: MLflow experiment (created if missing). Each run is tagged ``sweep`` = name,
        ``trial_key`` (stable per sweep and config), ``config_hash`` and ``grid_index``.
    name: the sweep's name, its folder under ``storage``; default EXPERIMENT-DATE-TIME, and with
        ``resume`` the latest restorable sweep of ``experiment`` under ``storage``.
    tracking_uri: ``sqlite:///FILE`` (made absolute; only this driver process writes it) or an
        MLflow server URL.
    storage: Tune's results folder (shared by all nodes on a multi-node cluster) or URI.
    address: None for a local Ray started (and stopped) here, 'auto', or HOST:PORT.
    resume: continue the sweep ``name`` with ``Tuner.restore``: finished trials stay finished,
        unfinished and errored ones continue from their last checkpoint; the stored grid and
        settings are used (``configs`` then only has to be valid).
    cpus_per_trial, gpus_per_trial: Ray resources of one trial (GPUs may be fractional).
    max_concurrent: at most this many trials at once (0: as many as fit).
    retries: restarts of a crashed trial, each from its last checkpoint; after that the trial
        is recorded ``failed`` and the others go on.
    fault: for tests, make some grid trials crash once (see FaultInjection).
    param_space, base, search_alg, num_samples, metric, mode: a search instead of a grid;
        ``param_space`` maps RunConfig field names to Tune domains, ``base`` holds the rest.
    progress_every_s: seconds between progress lines of a running trial.

    Raises ConfigError for invalid settings and SweepError when Ray cannot be reached or there
    is nothing to resume; both before anything is written to MLflow.
    """
    started = time.perf_counter()
    searching = param_space is not None
    if searching == bool(configs):
        raise ConfigError("give either configs (a grid) or param_space (a search), not both")
    if searching:
        base = prepare_configs([base or RunConfig()], gpus_per_trial)[0]
        unknown = sorted(set(param_space) - set(FIELD_NAMES))
        if unknown:
            raise ConfigError(f"param_space keys {unknown} are not RunConfig fields")
    else:
        configs = prepare_configs(configs, gpus_per_trial)
    if retries < 0 or cpus_per_trial <= 0 or gpus_per_trial < 0 or max_concurrent < 0:
        raise ConfigError("need retries >= 0, cpus_per_trial > 0, gpus_per_trial >= 0 and "
                          "max_concurrent >= 0")
    tracking_uri = normalize_tracking_uri(tracking_uri)
    storage = _storage_path(storage)
    if resume:
        name = name or _latest_sweep(storage, experiment)
        path = f"{storage.rstrip('/')}/{name}" if name else None
        if not path or not tune.Tuner.can_restore(path):
            raise SweepError(f"no sweep to resume under {storage}"
                             + (f" named {name!r}" if name else f" for experiment {experiment!r}"))
    else:
        name = name or f"{_safe_name(experiment)}-{time.strftime('%Y%m%d-%H%M%S')}"
        path = f"{storage.rstrip('/')}/{name}"
        if tune.Tuner.can_restore(path):
            raise SweepError(f"a sweep named {name!r} already exists under {storage}; pass "
                             "--resume to continue it or another --name")

    # Forced experiment snapshots (num_to_keep) are what makes a resume exact: no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: only our progress lines
    started_ray = connect_ray(address)
    try:
        experiment_id = ensure_experiment(tracking_uri, experiment)  # the store exists from here
        labels = {trial_key(name, c.to_json()): _run_name(c, None) for c in configs}
        logger = MLflowTrialLogger(tracking_uri, experiment, name)
        trainable = trainable_with_resources(cpus_per_trial, gpus_per_trial)
        if resume:
            tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True,
                                       resume_errored=True, restart_errored=False)
        else:
            if searching:
                space = {BASE_RUN: base.to_dict(), **param_space}
            else:
                space = grid_param_space(configs, name, fault, f"{path}/injected_faults")
            n_trials = num_samples if searching else len(configs)
            printer = ProgressPrinter(labels, n_trials, progress_every_s, name)
            tuner = tune.Tuner(
                trainable,
                param_space=space,
                tune_config=tune.TuneConfig(
                    search_alg=search_alg, num_samples=num_samples, metric=metric, mode=mode,
                    max_concurrent_trials=max_concurrent or None, reuse_actors=True,
                    trial_dirname_creator=trial_dirname, trial_name_creator=trial_dirname),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage, verbose=0,
                    callbacks=[logger, printer],
                    failure_config=tune.FailureConfig(max_failures=retries),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
            )
        results = tuner.fit()
        outcomes = MLflowTrialLogger(tracking_uri, experiment, name).reconcile(results, configs)
        # A resume runs the stored grid; settings given now that it lacks are not run.
        stored = {(r.config or {}).get("trial", {}).get("key") for r in results}
        not_in_stored = [label for key, label in labels.items()
                         if resume and not searching and key not in stored]
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return SweepResult(name=name, path=path, experiment=experiment, experiment_id=experiment_id,
                       tracking_uri=tracking_uri, outcomes=outcomes,
                       seconds=time.perf_counter() - started, not_in_stored_grid=not_in_stored)
