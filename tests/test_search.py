"""End to end: a tiny Optuna search on a real local Ray, with MLflow and the Optuna study in SQLite."""

import json
import math

import pytest

from grokcore.config import ConfigError, RunConfig
from grokcore.tasks import config_for, validate
from sweeps.search import PARAMS, build_space, grok_score, main


def test_space_suggests_what_it_says_and_keeps_the_base_proportions():
    import optuna

    base = RunConfig(p=31, d_model=64, d_head=16, d_mlp=256, grokfast="none")
    space = build_space(base, ["lr", "grokfast", "grokfast_alpha", "grokfast_window", "d_model"],
                        {"lr": "1e-3:1e-2", "d_model": "32,64,128"})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        derived = space(trial)
        params = trial.params
        assert 1e-3 <= params["lr"] <= 1e-2
        assert params["d_model"] in (32, 64, 128)
        assert derived == {"d_head": params["d_model"] // 4, "d_mlp": params["d_model"] * 4}
        # the Grokfast parameters appear only in their filter's branch
        assert ("grokfast_alpha" in params) == (params["grokfast"] == "ema")
        assert ("grokfast_window" in params) == (params["grokfast"] == "ma")
        cfg = validate(space.config(params))
        assert (cfg.d_model, cfg.d_head, cfg.d_mlp) == (params["d_model"], derived["d_head"],
                                                        derived["d_mlp"])
        seen.add(params["grokfast"])
        study.tell(trial, 1.0)
    assert seen == {"none", "ema", "ma"}
    assert space.baseline_point() == {"lr": base.lr, "grokfast": "none", "d_model": 64}


@pytest.mark.parametrize("names,ranges,fragment", [
    (["lr", "momentum"], {}, "momentum"),
    (["lr"], {"lr": "1e-2:1e-3"}, "LOW < HIGH"),
    (["lr"], {"lr": "0.01:0.1"}, "outside"),  # the base's lr 1e-3 must be searchable
    (["grokfast_window"], {}, "grokfast=ma"),
])
def test_bad_spaces_are_one_line_errors(names, ranges, fragment):
    with pytest.raises(ConfigError) as err:
        build_space(RunConfig(), names, ranges)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_score_penalizes_runs_that_do_not_grok():
    assert grok_score("reached", 480, 600, 2.0) == 480
    assert grok_score("not_reached", None, 600, 2.0) == 1200
    assert grok_score("grokked", 480, 600, 2.0) == 480  # the status as named before
    assert grok_score("diverged", None, 600, 2.0) == 1200
    assert set(PARAMS) >= {"lr", "weight_decay", "frac_train", "beta1", "beta2", "warmup_epochs",
                           "grokfast", "ortho_grad", "loss", "d_model"}


def test_a_search_trial_config_is_the_base_run_with_the_searched_fields():
    """The base run's settings travel under their own key: RunConfig's digit ``base`` is kept."""
    from sweeps.trial import BASE_RUN, config_from_tune

    base = config_for("gcd", base=30, n_examples=500)
    cfg = config_from_tune({BASE_RUN: base.to_dict(), "lr": 0.01, "d_model": 64})
    assert cfg == base.replace(lr=0.01, d_model=64) and cfg.base == 30
    validate(cfg)


def test_tiny_search_end_to_end(tmp_path, capsys):
    import optuna
    from mlflow.tracking import MlflowClient

    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    study_db = f"sqlite:///{tmp_path}/optuna.db"
    epochs = 400
    code = main([
        "--p", "23", "--frac", "0.7", "--lr", "3e-3", "--weight-decay", "3", "--d-model", "64",
        "--d-head", "16", "--d-mlp", "256", "--epochs", str(epochs), "--eval-every", "10",
        "--search", "lr", "weight_decay", "grokfast", "ortho_grad",
        "--range", "lr=2e-3:1e-2", "weight_decay=1:5",
        "--num-samples", "4", "--max-concurrent", "2", "--seed", "3",
        "--experiment", "search_test", "--name", "tiny", "--tracking-uri", tracking,
        "--optuna-storage", study_db, "--storage", str(tmp_path / "ray"), "--progress-every", "600",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "best configuration beside the baseline" in out

    # What MLflow holds: the search's parent run, holding the summary, and four trial runs under
    # it, each with its score. (Before parent runs, the summary was a run of its own.)
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("search_test")
    [summary] = client.search_runs([exp.experiment_id], "tags.run_kind = 'sweep'")
    runs = client.search_runs([exp.experiment_id], "tags.sweep = 'tiny'")
    runs = [r for r in runs if r.info.run_id != summary.info.run_id]
    assert len(runs) == 4 and len(client.search_runs([exp.experiment_id])) == 5
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {summary.info.run_id}
    assert summary.info.run_name == "tiny" and "| reached |" in summary.data.tags[
        "mlflow.note.content"]
    scores = {}
    for run in runs:
        tags, params = run.data.tags, run.data.params
        reached = tags["status"] == "reached"
        expected = float(tags["threshold_epoch"]) if reached else 2.0 * float(params["epochs"])
        assert params["p"] == "23" and params["d_model"] == "64"  # the base run's
        assert "base" not in params and "list_len" not in params  # fields expmod does not read
        assert run.data.metrics["grok_score"] == expected
        assert math.isfinite(run.data.metrics["test_acc"])
        scores[run.info.run_id] = expected
    assert any(s < 2 * epochs for s in scores.values()), "at least the baseline groks"
    assert summary.data.tags["summary_of"] == "tiny"
    best_id = summary.data.tags["best_run_id"]
    # the reported best is the best of the trials
    assert summary.data.metrics["best_score"] == min(scores.values()) == scores[best_id]
    best_run = client.get_run(best_id)
    for name in ("lr", "weight_decay", "grokfast", "ortho_grad"):
        assert summary.data.tags[f"best_{name}"] == best_run.data.params[name]
    assert f"{float(summary.data.tags['best_lr']):.4g}" in out
    # the baseline is the base configuration, run as one of the trials
    baseline = client.get_run(summary.data.tags["baseline_run_id"])
    assert baseline.data.tags["baseline"] == "true"
    assert float(baseline.data.params["lr"]) == 3e-3
    assert float(baseline.data.params["weight_decay"]) == 3.0
    assert baseline.data.params["grokfast"] == "none" and baseline.data.params["ortho_grad"] == "false"
    assert summary.data.metrics["baseline_score"] == scores[baseline.info.run_id]

    # The Optuna study in SQLite agrees, and the importances are stored.
    study = optuna.load_study(study_name="tiny", storage=study_db)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4
    assert study.best_value == min(scores.values())
    assert sorted(t.value for t in done) == sorted(scores.values())
    path = client.download_artifacts(summary.info.run_id, "search_summary.json", str(tmp_path))
    stored = json.loads(open(path).read())
    assert stored["best"]["score"] == min(scores.values())
    assert len(stored["trials"]) == 4
    importances = {k[len("importance_"):]: v for k, v in summary.data.metrics.items()
                   if k.startswith("importance_")}
    assert importances == pytest.approx(stored["importances"])
    if importances:
        assert set(importances) <= {"lr", "weight_decay", "grokfast", "ortho_grad"}
        assert sum(importances.values()) == pytest.approx(1.0)
        assert "what drives the threshold epoch" in out
    else:
        assert stored["importance_note"]
