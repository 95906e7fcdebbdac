"""Run grokcore trainings as Ray Tune trials, with every trial logged to MLflow by the driver.

The one entry point for a sweep script is :func:`run_sweep`::

    from grokcore.config import RunConfig
    from sweeps.runner import run_sweep

    grid = [RunConfig(p=31, a=a, b=b, seed=s, epochs=3000) for a in (1, 3) for b in (1, 3)
            for s in (0, 1)]
    result = run_sweep(grid, experiment="my_sweep")          # local Ray, ./mlflow.db
    for o in result.outcomes:
        print(o.config.a, o.config.b, o.outcome, o.threshold_epoch)

A search instead of a grid (e.g. Optuna) passes a :class:`Search`: ``param_space`` (Tune domains
over RunConfig field names), ``base`` (the settings not searched), ``search_alg``,
``num_samples``, ``metric`` and ``mode``; everything else (trainable, MLflow, stopping, resume,
retries) is the same::

    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    run_sweep(search=Search(base=RunConfig(p=31, frac_train=0.5, epochs=2000, stop_after_grok=3),
                            param_space={"lr": tune.loguniform(1e-4, 1e-2),
                                         "weight_decay": tune.uniform(0.1, 5)},
                            search_alg=OptunaSearch(), metric="test_acc", mode="max",
                            num_samples=20),
              experiment="optuna_lr_wd")

Where the parts are: the trainable and what a trial reports in :mod:`sweeps.trial` (worker); the
settings and their checks (:class:`Search`, :class:`Resources`) in :mod:`sweeps.sweep_plan`, the
MLflow logger in :mod:`sweeps.tracking` and the progress lines in :mod:`sweeps.console` (driver).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ray import tune

from grokcore.config import RunConfig
from grokcore.records import DEFAULT_TRACKING_URI
from sweeps.checkpoint_mend import mend_pruned_checkpoints
from sweeps.console import one_line, say
from sweeps.figures_after import close_shared_queue, draw_pending
from sweeps.grid import check_devices, varying_fields
from sweeps.sweep_plan import Resources, Search, SweepError, SweepPlan
from sweeps.sweep_run import (close_sweep_run, command_line, open_sweep_run, publish_table,
                              runs_url, ui_command)
from sweeps.run_names import run_name
from sweeps.pack_tracking import PackLogger, PackProgress
from sweeps.packing import describe_packs, sweep_packs, write_packs
from sweeps.tracking import TrialOutcome, ensure_experiment
from sweeps.pack_trial import pack_param_space, run_keys
from sweeps.trainable import trainable_with_resources
from sweeps.trial import (BASE_RUN, FIGURES_KEY, FaultInjection, grid_param_space, trial_dirname,
                          trial_key)


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
    parent_run_id: str | None = None  # the sweep's parent run; the trials are its children
    table_note: str | None = None  # why the grok table was not written (None: it was)
    packs: int | None = None  # how many pack trials trained the runs (None: a trial a run)

    @property
    def ui_command(self) -> str | None:
        """The command that starts the MLflow UI on this store, as printed (None: a server)."""
        return ui_command(self.tracking_uri)

    @property
    def runs_url(self) -> str:
        """The experiment's runs view, with the trials' main columns on screen."""
        return runs_url(self.tracking_uri, self.experiment_id)


class TuneProgress(PackProgress, tune.Callback):
    """The progress lines (:class:`sweeps.console.ProgressPrinter`, with packs:
    :class:`sweeps.pack_tracking.PackProgress`) as a Tune callback."""


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
                         f"({one_line(err)[:200]}); {hint}") from None


class _NoMissingMetricsWarning(logging.Filter):
    """Drops Tune's "Failed to fetch metrics for N trial(s)" warning, one line per trial, which it
    prints on a resume and after an interruption for every trial that has not started yet. Those
    trials are not failures, and a trial that ran is reported from MLflow by the sweep itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to fetch metrics for")


def quiet_unstarted_trials() -> None:
    tune_analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    if not any(isinstance(f, _NoMissingMetricsWarning) for f in tune_analysis.filters):
        tune_analysis.addFilter(_NoMissingMetricsWarning())


# ==== the sweep =================================================================================

def run_sweep(configs: Sequence[RunConfig] = (), *, search: Search | None = None,
              experiment: str = "grokking", name: str | None = None,
              tracking_uri: str = DEFAULT_TRACKING_URI, storage: str | os.PathLike = "ray_results",
              address: str | None = None, resume: bool = False, resources: Resources = Resources(),
              fault: FaultInjection | None = None, progress_every_s: float = 30.0,
              command: str | None = None, figures: str = "after", pack: str | int = "off",
              ) -> SweepResult:
    """Run a grid (``configs``) or a ``search`` of grokcore trainings on Ray Tune, one MLflow
    run per trial, and return their outcomes.

    configs: the grid, one RunConfig per trial (validated here; duplicates dropped;
        ``checkpoint_every`` 0 becomes 10 x ``eval_every``). Stopping is each config's own:
        ``stop_after_grok`` evaluations held above ``grok_acc``, divergence, or ``epochs``.
        Tune's scheduler is FIFO: nothing prunes a trial on its early test metrics.
    search: a search instead of a grid (see :class:`Search`).
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
    resources: CPUs and GPUs per trial, concurrency and retries (see :class:`Resources`).
    fault: for tests, make some grid trials crash once (see FaultInjection).
    progress_every_s: seconds between progress lines of a running trial.
    command: the command line recorded on the sweep's parent run (default: this process's).
    figures: who draws each trial's figures: ``after`` (the driver, from the trial's record, at
        the lowest CPU priority, so they never hold a trial up; the sweep returns when all are
        logged), ``trial`` (the trial, before it ends) or ``none``. A resume keeps the sweep's
        own setting. See :mod:`sweeps.figures_after`.
    pack: ``off``, ``auto`` or K: runs of the grid trained together as packs of up to K, one
        trial a pack, each run still its own MLflow run (:mod:`sweeps.packing`); a resume keeps
        the sweep's own packs.

    MLflow: the sweep is a parent run (``sweeps.sweep_run``), each trial a child run of it; at
    the end the grok table becomes the description of the experiment and of the parent run.

    Raises ConfigError for invalid settings and SweepError when Ray cannot be reached or there
    is nothing to resume; both before anything is written to MLflow.
    """
    started = time.perf_counter()
    plan = SweepPlan(configs=configs, search=search, experiment=experiment, name=name,
                     tracking_uri=tracking_uri, storage=storage, address=address, resume=resume,
                     resources=resources, fault=fault, progress_every_s=progress_every_s,
                     command=command, figures=figures, pack=pack).checked()
    with driver_session(plan.address):
        result = _run_on_ray(plan)
    return dataclasses.replace(result, seconds=time.perf_counter() - started)


@contextlib.contextmanager
def driver_session(address: str | None) -> Iterator[None]:
    """Tune's environment and console set for a sweep, and Ray connected (:func:`connect_ray`)
    for the body; on the way out the figure processes end and a Ray started here stops."""
    # Forced experiment snapshots (num_to_keep) are what makes a resume exact: no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: only our progress lines
    quiet_unstarted_trials()
    started_ray = connect_ray(address)
    try:
        yield
    finally:
        close_shared_queue()
        if started_ray:
            import ray

            ray.shutdown()


def _run_on_ray(plan: SweepPlan) -> SweepResult:
    """The sweep once Ray is up: resources settled and shown, the parent run opened, the Tuner
    fitted, then MLflow made to agree with Tune, the figures drawn, the parent closed and the
    grok table published. ``seconds`` is left 0 for the caller."""
    import ray
    from mlflow.tracking import MlflowClient

    plan = dataclasses.replace(plan, resources=plan.resources.settle(
        [n["Resources"] for n in ray.nodes() if n["Alive"]]))
    check_devices(plan.runs, plan.resources.gpus_per_trial)
    packs = sweep_packs(plan.configs, plan.pack, plan.resources, plan.search is not None,
                        plan.resume, plan.path)
    trials = "" if plan.resume else f", {plan.n_trials} {'trials' if packs is None else 'runs'}"
    say(f"{'resuming' if plan.resume else 'starting'} sweep {plan.name!r}{trials}")
    for line in plan.resources.describe(ray.cluster_resources()):
        say(line)
    if packs is not None and not plan.resume:
        say(describe_packs(packs, len(plan.configs)))
    experiment_id = ensure_experiment(plan.tracking_uri, plan.experiment)  # the store exists now
    client = MlflowClient(plan.tracking_uri)
    labels = trial_labels(plan)
    parent_id = _open_parent_run(plan, client, experiment_id)
    if plan.resume:
        for note in mend_pruned_checkpoints(plan.path):
            say(f"note: {note}")
    results = _tuner(plan, packs, labels, parent_id).fit()
    outcomes = PackLogger(plan.tracking_uri, plan.experiment, plan.name, parent_id,
                          labels).reconcile(results, plan.configs, packs)
    draw_pending(client, experiment_id, plan.name, say=say, every_s=plan.progress_every_s)
    close_sweep_run(client, parent_id, outcomes)
    table_note = publish_table(plan.tracking_uri, plan.experiment, plan.name)
    return SweepResult(name=plan.name, path=plan.path, experiment=plan.experiment,
                       experiment_id=experiment_id, tracking_uri=plan.tracking_uri,
                       outcomes=outcomes, seconds=0.0,
                       not_in_stored_grid=_not_in_stored_grid(plan, results, outcomes, labels),
                       parent_run_id=parent_id, table_note=table_note,
                       packs=None if packs is None else len(packs))


def trial_labels(plan: SweepPlan) -> dict[str, str]:
    """The grid's run names by trial key (a search's trials are named as they start)."""
    extras = varying_fields(plan.configs)  # settings the name must show to tell trials apart
    return {trial_key(plan.name, c.to_json()): run_name(c, extras=extras) for c in plan.configs}


def _open_parent_run(plan: SweepPlan, client, experiment_id: str) -> str:
    """The sweep's parent run (:func:`sweeps.sweep_run.open_sweep_run`), with the grid or the
    search's base run and what it searches."""
    search = plan.search
    searched = {"searched": sorted(search.param_space), "num_samples": search.num_samples,
                "param_space": {k: str(v) for k, v in search.param_space.items()}} \
        if search is not None else None
    return open_sweep_run(client, experiment_id, plan.name, configs=plan.runs, search=searched,
                          command=plan.command or command_line())


def _tuner(plan: SweepPlan, packs: list[list[int]] | None, labels: dict[str, str],
           parent_id: str) -> tune.Tuner:
    """Tune's Tuner: the stored one with ``resume`` (its own callbacks and settings), else a
    new one over the grid (as packs, when packed) or the search, FIFO, with the MLflow logger
    and the progress lines as callbacks."""
    trainable = trainable_with_resources(plan.resources.cpus_per_trial,
                                         plan.resources.gpus_per_trial)
    if plan.resume:
        return tune.Tuner.restore(plan.path, trainable, resume_unfinished=True,
                                  resume_errored=True, restart_errored=False)
    if plan.search is not None:
        space = {BASE_RUN: plan.base.to_dict(), FIGURES_KEY: plan.figures,
                 **plan.search.param_space}
    else:
        space = grid_param_space(plan.configs, plan.name, plan.fault,
                                 f"{plan.path}/injected_faults", plan.figures)
        if packs is not None:
            space = pack_param_space(plan.configs, packs, space, plan.name)
            write_packs(plan.path, packs)
    how = plan.search or Search()  # a grid: no searcher, one sample of each grid entry
    logger = PackLogger(plan.tracking_uri, plan.experiment, plan.name, parent_id, labels)
    progress = TuneProgress(labels, plan.n_trials, plan.progress_every_s, plan.name)
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            search_alg=how.search_alg, num_samples=how.num_samples, metric=how.metric,
            mode=how.mode, max_concurrent_trials=plan.resources.max_concurrent or None,
            reuse_actors=True, trial_dirname_creator=trial_dirname,
            trial_name_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=plan.name, storage_path=plan.storage, verbose=0, callbacks=[logger, progress],
            failure_config=tune.FailureConfig(max_failures=plan.resources.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )


def _not_in_stored_grid(plan: SweepPlan, results, outcomes: Sequence[TrialOutcome],
                        labels: dict[str, str]) -> list[str]:
    """With ``resume``: the run names of the grid given that the stored grid lacks."""
    # A resume runs the stored grid; settings given now that it lacks are not run. Tune
    # creates a grid's trials as they are about to start, so only a sweep that ran to its
    # end has them all: after an interruption the note would name trials still to come.
    stored = {key for r in results for key in run_keys(r.config or {})}
    ran_to_end = not any(o.status == "unfinished" for o in outcomes)
    return [label for key, label in labels.items()
            if plan.resume and plan.search is None and ran_to_end and key not in stored]
