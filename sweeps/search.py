"""Search for the settings that grok fastest: Optuna's TPE sampler on Ray Tune, MLflow logging.

    python sweeps/search.py --p 31 --frac 0.5 --lr 3e-3 --weight-decay 3 --epochs 3000 \\
        --eval-every 10 --num-samples 40 --max-concurrent 2 --seed 0
    python sweeps/search.py --search lr weight_decay grokfast --range lr=1e-4:3e-2 ...
    python sweeps/search.py --dry-run            # the search space and the baseline; runs nothing

Every RunConfig field is an option (one value each): together they are the *base* run. Its
values of the searched settings are the *baseline*, enqueued as the study's first trial, so the
search reports how far it got beyond the plain configuration. ``--seed`` seeds the sampler; the
weight seed of the runs is ``--model-seed``.

The objective, minimized: the trial's grok epoch; a trial that does not grok (budget reached, or
diverged) scores ``--penalty-factor`` x ``--epochs`` (2 x the budget by default), which is worse
than any grok epoch. A trial that crashes (after its retries) is a FAILed Optuna trial and
scores nothing. The trials run through ``sweeps._runner.run_sweep`` (the grid's trainable,
stopping, checkpoints, retries and per-trial MLflow runs); this module only adds the sampler,
the scoring and the summary.

The Optuna study lives in SQLite (``--optuna-storage``, study name = the sweep's name unless
``--study-name``): ``--resume`` continues an interrupted sweep (Tune restores the sampler), and a
new sweep with an existing ``--study-name`` continues that study (TPE learns from its trials).

At the end: a table of the trials, the best configuration beside the baseline, and which
settings drive the grok epoch (``optuna.importance.get_param_importances``, PED-ANOVA by
default), also stored in MLflow as a summary run (tag ``run_kind=search_summary``) with the
importances as metrics ``importance_<name>``, the best settings as params ``best_<name>`` and
``search_summary.json``. Each trial's run gets the metric ``grok_score`` and the tag
``optuna_trial``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grokcore.config import ConfigError, RunConfig  # noqa: E402

SCORE = "grok_score"
DEFAULT_STORAGE = "sqlite:///optuna.db"
SUMMARY_FILE = "search_summary.json"


# ==== the search space ===========================================================================

@dataclass(frozen=True)
class Param:
    """One searched setting: a float or int range (log-scaled or not) or a list of choices."""

    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    only_if: tuple[str, str] | None = None  # (field, value): searched only in that branch

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        scale = " log" if self.log else ""
        return f"[{_fmt(self.low)}, {_fmt(self.high)}]{scale}"

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return self.low <= value <= self.high


# Every setting the search can vary, with its default range. The Grokfast parameters are searched
# only in the branch of their filter (a conditional space); d_model scales d_head and d_mlp with it.
PARAMS: dict[str, Param] = {
    "lr": Param("float", 1e-4, 1e-2, log=True),
    "weight_decay": Param("float", 0.1, 10.0, log=True),
    "frac_train": Param("float", 0.3, 0.7),
    "beta1": Param("float", 0.8, 0.95),
    "beta2": Param("float", 0.95, 0.999),
    "warmup_epochs": Param("int", 0, 200),
    "loss": Param("choice", choices=("softmax", "stablemax")),
    "ortho_grad": Param("choice", choices=(False, True)),
    "grokfast": Param("choice", choices=("none", "ema", "ma")),
    "grokfast_alpha": Param("float", 0.8, 0.99, only_if=("grokfast", "ema")),
    "grokfast_ema_lambda": Param("float", 0.5, 5.0, only_if=("grokfast", "ema")),
    "grokfast_window": Param("int", 10, 200, only_if=("grokfast", "ma")),
    "grokfast_ma_lambda": Param("float", 1.0, 8.0, only_if=("grokfast", "ma")),
    "d_model": Param("choice", choices=(64, 128, 256)),
}


@dataclass(frozen=True)
class SearchSpace:
    """Optuna define-by-run space over RunConfig fields (picklable: Tune saves it with the sampler).

    Called with an Optuna trial, it suggests each searched setting (RunConfig field names are the
    Optuna parameter names) and returns the settings that follow from them: d_head and d_mlp
    keep their proportion to d_model in the base.
    """

    base: RunConfig
    params: tuple[tuple[str, Param], ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.params]

    def __call__(self, trial) -> dict[str, Any] | None:
        chosen: dict[str, Any] = {}
        for name, spec in self.params:
            if spec.only_if is not None:
                on, value = spec.only_if
                if chosen.get(on, getattr(self.base, on)) != value:
                    continue
            if spec.kind == "float":
                chosen[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
            elif spec.kind == "int":
                chosen[name] = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
            else:
                chosen[name] = trial.suggest_categorical(name, list(spec.choices))
        return self.derived(chosen) or None

    def derived(self, chosen: Mapping[str, Any]) -> dict[str, Any]:
        if "d_model" not in chosen:
            return {}
        width, base = chosen["d_model"], self.base
        return {"d_head": max(1, round(base.d_head * width / base.d_model)),
                "d_mlp": max(1, round(base.d_mlp * width / base.d_model))}

    def baseline_point(self) -> dict[str, Any]:
        """The base's values of the searched settings (only those its own branch would suggest)."""
        point = {}
        for name, spec in self.params:
            if spec.only_if is None or getattr(self.base, spec.only_if[0]) == spec.only_if[1]:
                point[name] = getattr(self.base, name)
        return point

    def config(self, params: Mapping[str, Any]) -> RunConfig:
        """The RunConfig a trial with these Optuna params trains."""
        return self.base.replace(**params, **self.derived(params))


def build_space(base: RunConfig, names: Sequence[str] | None = None,
                ranges: Mapping[str, str] | None = None) -> SearchSpace:
    """The space over ``names`` (default: all of PARAMS) with ``ranges`` overriding defaults
    ("LOW:HIGH" for numbers, "A,B,C" for choices). Raises ConfigError (one line) when a name is
    unknown, a range is malformed, or the base's own value lies outside its range."""
    names = list(names or PARAMS)
    unknown = [n for n in list(names) + list(ranges or {}) if n not in PARAMS]
    if unknown:
        raise ConfigError(f"cannot search {', '.join(unknown)}; searchable: {', '.join(PARAMS)}")
    params = {n: PARAMS[n] for n in PARAMS if n in names}  # PARAMS order: conditions come first
    for name, text in (ranges or {}).items():
        if name not in params:
            raise ConfigError(f"--range {name}=... given but {name} is not searched (--search)")
        params[name] = _parse_range(name, text, PARAMS[name])
    for name, spec in params.items():
        if spec.only_if and spec.only_if[0] not in params \
                and getattr(base, spec.only_if[0]) != spec.only_if[1]:
            raise ConfigError(f"{name} is searched only when {spec.only_if[0]}={spec.only_if[1]}; "
                              f"search {spec.only_if[0]} too or set --{spec.only_if[0]} "
                              f"{spec.only_if[1]}")
    space = SearchSpace(base, tuple(params.items()))
    for name, value in space.baseline_point().items():
        if not params[name].contains(value):
            raise ConfigError(f"the base's {name}={value} is outside the searched "
                              f"{params[name].describe()}; widen it with --range or change the base")
    space.config(space.baseline_point()).validate()
    return space


def _parse_range(name: str, text: str, default: Param) -> Param:
    kind = default.kind
    try:
        if kind == "choice":
            cast = type(default.choices[0])
            if cast is bool:
                choices = tuple(v.strip().lower() in ("1", "true", "yes") for v in text.split(","))
            else:
                choices = tuple(cast(v) for v in text.split(","))
            return dataclasses.replace(default, choices=choices)
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        form = "A,B,C" if kind == "choice" else "LOW:HIGH"
        raise ConfigError(f"--range {name}={text!r}: expected {form}") from None
    if not low < high or (default.log and low <= 0):
        raise ConfigError(f"--range {name}={text!r}: need LOW < HIGH" +
                          (" and LOW > 0 (log scale)" if default.log else ""))
    if kind == "int":
        low, high = int(low), int(high)
    return dataclasses.replace(default, low=low, high=high)


# ==== the searcher: Optuna's TPE, scored on the grok epoch =======================================

def grok_score(status: str | None, grok_epoch: Any, epochs: int, penalty_factor: float) -> float:
    """The objective: the grok epoch, or penalty_factor x epochs when the run did not grok."""
    if status == "grokked" and grok_epoch is not None:
        return float(grok_epoch)
    return float(penalty_factor * epochs)


def _make_searcher_class():
    from ray.tune.search import Searcher

    class GrokSearcher(Searcher):
        """Ray Tune searcher: Optuna's TPE (``OptunaSearch``) scored on each trial's end summary.

        Tune sees no metric (the trainable reports none that means "grok epoch" at every
        evaluation); at a trial's end this searcher reads the summary the trainable reported
        (``end/summary/status``, ``end/summary/grok_epoch``), computes the score and tells Optuna.
        Each Optuna trial also gets user attributes: ``tune_trial_id``, ``status``,
        ``grok_epoch``, ``baseline``, so the study alone ties back to Tune and MLflow.
        """

        def __init__(self, space: SearchSpace, *, seed: int, storage: str, study_name: str,
                     penalty_factor: float = 2.0, baseline: bool = True,
                     startup_trials: int = 10):
            import optuna
            import ray
            from ray.tune.search.optuna import OptunaSearch

            from sweeps._runner import SweepError

            super().__init__(metric=None, mode=None)
            self.space = space
            self.penalty_factor = penalty_factor
            self.penalty = penalty_factor * space.base.epochs
            rdb = optuna.storages.RDBStorage(storage)
            study = optuna.create_study(storage=rdb, study_name=study_name, direction="minimize",
                                        load_if_exists=True)
            known = study.trials
            if baseline and not known:  # OptunaSearch asks the same stored study: it comes first
                study.enqueue_trial(space.baseline_point(), user_attrs={"baseline": True})
            # A continued study gets another sampler seed, or its random start-up trials would
            # repeat the earlier sweep's.
            sampler = optuna.samplers.TPESampler(seed=seed + len(known),
                                                 n_startup_trials=startup_trials)
            self.inner = OptunaSearch(space=space, metric=SCORE, mode="min", sampler=sampler,
                                      study_name=study_name, storage=rdb)
            # The one private attribute read: Tune trial id -> Optuna trial, to tag the trials.
            if not isinstance(getattr(self.inner, "_ot_trials", None), dict):
                raise SweepError(f"Ray {ray.__version__}'s OptunaSearch keeps no '_ot_trials' map, "
                                 "which the search needs to tag Optuna trials; install the Ray "
                                 "this project was tested with (ray[tune]==2.60.0)")

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return self.inner.set_search_properties(metric, mode, config, **spec)

        def suggest(self, trial_id: str):
            suggestion = self.inner.suggest(trial_id)
            ot_trial = self.inner._ot_trials.get(trial_id)
            if isinstance(suggestion, dict) and ot_trial is not None:
                ot_trial.set_user_attr("tune_trial_id", trial_id)
            return suggestion

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            pass  # scored at the end only: before grokking the curves say little (no pruning)

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            ot_trial = self.inner._ot_trials.get(trial_id)
            status = (result or {}).get("end/summary/status")
            if error or status is None or ot_trial is None:
                if ot_trial is not None:
                    ot_trial.set_user_attr("status", "failed")
                self.inner.on_trial_complete(trial_id, None, error=True)
                return
            grok = result.get("end/summary/grok_epoch")
            ot_trial.set_user_attr("status", status)
            ot_trial.set_user_attr("grok_epoch", grok)
            score = grok_score(status, grok, self.space.base.epochs, self.penalty_factor)
            self.inner.on_trial_complete(trial_id, {SCORE: score})

        def save(self, checkpoint_path: str) -> None:
            import pickle

            with open(checkpoint_path, "wb") as fh:
                pickle.dump(self.__dict__, fh)

        def restore(self, checkpoint_path: str) -> None:
            import pickle

            with open(checkpoint_path, "rb") as fh:
                self.__dict__.update(pickle.load(fh))

    return GrokSearcher


def make_searcher(space: SearchSpace, **kwargs):
    """A GrokSearcher, built on Optuna's TPE. See GrokSearcher's docstring."""
    return __getattr__("GrokSearcher")(space, **kwargs)


def __getattr__(name: str):
    """``sweeps.search.GrokSearcher`` is built on first use, so that importing this module (for
    --help and --dry-run) does not import Ray; pickles of it (Tune's saved sampler) still resolve."""
    if name == "GrokSearcher":
        cls = _make_searcher_class()
        cls.__module__, cls.__qualname__ = __name__, "GrokSearcher"
        globals()["GrokSearcher"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ==== after the search: best, baseline, importances, MLflow ======================================

@dataclass
class TrialScore:
    number: int  # the Optuna trial number
    params: dict[str, Any]
    score: float | None  # None: failed
    status: str
    grok_epoch: int | None
    baseline: bool
    tune_trial_id: str | None
    run_id: str | None = None


@dataclass
class SearchSummary:
    sweep: str
    study_name: str
    storage: str
    penalty: float
    trials: list[TrialScore]
    best: TrialScore | None
    baseline: TrialScore | None
    importances: dict[str, float]
    importance_note: str = ""
    summary_run_id: str | None = None
    outcomes: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep, "study_name": self.study_name, "storage": self.storage,
            "penalty": self.penalty, "objective": "grok epoch (minimized); penalty if no grok",
            "best": dataclasses.asdict(self.best) if self.best else None,
            "baseline": dataclasses.asdict(self.baseline) if self.baseline else None,
            "importances": self.importances, "importance_note": self.importance_note,
            "trials": [dataclasses.asdict(t) for t in self.trials],
        }


def summarize_study(study_name: str, storage: str, sweep: str, penalty: float) -> SearchSummary:
    """Read the study back from its storage: every trial's score, the best, the baseline, and the
    parameter importances (over all completed trials of the study)."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = []
    for t in study.trials:
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL):
            continue
        complete = t.state == optuna.trial.TrialState.COMPLETE
        trials.append(TrialScore(
            number=t.number, params=dict(t.params), score=t.value if complete else None,
            status=t.user_attrs.get("status", "failed" if not complete else "?"),
            grok_epoch=t.user_attrs.get("grok_epoch"), baseline=bool(t.user_attrs.get("baseline")),
            tune_trial_id=t.user_attrs.get("tune_trial_id")))
    scored = [t for t in trials if t.score is not None]
    best = min(scored, key=lambda t: (t.score, t.number)) if scored else None
    baseline = next((t for t in trials if t.baseline), None)
    importances, note = {}, ""
    if len(scored) < 2:
        note = "fewer than two completed trials: no importances"
    elif len({t.score for t in scored}) < 2:
        note = "every completed trial has the same score: no importances"
    else:
        try:
            importances = {k: float(v) for k, v in
                           optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError) as err:
            note = f"importances unavailable: {err}"
    return SearchSummary(sweep=sweep, study_name=study_name, storage=storage, penalty=penalty,
                         trials=trials, best=best, baseline=baseline, importances=importances,
                         importance_note=note)


def log_summary_to_mlflow(summary: SearchSummary, tracking_uri: str, experiment: str) -> str:
    """Tag each trial's MLflow run with its score, and write the summary run; returns its id."""
    from mlflow.entities import Metric, Param as MlflowParam
    from mlflow.tracking import MlflowClient

    from sweeps._runner import _tag, ensure_experiment

    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(tracking_uri, experiment)
    now = int(time.time() * 1000)
    for t in summary.trials:
        if t.tune_trial_id is None:
            continue
        # by trial id alone: a continued study (--study-name) also holds earlier sweeps' trials
        runs = client.search_runs([experiment_id], f"tags.trial_id = '{t.tune_trial_id}'",
                                  max_results=1)
        if not runs:
            continue
        t.run_id = runs[0].info.run_id
        client.set_tag(t.run_id, "optuna_trial", str(t.number))
        client.set_tag(t.run_id, "baseline", "true" if t.baseline else "false")
        if t.score is not None:
            client.log_metric(t.run_id, SCORE, t.score, timestamp=now, step=0)
    unfinished = sum(getattr(o, "status", "") == "unfinished" for o in summary.outcomes)
    run = client.create_run(experiment_id, run_name=f"{summary.sweep}-summary",
                            tags={"run_kind": "search_summary", "summary_of": summary.sweep,
                                  "study_name": summary.study_name,
                                  "partial": "true" if unfinished else "false"})
    run_id = run.info.run_id
    params = [MlflowParam("study_name", summary.study_name), MlflowParam("penalty", str(summary.penalty)),
              MlflowParam("n_trials", str(len(summary.trials)))]
    metrics = [Metric(f"importance_{k}", v, now, 0) for k, v in summary.importances.items()]
    for label, t in (("best", summary.best), ("baseline", summary.baseline)):
        if t is None:
            continue
        if t.score is not None:
            metrics.append(Metric(f"{label}_score", t.score, now, 0))
        params.append(MlflowParam(f"{label}_trial", str(t.number)))
        if t.run_id:
            params.append(MlflowParam(f"{label}_run_id", t.run_id))
        if label == "best":
            params += [MlflowParam(f"best_{k}", _tag(v)) for k, v in t.params.items()]
    client.log_batch(run_id, metrics=metrics, params=params)
    client.log_dict(run_id, summary.to_json(), SUMMARY_FILE)
    client.set_terminated(run_id, "FINISHED")
    summary.summary_run_id = run_id
    return run_id


def format_summary(summary: SearchSummary, space: SearchSpace | None = None) -> str:
    lines = []
    names = sorted({k for t in summary.trials for k in t.params},
                   key=lambda n: list(PARAMS).index(n) if n in PARAMS else 99)
    rows = [["trial"] + names + ["status", "grok_epoch", "score"]]
    for t in sorted(summary.trials, key=lambda t: (t.score is None, t.score or 0, t.number)):
        mark = "*" if t.baseline else ""
        rows.append([f"{t.number}{mark}"] + [_fmt(t.params.get(n, "-")) for n in names]
                    + [t.status, str(t.grok_epoch), _fmt(t.score)])
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    lines.append(f"(* the baseline; a trial that does not grok scores {_fmt(summary.penalty)})")
    lines.append("")
    lines.append("best configuration beside the baseline:")
    shown = [("setting", "best", "baseline")]
    best, base = summary.best, summary.baseline
    for name in names:
        shown.append((name, _fmt(best.params.get(name, "-")) if best else "-",
                      _fmt(base.params.get(name, "-")) if base else "-"))
    for label, get in (("status", lambda t: t.status), ("grok_epoch", lambda t: str(t.grok_epoch)),
                       ("score", lambda t: _fmt(t.score)), ("optuna trial", lambda t: str(t.number))):
        shown.append((label, get(best) if best else "-", get(base) if base else "-"))
    w = [max(len(r[j]) for r in shown) for j in range(3)]
    lines += ["  " + "  ".join(v.ljust(w[j]) for j, v in enumerate(r)) for r in shown]
    lines.append("")
    if summary.importances:
        lines.append("what drives the grok epoch (Optuna parameter importances, sum 1):")
        for name, value in summary.importances.items():
            lines.append(f"  {name:<22} {value:6.3f}  {'#' * round(40 * value)}")
    else:
        lines.append(f"importances: {summary.importance_note}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# ==== the whole search ===========================================================================

def run_search(space: SearchSpace, *, num_samples: int, seed: int = 0,
               experiment: str = "grok_search", name: str | None = None,
               tracking_uri: str = "sqlite:///mlflow.db", storage: str = "ray_results",
               optuna_storage: str = DEFAULT_STORAGE, study_name: str | None = None,
               address: str | None = None, resume: bool = False, max_concurrent: int = 0,
               cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, retries: int = 2,
               penalty_factor: float = 2.0, baseline: bool = True, startup_trials: int = 10,
               progress_every_s: float = 30.0) -> SearchSummary:
    """Run the search on Ray Tune through ``run_sweep``, then summarize it (and log that)."""
    from sweeps._runner import _safe_name, normalize_tracking_uri, run_sweep

    if num_samples < 1 or penalty_factor <= 1:
        raise ConfigError("need --num-samples >= 1 and --penalty-factor > 1 (a non-grokking "
                          "trial must score worse than any grok epoch)")
    optuna_storage = normalize_tracking_uri(optuna_storage)  # a relative SQLite path made absolute
    tracking_uri = normalize_tracking_uri(tracking_uri)
    if not resume:
        name = name or f"{_safe_name(experiment)}-{time.strftime('%Y%m%d-%H%M%S')}"
    searcher = None
    if not resume:
        searcher = make_searcher(space, seed=seed, storage=optuna_storage,
                                 study_name=study_name or name, penalty_factor=penalty_factor,
                                 baseline=baseline, startup_trials=startup_trials)
    result = run_sweep(
        experiment=experiment, name=name, tracking_uri=tracking_uri, storage=storage,
        address=address, resume=resume, cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, retries=retries,
        param_space={}, base=space.base, search_alg=searcher, num_samples=num_samples,
        progress_every_s=progress_every_s)
    summary = summarize_study(study_name or result.name, optuna_storage, result.name,
                              penalty_factor * space.base.epochs)
    summary.outcomes = result.outcomes
    log_summary_to_mlflow(summary, result.tracking_uri, experiment)
    return summary


# ==== command line ===============================================================================

def build_parser() -> argparse.ArgumentParser:
    from grokcore.cli import add_config_options
    from sweeps._cli import add_sweep_options

    parser = argparse.ArgumentParser(
        prog="python sweeps/search.py", conflict_handler="resolve",
        description="Search (Optuna TPE on Ray Tune) for the settings that grok fastest; each "
                    "trial is an MLflow run, and a summary run holds the best settings and the "
                    "parameter importances. The RunConfig options set the base run.")
    add_config_options(parser)  # the base run; --seed is the sampler's below
    parser.add_argument("--model-seed", dest="seed", type=int, default=RunConfig.seed,
                        help=f"seed of the weight initialisation (default: {RunConfig.seed})")
    parser.set_defaults(stop_after_grok=3)
    add_sweep_options(parser, experiment="grok_search")
    g = parser.add_argument_group("search")
    g.add_argument("--num-samples", type=int, default=20,
                   help="trials to run, the baseline included (default: 20)")
    g.add_argument("--seed", dest="search_seed", type=int, default=0,
                   help="seed of the TPE sampler (default: 0); with --max-concurrent 1 the "
                        "search repeats exactly")
    g.add_argument("--search", nargs="+", default=None, metavar="NAME",
                   help=f"settings to search (default: all of {', '.join(PARAMS)})")
    g.add_argument("--range", nargs="+", default=[], metavar="NAME=SPEC",
                   help="override a range: lr=1e-4:3e-2 (LOW:HIGH) or d_model=32,64 (choices)")
    g.add_argument("--penalty-factor", type=float, default=2.0,
                   help="a trial that does not grok scores this x --epochs (default: 2)")
    g.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="do not enqueue the base configuration as the first trial")
    g.add_argument("--startup-trials", type=int, default=10,
                   help="random trials before TPE models the results (default: 10)")
    g.add_argument("--optuna-storage", default=DEFAULT_STORAGE,
                   help=f"Optuna storage URL of the study (default: {DEFAULT_STORAGE})")
    g.add_argument("--study-name", default=None,
                   help="Optuna study name (default: the sweep's name); an existing one is "
                        "continued")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from grokcore.cli import config_from_args

    args = build_parser().parse_args(argv)
    try:
        if args.fail_at_epoch:
            raise ConfigError("--fail-at-epoch applies to grids, not to searches")
        ranges = {}
        for item in args.range:
            key, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"--range {item!r}: expected NAME=LOW:HIGH or NAME=A,B")
            ranges[key.strip()] = text.strip()
        base = config_from_args(args).validate()
        space = build_space(base, args.search, ranges)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print("searched settings:")
        for n, spec in space.params:
            cond = f"  (when {spec.only_if[0]}={spec.only_if[1]})" if spec.only_if else ""
            print(f"  {n:<22} {spec.describe()}{cond}")
        print(f"baseline (trial 0): {space.baseline_point()}")
        print(f"objective: grok epoch, or {_fmt(args.penalty_factor * base.epochs)} without grok; "
              f"{args.num_samples} trials")
        return 0

    from sweeps._runner import SweepError

    try:
        summary = run_search(
            space, num_samples=args.num_samples, seed=args.search_seed,
            experiment=args.experiment, name=args.name, tracking_uri=args.tracking_uri,
            storage=args.storage, optuna_storage=args.optuna_storage,
            study_name=args.study_name, address=args.address, resume=args.resume,
            max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial, retries=args.retries,
            penalty_factor=args.penalty_factor, baseline=args.baseline,
            startup_trials=args.startup_trials, progress_every_s=args.progress_every)
    except (ConfigError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(format_summary(summary, space))
    print(f"\nsweep {summary.sweep!r}, Optuna study {summary.study_name!r} in {summary.storage}; "
          f"MLflow summary run {summary.summary_run_id}")
    unfinished = sum(getattr(o, "status", "") == "unfinished" for o in summary.outcomes)
    if unfinished:
        print(f"{unfinished} trials did not finish (interrupted; the summary above is partial): "
              f"run the same command with --resume --name {summary.sweep} to continue")
    failed = any(t.score is None for t in summary.trials)
    return 1 if failed or unfinished else 0


if __name__ == "__main__":
    from sweeps.search import main as _main  # one module for the pickled searcher and space

    sys.exit(_main())
