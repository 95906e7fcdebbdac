"""MLflow, from the driver (the only writer): one run per trial, found again by its trial key.

:class:`MLflowTrialLogger` is a driver-side Tune callback; after ``Tuner.fit`` its
:meth:`~MLflowTrialLogger.reconcile` makes MLflow agree with Tune and returns each trial's
:class:`TrialOutcome`. What goes into a run at a node and at its end (tags, step-0 metrics, the
record's files) is :mod:`sweeps.trial_run`; the names come from :mod:`grokcore.records`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ray import tune

from analysis.runs import find_sweep_run
from grokcore.config import ConfigError, RunConfig
from grokcore.records import (DONE_STATUSES, PARENT_RUN_TAG, SWEEP_TAG, TRIAL_KEY_TAG,
                              current_names, current_status)
from grokcore.values import integer
from sweeps.figures_after import log_drawn, shared_queue
from sweeps.mlflow_view import RUN_COLOR_TAG, run_color
from sweeps.row_writer import Locked, RowBatching
from sweeps.run_names import run_name, task_params
from sweeps.console import error_text, one_line
from sweeps.trial_run import end_metrics, end_tags, log_record, node_tags
from sweeps.trial import (config_from_tune, config_hash, figures_mode, index_from_dirname,
                          index_of, key_of, numeric, rows_of, trial_key)


@dataclass
class TrialOutcome:
    key: str
    config: RunConfig | None
    status: str  # grokcore.records.STATUSES: reached, not_reached, diverged, failed, unfinished
    outcome: str | None = None  # what it means (grokcore.signals.OUTCOMES: grokked, lookup, ...)
    threshold_epoch: int | None = None
    memorization_epoch: int | None = None
    epochs_run: int | None = None
    run_id: str | None = None
    error: str | None = None
    unseen_acc: float | None = None  # expmod: final accuracy on the test pairs of unseen classes
    leakage: float | None = None  # expmod: share of test pairs whose class has a training pair


def normalize_tracking_uri(uri: str) -> str:
    """Make a relative SQLite path absolute, so every part of the driver writes the same file,
    and check the store (``analysis.runs.checked_tracking_uri``: drivers, a database that
    answers, a SQLite file that is one); ConfigError, before anything is written, if not."""
    from analysis.runs import AnalysisError, checked_tracking_uri

    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix):]).resolve())
    if "://" not in uri:
        raise ConfigError(f"tracking URI {uri!r} is not a URI; use sqlite:///FILE.db or "
                          "http://HOST:PORT")
    try:
        return checked_tracking_uri(uri)
    except AnalysisError as err:
        raise ConfigError(str(err)) from None


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


class MLflowTrialLogger(RowBatching, tune.Callback):
    """Driver-side Tune callback: one MLflow run per trial, found again by its trial key.

    * trial start (or restart, or resume): find the run tagged with the trial's key, or create
      it as a child of the sweep's parent run (``parent_run_id``; found by the sweep's name when
      None) named ``names[key]`` (else :func:`run_name`), with the RunConfig fields its task
      reads as params; mark it RUNNING.
    * each result: its history rows' numeric keys as metrics at step = epoch (a trial gathers
      the rows of up to a second into one result); steps at or below the last logged one are
      skipped, so a trial continued from a checkpoint never logs a step twice.
    * trial end: the end values as tags (and numeric ones as metrics), the dataset statistics,
      the artifacts of the final checkpoint; the run is FINISHED. End values are logged at
      step 0, so the UI's charts draw one bar per run. A trial that failed after its
      retries gets status ``failed`` and run status FAILED. Figures the trial left to the
      driver go to :mod:`sweeps.figures_after` and are logged as they are drawn.
    """

    def __init__(self, tracking_uri: str, experiment: str, sweep: str,
                 parent_run_id: str | None = None, names: Mapping[str, str] | None = None):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.sweep = sweep
        self.parent_run_id = parent_run_id
        self.names = dict(names or {})  # trial key -> run name
        self._reset()

    def _reset(self) -> None:
        self._client = None
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}  # trial key -> run id
        self._last_step: dict[str, int] = {}  # run id -> last logged epoch
        self._ends: dict[str, dict[str, Any]] = {}  # trial key -> end payload
        self._checkpoints: dict[str, Any] = {}  # trial key -> latest Checkpoint
        self._closed: set[str] = set()  # trial keys whose runs were finished before this process
        self._nodes: dict[str, str] = {}  # run id -> node id last tagged
        self._reset_batching()

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with the experiment
        return {"tracking_uri": self.tracking_uri, "experiment": self.experiment,
                "sweep": self.sweep, "parent_run_id": self.parent_run_id, "names": self.names}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # State pickled before parent runs existed has neither: the parent is then found by
        # the sweep's name (the runner creates it before a resume starts).
        self.__dict__.update({"parent_run_id": None, "names": {}, **state})
        self._reset()

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = Locked(MlflowClient(self.tracking_uri), self._store_lock)
            self._experiment_id = ensure_experiment(self.tracking_uri, self.experiment)
            if self.parent_run_id is None:
                parent = find_sweep_run(self._client, self._experiment_id, self.sweep)
                self.parent_run_id = parent.info.run_id if parent is not None else None
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
            if (run.info.status == "FINISHED"
                    and current_status(run.data.tags.get("status")) in DONE_STATUSES):
                # Finished before an interruption and run again by a resume (Tune's state was
                # saved before it ended): it only reports its end again; keep the run as it is.
                self._closed.add(key)
            elif run.info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            if self.parent_run_id and run.data.tags.get(PARENT_RUN_TAG) != self.parent_run_id:
                self.client.set_tag(run_id, PARENT_RUN_TAG, self.parent_run_id)  # older runs
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
            if self.parent_run_id:
                tags[PARENT_RUN_TAG] = self.parent_run_id
            name = self.names.get(key) or (run_name(cfg) if cfg is not None else None)
            number = (trial_id or "").rpartition("_")[2]
            if name and index is None and trial_id:  # search trials: Tune's trial number
                name = f"{name} t{int(number)}" if number.isdigit() else f"{name} {trial_id}"
            color = run_color(index if index is not None else
                              int(number) if number.isdigit() else None)
            if color:  # one colour per trial in MLflow's table and charts, and in the figure
                tags[RUN_COLOR_TAG] = color
            run = self.client.create_run(self._experiment_id, run_name=name, tags=tags)
            run_id = run.info.run_id
            if cfg is not None:
                params = [Param(k, v) for k, v in task_params(cfg).items()]
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
        self._store_rows(run_id, metrics)

    def tag_node(self, run_id: str, node: Mapping[str, str]) -> None:
        """Tags ``node_id``, ``node_ip``, ``hostname``, ``gpu_ids`` (Ray's, or ``none``),
        ``device`` (where the trial runs, or ran last) and ``nodes`` (every node id it ran on,
        in order), when the trial starts on a node."""
        from mlflow.entities import RunTag

        node_id = str(node.get("node_id", ""))
        if not node_id or self._nodes.get(run_id) == node_id:
            return
        self._nodes[run_id] = node_id
        tags = node_tags(self.client.get_run(run_id).data.tags, node)
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def finish(self, key: str, run_id: str, end: Mapping[str, Any] | None, checkpoint,
               error: str | None = None, figures: str = "trial") -> TrialOutcome:
        """Write the end values and artifacts (:mod:`sweeps.trial_run`) and close the run."""
        client = self.client
        self.flush(run_id)  # its rows before its end values
        summary = current_names(end["summary"]) if end else {}
        if error is not None or not end:
            summary["status"] = "failed"
        tags = end_tags(summary, end, error, client.get_run(run_id).data.tags if end else {})
        stats = (end or {}).get("dataset_stats", {})
        client.log_batch(run_id, metrics=end_metrics(summary, stats))
        client.set_tag(run_id, SWEEP_TAG, self.sweep)
        for name, value in tags.items():
            client.set_tag(run_id, name, value)
        if checkpoint is not None and end:
            log_record(client, run_id, checkpoint, figures)
        client.set_terminated(run_id, "FAILED" if tags["status"] == "failed" else "FINISHED")
        return TrialOutcome(key=key, config=None, status=tags["status"],
                            outcome=summary.get("outcome"),
                            threshold_epoch=summary.get("threshold_epoch"),
                            memorization_epoch=summary.get("memorization_epoch"),
                            epochs_run=summary.get("epochs_run"), run_id=run_id, error=error,
                            unseen_acc=summary.get("final_test_acc_unseen"),
                            leakage=stats.get("leakage"))

    # ---- Tune callback hooks ----------------------------------------------------------------
    def _key(self, trial) -> str:
        return key_of(trial.config, trial.trial_id, self.sweep)

    # Each hook works through a method keyed by the trial key and the trial's Tune config, so
    # that a pack (sweeps.pack_tracking) can hand each of its members to the same code.
    def on_trial_start(self, iteration, trials, trial, **info):
        self.start(self._key(trial), trial.config, trial.trial_id)

    def start(self, key: str, tune_config: Mapping[str, Any], trial_id: str | None) -> str:
        return self.attach(key, config_from_tune(tune_config), trial_id, index_of(tune_config))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.take_result(self._key(trial), trial.config, trial.trial_id, result)

    def take_result(self, key: str, tune_config: Mapping[str, Any], trial_id: str | None,
                    result: Mapping[str, Any]) -> None:
        run_id = self._runs.get(key) or self.start(key, tune_config, trial_id)
        if key in self._closed:
            return
        if isinstance(result.get("node"), Mapping):
            self.tag_node(run_id, result["node"])
        for row in rows_of(result):  # the rows gathered since the trial's last report
            self.log_row(run_id, row)
        if isinstance(result.get("end"), Mapping):
            self._ends[key] = result["end"]

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.take_checkpoint(self._key(trial), checkpoint)

    def take_checkpoint(self, key: str, checkpoint) -> None:
        self._checkpoints[key] = checkpoint
        if key in self._runs:
            self.flush(self._runs[key])  # a resume from this checkpoint skips no unwritten row

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.complete(self._key(trial), trial.config, trial.last_result, trial.checkpoint)

    def complete(self, key: str, tune_config: Mapping[str, Any],
                 last_result: Mapping[str, Any] | None, checkpoint) -> None:
        run_id = self._runs.get(key) or self.attach(key, config_from_tune(tune_config))
        if key in self._closed:
            return
        end = self._ends.pop(key, None) or (last_result or {}).get("end")
        checkpoint = self._checkpoints.pop(key, None) or checkpoint
        error = None if end else "the trial ended without reporting its end"
        self.finish(key, run_id, end, checkpoint, error, figures_mode(tune_config))

    def on_step_end(self, iteration, trials, **info):
        queue = shared_queue()
        if len(queue):
            for run_id, drawn in queue.drawn():
                log_drawn(self.client, run_id, drawn)
                queue.forget(run_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.fail(self._key(trial), trial.config, error_text(trial))

    def fail(self, key: str, tune_config: Mapping[str, Any], error: str) -> None:
        run_id = self._runs.get(key) or self.attach(key, config_from_tune(tune_config))
        if key in self._closed:
            return
        self.finish(key, run_id, None, None, error=error)

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
                outcome = outcome_of_run(run, key, cfg)
            elif end:
                outcome = self.finish(key, self.attach(key, cfg, trial_id, index), end,
                                      result.checkpoint, figures=figures_mode(tune_config))
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


def outcome_of_run(run, key: str, cfg: RunConfig | None) -> TrialOutcome:
    """The TrialOutcome of a trial's ended MLflow run (its end tags, old names mapped)."""
    tags, metrics = current_names(run.data.tags), run.data.metrics
    return TrialOutcome(
        key=key, config=cfg, status=tags["status"], outcome=tags.get("outcome"),
        threshold_epoch=integer(tags.get("threshold_epoch")),
        memorization_epoch=integer(tags.get("memorization_epoch")),
        epochs_run=integer(metrics.get("epochs_run")), run_id=run.info.run_id,
        error=tags.get("error"), unseen_acc=metrics.get("test_acc_unseen"),
        leakage=metrics.get("leakage"))
