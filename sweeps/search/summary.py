"""After a search: each trial's score, the best beside the baseline, the parameter importances;
as a table and in MLflow (a summary run, and each trial run's score)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from analysis.text_table import format_table
from grokcore.records import RUN_KIND_TAG, current_status, tag_text
from sweeps.search.space import PARAMS, SCORE, SearchSpace, fmt

SEARCH_SUMMARY_FILE = "search_summary.json"  # the summary run's artifact


@dataclass
class TrialScore:
    number: int  # the Optuna trial number
    params: dict[str, Any]
    score: float | None  # None: failed
    status: str
    threshold_epoch: int | None
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
    result: Any = None  # the runner's SweepResult (where to look at the trials)

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep, "study_name": self.study_name, "storage": self.storage,
            "penalty": self.penalty,
            "objective": "threshold epoch (minimized); penalty if not reached",
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
            status=current_status(t.user_attrs.get("status", "failed" if not complete else "?")),
            threshold_epoch=t.user_attrs.get("threshold_epoch", t.user_attrs.get("grok_epoch")),
            baseline=bool(t.user_attrs.get("baseline")),
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
    """Tag each trial's MLflow run with its score, and write the summary into the sweep's parent
    run (tags ``summary_of``, ``study_name``, ``partial``, ``best_<name>``, ``best_run_id``,
    ``baseline_run_id``; metrics ``importance_<name>``, ``best_score``, ``baseline_score``;
    params ``study_name``, ``penalty``; ``search_summary.json``); returns its id. A sweep without
    a parent run (older stores) gets a summary run tagged ``run_kind=search_summary``."""
    from mlflow.entities import Metric, Param as MlflowParam
    from mlflow.tracking import MlflowClient

    from analysis.runs import find_sweep_run
    from sweeps.tracking import ensure_experiment

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
    tags = {"summary_of": summary.sweep, "study_name": summary.study_name,
            "partial": "true" if unfinished else "false"}
    parent = find_sweep_run(client, experiment_id, summary.sweep)
    if parent is not None:  # the sweep's parent run holds the summary (a resume updates it)
        run_id = parent.info.run_id
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    else:
        run_id = client.create_run(experiment_id, run_name=f"{summary.sweep}-summary",
                                   tags={RUN_KIND_TAG: "search_summary", **tags}).info.run_id
    # Params cannot change once logged, and a resumed search finds a new best: tags for those.
    params = [MlflowParam("study_name", summary.study_name),
              MlflowParam("penalty", str(summary.penalty))]
    metrics = [Metric(f"importance_{k}", v, now, 0) for k, v in summary.importances.items()]
    for label, t in (("best", summary.best), ("baseline", summary.baseline)):
        if t is None:
            continue
        if t.score is not None:
            metrics.append(Metric(f"{label}_score", t.score, now, 0))
        client.set_tag(run_id, f"{label}_trial", str(t.number))
        if t.run_id:
            client.set_tag(run_id, f"{label}_run_id", t.run_id)
        if label == "best":
            for k, v in t.params.items():
                client.set_tag(run_id, f"best_{k}", tag_text(v))
    client.log_batch(run_id, metrics=metrics, params=params)
    client.log_dict(run_id, summary.to_json(), SEARCH_SUMMARY_FILE)
    if parent is None:
        client.set_terminated(run_id, "FINISHED")
    summary.summary_run_id = run_id
    return run_id


def format_summary(summary: SearchSummary, space: SearchSpace | None = None) -> str:
    names = sorted({k for t in summary.trials for k in t.params},
                   key=lambda n: list(PARAMS).index(n) if n in PARAMS else 99)
    rows = []
    for t in sorted(summary.trials, key=lambda t: (t.score is None, t.score or 0, t.number)):
        mark = "*" if t.baseline else ""
        rows.append([f"{t.number}{mark}"] + [fmt(t.params.get(n, "-")) for n in names]
                    + [t.status, str(t.threshold_epoch), fmt(t.score)])
    lines = [format_table(["trial"] + names + ["status", "threshold_epoch", "score"], rows)]
    lines.append(f"(* the baseline; score: the threshold epoch; a trial that does not reach the "
                 f"threshold scores {fmt(summary.penalty)})")
    lines.append("")
    lines.append("best configuration beside the baseline:")
    shown = []
    best, base = summary.best, summary.baseline
    for name in names:
        shown.append((name, fmt(best.params.get(name, "-")) if best else "-",
                      fmt(base.params.get(name, "-")) if base else "-"))
    for label, get in (("status", lambda t: t.status),
                       ("threshold_epoch", lambda t: str(t.threshold_epoch)),
                       ("score", lambda t: fmt(t.score)), ("optuna trial", lambda t: str(t.number))):
        shown.append((label, get(best) if best else "-", get(base) if base else "-"))
    lines.append(format_table(("setting", "best", "baseline"), shown, align="l", indent="  "))
    lines.append("")
    if summary.importances:
        lines.append("what drives the threshold epoch (Optuna parameter importances, sum 1):")
        for name, value in summary.importances.items():
            lines.append(f"  {name:<22} {value:6.3f}  {'#' * round(40 * value)}")
    else:
        lines.append(f"importances: {summary.importance_note}")
    return "\n".join(lines)
