"""MLflow, from the driver (the only writer): one run per trial, found again by its trial key.

:class:`MLflowTrialLogger` is a driver-side Tune callback; after ``Tuner.fit`` its
:meth:`~MLflowTrialLogger.reconcile` makes MLflow agree with Tune and returns each trial's
:class:`TrialOutcome`. The names of the end values and tags come from :mod:`grokcore.records`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ray import tune

from grokcore.config import ConfigError, RunConfig
from grokcore.records import (CHECKPOINT_FILE, DONE_STATUSES, END_VALUES, OUTCOME_VALUES,
                              SWEEP_TAG, TRIAL_KEY_TAG, tag_text)
from sweeps.console import error_text, one_line
from sweeps.trial import (config_from_tune, config_hash, index_from_dirname,
                          index_of, key_of, numeric, trial_key)


# Metric rows are written every BATCH_SECONDS by a writer thread (MLflowTrialLogger.flush), at most
# BATCH_METRICS per request; GROK_MLFLOW_BATCH_S=0 writes each row in Tune's loop, as it comes.
BATCH_SECONDS = float(os.environ.get("GROK_MLFLOW_BATCH_S", "1.0"))
BATCH_METRICS = 1000


@dataclass
class TrialOutcome:
    key: str
    config: RunConfig | None
    status: str  # grokked, not_grokked, diverged, failed, unfinished
    grok_epoch: int | None = None
    memorization_epoch: int | None = None
    epochs_run: int | None = None
    run_id: str | None = None
    error: str | None = None


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
        self._pending: dict[str, list[Any]] = {}  # run id -> metrics not yet written (batching)
        self._store_lock = threading.RLock()  # every store call, from Tune's loop or the writer
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._write_error: Exception | None = None

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

            self._client = _Locked(MlflowClient(self.tracking_uri), self._store_lock)
            self._experiment_id = ensure_experiment(self.tracking_uri, self.experiment)
        return self._client

    # ---- finding and creating runs ----------------------------------------------------------
    def find_run(self, key: str):
        runs = self.client.search_runs([self._experiment_id], f"tags.{TRIAL_KEY_TAG} = '{key}'",
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
            tags = {TRIAL_KEY_TAG: key, SWEEP_TAG: self.sweep}
            if cfg is not None:
                tags["config_hash"] = config_hash(cfg)
            if trial_id:
                tags["trial_id"] = trial_id
            if index is not None:
                tags["grid_index"] = str(index)
            name = run_name(cfg, index) if cfg is not None else None
            if name and index is None and trial_id:
                name = f"{name}-{trial_id}"  # search trials: no grid index to tell them apart
            run = self.client.create_run(self._experiment_id, run_name=name, tags=tags)
            run_id = run.info.run_id
            if cfg is not None:
                params = [Param(k, tag_text(v)) for k, v in cfg.to_dict().items()]
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
        metrics = [Metric(k, v, now, epoch) for k, v in numeric(row).items() if k != "epoch"]
        self._last_step[run_id] = epoch
        if BATCH_SECONDS > 0:
            self._queue(run_id, metrics)
        else:
            self.client.log_batch(run_id, metrics=metrics)

    # ---- write batching -----------------------------------------------------------------------
    # A trial's tune.report waits for the driver to take its previous result: a store write per
    # row in Tune's loop would hold every trial up. log_row queues; a writer thread writes each
    # run's queued rows in one request every BATCH_SECONDS. Rows are written before a trial's
    # checkpoint is recorded (a resume skips no row), before its end, and at the experiment's end.
    def _queue(self, run_id: str, metrics: list) -> None:
        with self._store_lock:
            self._pending.setdefault(run_id, []).extend(metrics)
        if self._writer is None or not self._writer.is_alive():
            self._stop.clear()
            self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                            name="mlflow-row-writer")
            self._writer.start()

    def _write_loop(self) -> None:
        while not self._stop.wait(BATCH_SECONDS):
            try:
                self.flush()
            except Exception as err:  # the rows stay queued; the next flush tries again
                self._write_error = err

    def flush(self, run_id: str | None = None) -> None:
        """Write the queued metric rows (of one run, or of all) now."""
        with self._store_lock:
            for rid in ([run_id] if run_id is not None else list(self._pending)):
                metrics = self._pending.get(rid, [])
                while metrics:  # MLflow takes at most BATCH_METRICS metrics per request
                    self.client.log_batch(rid, metrics=metrics[:BATCH_METRICS])
                    del metrics[:BATCH_METRICS]
                self._pending.pop(rid, None)

    def on_experiment_end(self, trials, **info):
        self._stop.set()
        self.flush()
    # ---- end of write batching ----------------------------------------------------------------

    def finish(self, key: str, run_id: str, end: Mapping[str, Any] | None, checkpoint,
               error: str | None = None) -> TrialOutcome:
        """Write the end values and artifacts and close the run."""
        from mlflow.entities import Metric

        client = self.client
        self.flush(run_id)  # its rows before its end values
        now = int(time.time() * 1000)
        summary = dict(end["summary"]) if end else {}
        if error is not None or not end:
            summary["status"] = "failed"
        tags = {name: tag_text(summary.get(name)) for name in END_VALUES}
        if end:
            tags["resumed_from_epoch"] = str(end.get("start_epoch", 0))
        if error is not None:
            tags["error"] = error[-4000:]
        metrics = []
        step = int(summary.get("epochs_run") or 0)
        phases = tuple(k for k in summary if k.startswith("phase_"))
        for name in ("grokked", *OUTCOME_VALUES, "epochs_run", "seconds", *phases):
            value = summary.get(name)
            if value is not None:
                metrics.append(Metric(name, float(value), now, step))
        stats = (end or {}).get("dataset_stats", {})
        for name, value in stats.items():
            if isinstance(value, (bool, int, float)):
                metrics.append(Metric(name, float(value), now, 0))
        client.log_batch(run_id, metrics=metrics)
        client.set_tag(run_id, SWEEP_TAG, self.sweep)
        for name, value in tags.items():
            client.set_tag(run_id, name, value)
        if checkpoint is not None and end:
            with checkpoint.as_directory() as folder:
                for path in sorted(Path(folder).iterdir()):
                    if path.is_file() and path.name != CHECKPOINT_FILE:  # the record, figures too
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
        key = self._key(trial)
        self._checkpoints[key] = checkpoint
        if key in self._runs:
            self.flush(self._runs[key])  # a resume from this checkpoint skips no unwritten row

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
        self.finish(key, run_id, None, None, error=error_text(trial))

    # ---- after fit: make MLflow agree with Tune ---------------------------------------------
    def reconcile(self, results, configs: Sequence[RunConfig] = ()) -> list[TrialOutcome]:
        """Close every run of this sweep: finish what Tune finished, fail what errored, mark
        runs of trials that never ended (an interrupted sweep) KILLED until a resume. Trials
        that never started get no run."""
        self.flush()
        outcomes = []
        seen = set()
        for result in results:
            tune_config = result.config or {}
            if tune_config:
                trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
                key, cfg = key_of(tune_config, trial_id, self.sweep), config_from_tune(tune_config)
                index = index_of(tune_config)
            else:  # never started: Tune kept no config; the folder name has the grid index
                index = index_from_dirname(Path(result.path).name)
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
                                      error=one_line(result.error))
            else:  # interrupted (or never started): --resume continues it
                run_id = run.info.run_id if run is not None else None
                if run_id is not None and run.info.status == "RUNNING":
                    self.client.set_terminated(run_id, "KILLED")
                outcome = TrialOutcome(key=key, config=cfg, status="unfinished", run_id=run_id)
            outcome.config = cfg
            outcomes.append((index if index is not None else len(outcomes), outcome))
        # Runs of this sweep that no trial owns, still RUNNING: close them.
        for run in self.client.search_runs([self._experiment_id],
                                           f"tags.{SWEEP_TAG} = '{self.sweep}' and "
                                           "attributes.status = 'RUNNING'"):
            if run.data.tags.get(TRIAL_KEY_TAG) not in seen:
                self.client.set_terminated(run.info.run_id, "KILLED")
        return [o for _, o in sorted(outcomes, key=lambda pair: pair[0])]



class _Locked:
    """An MlflowClient whose calls hold a lock (the driver's loop and its row writer share it)."""

    def __init__(self, client, lock) -> None:
        self._inner, self._lock = client, lock

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)

        def locked(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)
        return locked if callable(attr) else attr


def run_name(cfg: RunConfig, index: int | None) -> str:
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


def _int_or_none(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None
