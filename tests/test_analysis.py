"""The analysis layer against a real MLflow SQLite store holding real (tiny) training runs.

The store is written here in the sweeps' MLflow layout (README, "MLflow layout") with the MLflow
client, from trainings run with grokcore's Trainer; nothing of MLflow is mocked.
"""

import json
import math
import statistics
from pathlib import Path

import pytest
import scipy.stats
import torch

from analysis import grok_table, inspect as inspect_cmd, residues
from analysis.figures_progress import plot_grok_heatmap, plot_loss_curves, plot_residue_distribution
from analysis.runs import client_for, load_model, load_runs
from grokcore.config import RunConfig
from grokcore.tasks.expmod_figures import (
    plot_attention_patterns, plot_embedding_fourier, plot_neuron_fourier, plot_progress_measures,
    plot_unembed_fourier,
)
from grokcore.progress import progress_measures
from grokcore.signals import measure_phases
from grokcore.records import END_VALUES, OUTCOME_VALUES, tag_text, write_history_csv
from grokcore.records import RUN_KIND_TAG as KIND_TAG
from grokcore.tasks import build_dataset, config_for, validate
from grokcore.trainer import Trainer
from grokcore.values import number


EXPERIMENT = "tiny_sweep"
# A small model that groks p = 23 in under a thousand epochs (a few seconds here).
TINY = dict(p=23, frac_train=0.5, lr=3e-3, weight_decay=3.0, d_model=64, d_head=16, d_mlp=256,
            eval_every=10)
STAT_METRICS = ("label_entropy", "label_chi2_pvalue", "leakage", "image_size_a", "image_size_b",
                "bijective_a", "bijective_b", "n_train", "n_test")


def log_trial(client, exp_id, cfg: RunConfig, workdir: Path):
    """Train cfg and log it as the sweeps do (params and end tags as ``records.tag_text``); a run
    whose training raises is logged as failed."""
    run = client.create_run(exp_id, run_name=f"a{cfg.a}b{cfg.b}p{cfg.p}s{cfg.seed}")
    run_id = run.info.run_id
    from mlflow.entities import Metric, Param

    client.log_batch(run_id, params=[Param(k, tag_text(v)) for k, v in cfg.to_dict().items()])
    try:
        trainer = Trainer(cfg)
        summary = trainer.run()
    except Exception as err:  # a real failure, e.g. a device that is not there
        client.set_tag(run_id, "status", "failed")
        client.set_tag(run_id, "error", type(err).__name__)
        client.set_terminated(run_id, "FAILED")
        return run_id, None, None
    for name in END_VALUES:
        client.set_tag(run_id, name, tag_text(summary[name]))
    end = {"reached": float(summary["reached"]), "epochs_run": summary["epochs_run"],
           "seconds": summary["seconds"]}
    for name in OUTCOME_VALUES:
        if summary[name] is not None:
            end[name] = float(summary[name])
    stats = trainer.dataset.stats
    end.update({name: float(stats[name]) for name in STAT_METRICS if name in stats})  # expmod's
    metrics = [Metric(k, v, 0, 0) for k, v in end.items()]
    for row in trainer.history:
        metrics += [Metric(k, float(v), 0, int(row["epoch"])) for k, v in row.items()
                    if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v)]
    for start in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[start:start + 900])
    folder = workdir / run_id
    folder.mkdir()
    write_history_csv(trainer.history, folder / "history.csv")
    torch.save(trainer.model.state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    for name in ("history.csv", "model.pt", "config.json"):
        client.log_artifact(run_id, str(folder / name))
    client.set_terminated(run_id)
    return run_id, trainer, summary


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    configs = [
        RunConfig(**TINY, epochs=1500, stop_after_grok=3, measure_every=50, seed=0),
        RunConfig(**TINY, epochs=1500, stop_after_grok=3, seed=3),
        RunConfig(**{**TINY, "lr": 10.0}, epochs=100, seed=2),  # diverges
        RunConfig(**TINY, a=2, b=2, epochs=150, seed=0),  # x^2 is no bijection; too short to grok
        RunConfig(**TINY, a=2, b=2, epochs=150, seed=1),
        RunConfig(**TINY, a=2, b=2, epochs=150, seed=3, device="cuda:7"),  # fails: no such device
        RunConfig(p=113, a=7, b=7, eval_every=10, epochs=20, seed=0),  # a row the paper has
    ]
    runs = {}
    for cfg in configs:
        run_id, trainer, summary = log_trial(client, exp_id, cfg, root)
        runs[run_id] = (cfg, trainer, summary)
    return {"uri": uri, "client": client, "runs": runs, "root": root}


def _grokked_run(store):
    return next((rid, t) for rid, (c, t, s) in store["runs"].items()
                if s is not None and s["status"] == "reached" and c.measure_every)


def test_the_store_holds_what_the_table_needs(store):
    statuses = sorted(s["status"] if s else "failed" for _, _, s in store["runs"].values())
    # the fixture's runs cover every status the table counts
    assert statuses.count("reached") == 2 and "diverged" in statuses and "failed" in statuses
    assert statuses.count("not_reached") == 3


def test_grok_table_rows_match_the_runs_tags(store, tmp_path, capsys):
    client, uri = store["client"], store["uri"]
    out = tmp_path / "table.csv"
    assert grok_table.main(["--experiment", EXPERIMENT, "--tracking-uri", uri, "--format", "csv",
                            "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text()
    import pandas as pd

    table = pd.read_csv(out, float_precision="round_trip")
    assert len(table) == 3  # (1,1,23), (2,2,23), (7,7,113)
    # expected values straight from the runs' own tags and params
    exp = client.get_experiment_by_name(EXPERIMENT)
    trial_runs = [r for r in client.search_runs([exp.experiment_id]) if KIND_TAG not in r.data.tags]
    for row in table.itertuples():
        mine = [r for r in trial_runs if (int(r.data.params["a"]), int(r.data.params["b"]),
                                          int(r.data.params["p"])) == (row.a, row.b, row.p)]
        tags = [r.data.tags for r in mine]
        reached = [t for t in tags if t["status"] == "reached"]
        assert row.runs == len(mine)
        assert row.reached == len(reached)
        assert row.diverged == sum(t["status"] == "diverged" for t in tags)
        assert row.failed == sum(t["status"] == "failed" for t in tags)
        epochs = [int(t["threshold_epoch"]) for t in reached]
        censored = [r.data.metrics["epochs_run"] for r in mine if r.data.tags["status"] == "not_reached"]
        assert row.censored == len(censored)
        if epochs:
            # the Kaplan-Meier median: grok epochs as events, the runs that did not grok censored
            sf = scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=epochs, right=censored)).sf
            km_median = min(t for t, s in zip(sf.quantiles, sf.probabilities) if s <= 0.5 + 1e-12) \
                if (sf.probabilities <= 0.5 + 1e-12).any() else math.nan
            assert row.threshold_km_median == pytest.approx(km_median, nan_ok=True)
            assert (row.threshold_epoch_min, row.threshold_epoch_max) == (min(epochs), max(epochs))
            delays = [int(t["threshold_delay"]) for t in reached]
            assert row.threshold_delay_median == statistics.median(delays)
        else:
            assert math.isnan(row.threshold_km_median)
        mems = [int(t["memorization_epoch"]) for t in tags if number(t.get("memorization_epoch"))]
        if mems:
            assert row.memorization_epoch_median == statistics.median(mems)
        assert row.spikes == sum(int(t["n_spikes"]) for t in tags if "n_spikes" in t)
        entropy = [r.data.metrics["label_entropy"] for r in mine if "label_entropy" in r.data.metrics]
        assert row.label_entropy == pytest.approx(statistics.median(entropy))
    by_key = {(r.a, r.b, r.p): r for r in table.itertuples()}
    one = by_key[(1, 1, 23)]
    assert (one.runs, one.reached, one.diverged, one.bijective_a, one.leakage) == (3, 2, 1, True, 0.0)
    two = by_key[(2, 2, 23)]
    assert (two.runs, two.reached, two.failed, two.bijective_a) == (3, 0, 1, False)
    assert two.leakage > 0.5  # x^2 and y^2 collapse the inputs: most test pairs have a train twin
    seven = by_key[(7, 7, 113)]
    assert seven.paper_grok_epoch == "no grok" and not seven.bijective_a
    assert isinstance(one.paper_grok_epoch, float) and math.isnan(one.paper_grok_epoch)  # not in the paper

    # the table was stored as an analysis run, which readers skip
    stored = [r for r in client.search_runs([exp.experiment_id])
              if r.data.tags.get(KIND_TAG) == "analysis"]
    assert len(stored) >= 1 and stored[0].info.run_name == "grok_table"
    files = {a.path for a in client.list_artifacts(stored[0].info.run_id)}
    assert {"grok_table.md", "grok_table.csv", "grok_table.tex"} <= files
    assert len(load_runs(client_for(uri), EXPERIMENT)) == len(store["runs"])


def test_grok_table_formats_and_errors(store, capsys, tmp_path):
    uri = store["uri"]
    assert grok_table.main(["--experiment", EXPERIMENT, "--tracking-uri", uri, "--no-log"]) == 0
    text = capsys.readouterr().out  # the default: fits a 120-column terminal
    assert max(len(line) for line in text.splitlines()) <= 120 and "KM median" in text
    assert grok_table.main(["--experiment", EXPERIMENT, "--tracking-uri", uri, "--no-log",
                            "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| task | a | b | p |") and "| expmod | 7 | 7 | 113 |" in md
    assert "no grok" in md and "2/3" in md
    assert grok_table.main(["--experiment", EXPERIMENT, "--tracking-uri", uri, "--no-log",
                            "--format", "latex"]) == 0
    assert r"\begin{tabular}" in capsys.readouterr().out
    assert grok_table.main(["--experiment", "nope", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no MLflow experiment named 'nope'") and err.count("\n") == 1
    missing = f"sqlite:///{tmp_path / 'absent.db'}"
    assert grok_table.main(["--experiment", EXPERIMENT, "--tracking-uri", missing]) == 2
    assert "no MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()


def test_inspect_a_run(store, tmp_path, capsys):
    run_id, trainer = _grokked_run(store)
    out = tmp_path / "inspect"
    assert inspect_cmd.main([run_id, "--tracking-uri", store["uri"], "--out", str(out)]) == 0
    text = capsys.readouterr().out
    expected = progress_measures(trainer.model, trainer.cfg, trainer.dataset)
    assert f"key frequencies     {' '.join(map(str, expected['key_freqs']))}" in text
    assert f"excluded loss       {expected['excluded_loss']:.4g}" in text
    for name in ("attention.png", "embedding_fourier.png", "neuron_fourier.png",
                 "unembed_fourier.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert inspect_cmd.main(["0123456789abcdef", "--tracking-uri", store["uri"]]) == 2
    assert "no MLflow run" in capsys.readouterr().err


def test_residues_table_reuses_the_task_statistics(capsys):
    assert residues.main(["--p", "113", "--max-exp", "9"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l and l.split()[0].isdigit()]
    assert len(lines) == 81
    rows = {(int(l.split()[0]), int(l.split()[1])): l.split() for l in lines}
    for a, b in [(7, 7), (1, 1), (2, 4)]:
        stats = build_dataset(RunConfig(p=113, a=a, b=b)).stats
        row = rows[(a, b)]
        assert int(row[2]) == stats["n_distinct_labels"]
        assert float(row[3]) == pytest.approx(stats["label_entropy"], abs=1e-4)
        assert float(row[5]) == pytest.approx(stats["leakage"], abs=1e-3)
    assert [a for a in range(1, 10) if rows[(a, 1)][6] == "yes"] == [1, 3, 5, 9]
    assert rows[(1, 1)][3] == "1.0000" and float(rows[(7, 7)][3]) < 0.99
    assert residues.main(["--p", "24"]) == 2
    assert "not prime" in capsys.readouterr().err


def test_residues_against_a_sweep(store, capsys):
    assert residues.main(["--p", "23", "--max-exp", "2", "--experiment", EXPERIMENT,
                          "--tracking-uri", store["uri"]]) == 0
    out = capsys.readouterr().out
    assert "reach rate" in out and "spearman" in out.lower()
    # (1,1): 2 of 3 runs reached the threshold; (2,2): 0 of 3
    assert "0.667" in out and "0.000" in out


def test_every_figure_writes_a_png(store, tmp_path):
    run_id, trainer = _grokked_run(store)
    cfg, model, ds, history = trainer.cfg, trainer.model, trainer.dataset, trainer.history
    phases = measure_phases(history)
    table = grok_table.build_table(grok_table.trials_from_runs(load_runs(client_for(store["uri"]), EXPERIMENT)))
    paths = {
        "loss": plot_loss_curves(history, tmp_path / "loss.png", phases),
        "progress": plot_progress_measures(history, tmp_path / "progress.png", phases),
        "embed": plot_embedding_fourier(model, cfg, tmp_path / "embed.png"),
        "neurons": plot_neuron_fourier(model, cfg, ds, tmp_path / "neurons.png"),
        "unembed": plot_unembed_fourier(model, cfg, tmp_path / "unembed.png"),
        "attention": plot_attention_patterns(model, cfg, ds, tmp_path / "attention.png"),
        "residues": plot_residue_distribution(113, [(1, 1), (7, 7)], tmp_path / "residues.png"),
        "heatmap": plot_grok_heatmap(table, tmp_path / "heatmap.png", p=23),
    }
    for name, path in paths.items():
        data = Path(path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_interrupted_runs_count_as_unfinished_not_failed(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = client.create_experiment("interrupted")
    # two replicates (seeds 0 and 1: runs of the same seeds would be one replicate, counted once)
    for seed, status in enumerate(("KILLED", "FAILED")):  # neither ever got its end tags
        params = {k: str(v) for k, v in RunConfig(p=31, a=3, b=3, seed=seed).to_dict().items()}
        run = client.create_run(exp_id)
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id, status)
    table = grok_table.build_table(grok_table.trials_from_runs(load_runs(client, "interrupted")))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.runs, row.unfinished, row.failed, row.reached) == (2, 1, 1, 0)


def test_load_model_builds_the_model_of_the_runs_task(tmp_path):
    """A gcd run's weights are an encoder-decoder's (grokcore/seq2seq.py), not a Transformer's."""
    from mlflow.tracking import MlflowClient

    from grokcore.seq2seq import Seq2SeqTransformer

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp_id = client.create_experiment("gcd", artifact_location=(tmp_path / "artifacts").as_uri())
    cfg = validate(config_for("gcd", base=10, n_max=1000, n_examples=200, gcd_test_per_gcd=1,
                             d_model=32, n_heads=2, d_mlp=64, batch_size=64, epochs=2,
                             eval_every=1))
    run_id, trainer, summary = log_trial(client, exp_id, cfg, tmp_path)
    assert summary is not None and isinstance(trainer.model, Seq2SeqTransformer)

    loaded_cfg, dataset, model = load_model(client, run_id)
    assert loaded_cfg == cfg and isinstance(model, Seq2SeqTransformer) and not model.training
    trained = trainer.model.state_dict()
    state = model.state_dict()
    assert state.keys() == trained.keys()
    assert all(torch.equal(state[k], trained[k]) for k in trained)
    trainer.model.eval()
    src, tgt_in = dataset.inputs[:16], dataset.labels[:16, :-1]
    with torch.no_grad():
        assert torch.equal(model(src, tgt_in), trainer.model(src, tgt_in))


def test_the_trials_csv_regenerates_the_table(store, tmp_path, capsys):
    uri = store["uri"]
    trials, first, again = tmp_path / "trials.csv", tmp_path / "a.csv", tmp_path / "b.csv"
    assert grok_table.main(["--experiment", EXPERIMENT, "--tracking-uri", uri, "--no-log",
                            "--format", "csv", "--out", str(first),
                            "--write-trials", str(trials)]) == 0
    assert grok_table.main(["--trials", str(trials), "--format", "csv", "--out", str(again)]) == 0
    capsys.readouterr()
    assert first.read_text() == again.read_text()
    import pandas as pd

    lines = pd.read_csv(trials, float_precision="round_trip")
    assert len(lines) == len(store["runs"])
    assert {"a", "b", "p", "split", "seed", "data_seed", "status", "threshold_epoch",
            "memorization_epoch", "epochs_run", "final_test_acc", "final_test_acc_unseen",
            "leakage", "seconds"} <= set(lines.columns)


def _constructed_trials(path: Path) -> Path:
    """Trials with known outcomes: (1,1) groks at 1000-1400, (3,3) at 3000/5000 with one run
    censored at 4000, (7,7) never within 4000 epochs, (2,2) at p = 31 reaches the threshold by
    lookup only, and one diverged (1,1) run that the estimates leave out. Written with the names
    from before the vocabulary of grokcore.records (status grokked / not_grokked, grok_epoch),
    as committed trials CSVs are: the reader maps them."""
    import pandas as pd

    rows = []
    for a, p, status, outcome, grok, run in [
            (1, 113, "grokked", "grokked", 1000, 1100), (1, 113, "grokked", "grokked", 1200, 1300),
            (1, 113, "grokked", "grokked", 1400, 1500), (1, 113, "diverged", "diverged", None, 90),
            (3, 113, "grokked", "grokked", 3000, 3100), (3, 113, "grokked", "grokked", 5000, 5100),
            (3, 113, "not_grokked", "not_generalized", None, 4000),
            (7, 113, "not_grokked", "not_generalized", None, 4000),
            (7, 113, "not_grokked", "not_generalized", None, 4000),
            (7, 113, "not_grokked", "not_generalized", None, 4000),
            (2, 31, "grokked", "lookup", 40, 100), (2, 31, "grokked", "lookup", 60, 120)]:
        rows.append({"task": "expmod", "a": a, "b": a, "p": p, "split": "pairs",
                     "dtype": "float32", "frac_train": 0.3, "seed": len(rows),
                     "data_seed": len(rows), "status": status, "outcome": outcome,
                     "grok_epoch": grok, "memorization_epoch": 100, "epochs_run": run,
                     "n_spikes": 0, "final_test_acc": 1.0 if grok else 0.1,
                     "final_test_acc_unseen": 0.2 if outcome == "lookup" else None,
                     "leakage": 0.98 if a == 2 else 0.0})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_censored_statistics_reference_and_pairwise(tmp_path, capsys):
    import pandas as pd

    trials = _constructed_trials(tmp_path / "trials.csv")
    out = tmp_path / "table.csv"
    assert grok_table.main(["--trials", str(trials), "--format", "csv", "--out", str(out),
                            "--plot-km", str(tmp_path / "km.png")]) == 0
    capsys.readouterr()
    table = pd.read_csv(out, float_precision="round_trip")
    assert {"threshold_km_median", "threshold_km_ci_low", "threshold_km_ci_high", "logrank_p",
            "logrank_p_holm"} <= set(table.columns)
    rows = {(r.a, r.p): r for r in table.itertuples()}
    one, three, seven, two = rows[(1, 113)], rows[(3, 113)], rows[(7, 113)], rows[(2, 31)]
    assert (one.runs, one.reached, one.censored, one.diverged) == (4, 3, 0, 1)
    assert one.threshold_km_median == 1200 and one.reference  # the first row is the reference
    # (3,3): S drops to 2/3 at 3000, the 4000 run is censored, S = 0 at 5000: median 5000
    assert (three.reached, three.censored, three.threshold_km_median) == (2, 1, 5000)
    assert math.isnan(seven.threshold_km_median) and seven.shows == "none"
    assert two.shows == "lookup" and two.unseen_acc == pytest.approx(0.2)
    # log-rank against (1,1) as scipy computes it directly; Holm over the three tests
    ps = {}
    for key, grok, cens in [((3, 113), [3000, 5000], [4000]), ((7, 113), [], [4000] * 3),
                            ((2, 31), [40, 60], [])]:
        x = scipy.stats.CensoredData(uncensored=grok, right=cens)
        y = scipy.stats.CensoredData(uncensored=[1000, 1200, 1400])
        ps[key] = scipy.stats.logrank(x, y).pvalue
        assert rows[key].logrank_p == pytest.approx(ps[key])
    ordered = sorted(ps.values())
    holm = [min(1.0, max((3 - j) * ordered[j] for j in range(i + 1))) for i in range(3)]
    assert sorted(rows[k].logrank_p_holm for k in ps) == pytest.approx(holm)
    assert (tmp_path / "km.png").read_bytes()[:4] == b"\x89PNG"
    # another reference row
    assert grok_table.main(["--trials", str(trials), "--format", "csv", "--out", str(out),
                            "--reference", "7,7,113"]) == 0
    capsys.readouterr()
    table = pd.read_csv(out, float_precision="round_trip").set_index(["a", "p"])
    assert table.loc[(7, 113), "reference"] and math.isnan(table.loc[(7, 113), "logrank_p"])
    # pairwise
    assert grok_table.main(["--trials", str(trials), "--pairwise", "1,1,113", "3,3,113",
                            "7,7,113"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") == 4 and "1,1,113 | 7,7,113" in printed
    # errors: one line, exit 2
    assert grok_table.main(["--trials", str(trials), "--reference", "5,5,113"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no expmod row has a=5") and err.count("\n") == 1
    with pytest.raises(SystemExit) as stop:
        grok_table.main(["--trials", str(trials), "--format", "html"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: argument --format")
