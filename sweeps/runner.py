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

Where the parts are: the trainable and what a trial reports in :mod:`sweeps.trial` (worker), the
MLflow logger in :mod:`sweeps.tracking` and the progress lines in :mod:`sweeps.console` (driver).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ray import tune

from grokcore.config import ConfigError, RunConfig
from grokcore.records import DEFAULT_TRACKING_URI
from sweeps.console import one_line, say
from sweeps.figures_after import check_mode, close_shared_queue, draw_pending
from sweeps.grid import FIELD_NAMES, check_devices, prepare_configs, varying_fields
from sweeps.sweep_run import (close_sweep_run, command_line, open_sweep_run, publish_table,
                              runs_url, ui_command)
from sweeps.run_names import run_name
from sweeps.pack_tracking import PackLogger, PackProgress
from sweeps.packing import describe_packs, sweep_packs, write_packs
from sweeps.tracking import (MLflowTrialLogger, TrialOutcome, ensure_experiment,
                             normalize_tracking_uri)
from sweeps.pack_trial import pack_param_space, run_keys
from sweeps.trainable import trainable_with_resources
from sweeps.trial import (BASE_RUN, FIGURES_KEY, FaultInjection, grid_param_space, trial_dirname,
                          trial_key)


class SweepError(RuntimeError):
    """The sweep could not start (no cluster, nothing to resume...); the message is one line."""


@dataclass(frozen=True)
class Resources:
    """What each trial gets and how many run: Ray resources of one trial (GPUs may be
    fractional; ``None``: settled from the cluster, see :meth:`settle`), at most
    ``max_concurrent`` trials at once (0: as many as fit), and ``retries`` restarts of a crashed
    trial, each from its last checkpoint (after that the trial is recorded ``failed`` and the
    others go on)."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    max_concurrent: int = 0
    retries: int = 2

    def check(self) -> None:
        if (self.retries < 0 or self.cpus_per_trial <= 0 or (self.gpus_per_trial or 0) < 0
                or self.max_concurrent < 0):
            raise ConfigError("need retries >= 0, cpus_per_trial > 0, gpus_per_trial >= 0 and "
                              "max_concurrent >= 0")

    def settle(self, nodes: Sequence[Mapping[str, float]]) -> "Resources":
        """These resources with ``gpus_per_trial`` settled, from the Ray resources of the
        cluster's live ``nodes``. Given, it stays. ``None`` (auto): 0 unless every node has a
        GPU, else the share that lets as many trials use a node's GPUs as its CPUs run, so that
        no node idles (a trial that reserves a GPU runs only on a node with one, and Ray hides
        the GPUs from a trial that reserves none)."""
        if self.gpus_per_trial is not None:
            return self
        shares = []
        for node in nodes:
            trials = int(node.get("CPU", 0.0) // self.cpus_per_trial)
            if trials:  # a node that cannot hold a trial does not count
                shares.append(min(1.0, node.get("GPU", 0.0) / trials))
        share = min(shares, default=0.0)
        # Ray counts fractions of a GPU in ten-thousandths: round down, so that they all fit.
        return dataclasses.replace(self, gpus_per_trial=math.floor(share * 1e4) / 1e4)

    def describe(self, cluster: Mapping[str, float]) -> list[str]:
        """What the sweep will use of ``cluster`` (Ray's cluster_resources()), as lines to print:
        the resources, how many trials fit at once, and a hint where GPUs would stay idle."""
        cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
        fit = [int(cpus // self.cpus_per_trial)]
        if self.gpus_per_trial:
            fit.append(int(gpus // self.gpus_per_trial))
        if self.max_concurrent:
            fit.append(self.max_concurrent)
        gpu = f" and {self.gpus_per_trial:g} GPU" if self.gpus_per_trial else ""
        lines = [f"Ray: {cpus:g} CPU, {gpus:g} GPU; each trial {self.cpus_per_trial:g} CPU{gpu}, "
                 f"{min(fit)} at once"]
        if gpus and not self.gpus_per_trial:
            lines.append(f"note: the cluster's {gpus:g} GPU(s) stay idle: trials that reserve no "
                         "GPU train on CPUs (by default they reserve a share only when every node "
                         "has a GPU); --gpus-per-trial 0.25 lets four trials share each GPU, and "
                         "runs trials only on nodes with one")
        return lines


@dataclass
class Search:
    """A search instead of a grid: ``num_samples`` trials of ``base`` with the fields of
    ``param_space`` (RunConfig field names -> Tune domains) chosen by ``search_alg`` (Tune's
    searcher; None: random/grid sampling of ``param_space``), optimizing ``metric`` in ``mode``."""

    base: RunConfig = field(default_factory=RunConfig)
    param_space: Mapping[str, Any] = field(default_factory=dict)
    search_alg: Any = None
    num_samples: int = 1
    metric: str | None = None
    mode: str | None = None


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


# ==== the sweep =================================================================================

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


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def new_sweep_name(experiment: str) -> str:
    """The default name of a new sweep: EXPERIMENT-DATE-TIME."""
    return f"{safe_name(experiment)}-{time.strftime('%Y%m%d-%H%M%S')}"


def _storage_path(storage: str | os.PathLike) -> str:
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


def _latest_sweep(storage: str, experiment: str) -> str | None:
    root = Path(storage)
    if "://" in storage or not root.is_dir():
        return None
    prefix = safe_name(experiment) + "-"
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)
             and tune.Tuner.can_restore(str(p))]
    return max(found, key=lambda p: p.stat().st_mtime).name if found else None


def _sweep_path(storage: str, experiment: str, name: str | None, resume: bool,
                ) -> tuple[str, str]:
    """The sweep's name and folder; SweepError when there is nothing to resume, or (new) when
    the folder already holds a sweep."""
    if resume:
        name = name or _latest_sweep(storage, experiment)
        path = f"{storage.rstrip('/')}/{name}" if name else None
        if not path or not tune.Tuner.can_restore(path):
            raise SweepError(f"no sweep to resume under {storage}"
                             + (f" named {name!r}" if name else f" for experiment {experiment!r}"))
        return name, path
    name = name or new_sweep_name(experiment)
    path = f"{storage.rstrip('/')}/{name}"
    if tune.Tuner.can_restore(path):
        raise SweepError(f"a sweep named {name!r} already exists under {storage}; pass "
                         "--resume to continue it or another --name")
    return name, path


def run_sweep(
    configs: Sequence[RunConfig] = (),
    *,
    search: Search | None = None,
    experiment: str = "grokking",
    name: str | None = None,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    storage: str | os.PathLike = "ray_results",
    address: str | None = None,
    resume: bool = False,
    resources: Resources = Resources(),
    fault: FaultInjection | None = None,
    progress_every_s: float = 30.0,
    command: str | None = None,
    figures: str = "after",
    pack: str | int = "off",
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
    if (search is not None) == bool(configs):
        raise ConfigError("give either configs (a grid) or a search, not both")
    if search is not None:
        base = prepare_configs([search.base], resources.gpus_per_trial)[0]
        unknown = sorted(set(search.param_space) - set(FIELD_NAMES))
        if unknown:
            raise ConfigError(f"param_space keys {unknown} are not RunConfig fields")
    else:
        configs = prepare_configs(configs, resources.gpus_per_trial)
    resources.check()
    check_mode(figures)
    tracking_uri = normalize_tracking_uri(tracking_uri)
    storage = _storage_path(storage)
    name, path = _sweep_path(storage, experiment, name, resume)

    # Forced experiment snapshots (num_to_keep) are what makes a resume exact: no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: only our progress lines
    quiet_unstarted_trials()
    started_ray = connect_ray(address)
    try:
        import ray

        trials = "" if resume else f", {search.num_samples if search else len(configs)} trials"
        resources = resources.settle([n["Resources"] for n in ray.nodes() if n["Alive"]])
        check_devices([base] if search is not None else configs, resources.gpus_per_trial)
        packs = sweep_packs(configs, pack, resources, search is not None, resume, path)
        say(f"{'resuming' if resume else 'starting'} sweep {name!r}{trials}")
        for line in resources.describe(ray.cluster_resources()):
            say(line)
        if packs is not None and not resume:
            say(describe_packs(packs, len(configs)))
        experiment_id = ensure_experiment(tracking_uri, experiment)  # the store exists from here
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        extras = varying_fields(configs)  # settings the name must show to tell trials apart
        labels = {trial_key(name, c.to_json()): run_name(c, extras=extras) for c in configs}
        searched = {"searched": sorted(search.param_space), "num_samples": search.num_samples,
                    "param_space": {k: str(v) for k, v in search.param_space.items()}} \
            if search is not None else None
        parent_id = open_sweep_run(client, experiment_id, name,
                                   configs=[base] if search is not None else configs,
                                   search=searched, command=command or command_line())
        logger = PackLogger(tracking_uri, experiment, name, parent_id, labels)
        trainable = trainable_with_resources(resources.cpus_per_trial, resources.gpus_per_trial)
        if resume:
            tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True,
                                       resume_errored=True, restart_errored=False)
        else:
            if search is not None:
                space = {BASE_RUN: base.to_dict(), FIGURES_KEY: figures, **search.param_space}
            else:
                space = grid_param_space(configs, name, fault, f"{path}/injected_faults", figures)
                if packs is not None:
                    space = pack_param_space(configs, packs, space, name)
                    write_packs(path, packs)
            n_trials = search.num_samples if search is not None else len(configs)
            how = search or Search()  # a grid: no searcher, one sample of each grid entry
            tuner = tune.Tuner(
                trainable,
                param_space=space,
                tune_config=tune.TuneConfig(
                    search_alg=how.search_alg, num_samples=how.num_samples, metric=how.metric,
                    mode=how.mode, max_concurrent_trials=resources.max_concurrent or None,
                    reuse_actors=True, trial_dirname_creator=trial_dirname,
                    trial_name_creator=trial_dirname),
                run_config=tune.RunConfig(
                    name=name, storage_path=storage, verbose=0,
                    callbacks=[logger,
                               TuneProgress(labels, n_trials, progress_every_s, name)],
                    failure_config=tune.FailureConfig(max_failures=resources.retries),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
            )
        results = tuner.fit()
        outcomes = PackLogger(tracking_uri, experiment, name, parent_id,
                              labels).reconcile(results, configs, packs)
        draw_pending(client, experiment_id, name, say=say,
                     every_s=progress_every_s)
        close_sweep_run(client, parent_id, outcomes)
        table_note = publish_table(tracking_uri, experiment, name)
        # A resume runs the stored grid; settings given now that it lacks are not run. Tune
        # creates a grid's trials as they are about to start, so only a sweep that ran to its
        # end has them all: after an interruption the note would name trials still to come.
        stored = {key for r in results for key in run_keys(r.config or {})}
        ran_to_end = not any(o.status == "unfinished" for o in outcomes)
        not_in_stored = [label for key, label in labels.items()
                         if resume and search is None and ran_to_end and key not in stored]
    finally:
        close_shared_queue()
        if started_ray:
            import ray

            ray.shutdown()
    return SweepResult(name=name, path=path, experiment=experiment, experiment_id=experiment_id,
                       tracking_uri=tracking_uri, outcomes=outcomes,
                       seconds=time.perf_counter() - started, not_in_stored_grid=not_in_stored,
                       parent_run_id=parent_id, table_note=table_note)
