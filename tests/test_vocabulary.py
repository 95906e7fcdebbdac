"""One vocabulary: "grokked" is the outcome only; the threshold's hold is "reached" from its
"threshold_epoch" (grokcore.records). Runs, summaries and trials CSVs written with the names from
before still read correctly, under today's names."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pandas as pd

from analysis.table import build_table
from analysis.trials import read_trials, trials_from_runs
from grokcore.records import END_VALUES, STATUSES, current_names
from grokcore.signals import SignalTracker

ROOT = Path(__file__).resolve().parents[1]
# What the grok table's columns were called before (the committed results use them).
OLD_TABLE_NAMES = {"grokked": "reached", "grok_km_median": "threshold_km_median",
                   "grok_km_ci_low": "threshold_km_ci_low",
                   "grok_km_ci_high": "threshold_km_ci_high",
                   "grok_epoch_min": "threshold_epoch_min",
                   "grok_epoch_max": "threshold_epoch_max",
                   "grok_delay_median": "threshold_delay_median"}


def test_a_lookup_run_reaches_the_threshold_and_is_not_called_grokked():
    tracker = SignalTracker()
    for epoch, train, test in [(20, 0.5, 0.1), (40, 1.0, 1.0), (60, 1.0, 1.0)]:
        tracker.observe_eval(epoch, train, test)
    summary = tracker.summary()
    assert (summary["status"], summary["reached"], summary["threshold_epoch"]) == \
        ("reached", True, 40)
    assert tracker.outcome(20, 5, unseen_acc=0.3, unseen_measured=True) == "lookup"
    assert "grokked" not in summary and "grok_epoch" not in summary
    assert set(END_VALUES) - {"outcome"} <= set(summary)


def test_an_old_summary_reads_under_todays_names():
    old = {"status": "grokked", "outcome": "lookup", "grokked": True, "grok_epoch": 680,
           "memorization_epoch": 40, "grok_delay": 640, "n_spikes": 0}
    assert current_names(old) == {"status": "reached", "outcome": "lookup", "reached": True,
                                  "threshold_epoch": 680, "memorization_epoch": 40,
                                  "threshold_delay": 640, "n_spikes": 0}
    assert current_names({"status": "not_grokked"})["status"] == "not_reached"
    # a key under both names keeps today's value
    assert current_names({"grok_epoch": 1, "threshold_epoch": 2}) == {"threshold_epoch": 2}


def test_the_committed_trials_csv_gives_the_committed_table_under_todays_names():
    """results/table1/trials.csv and table1.csv were written before the renames, by the code
    of then: read with today's code, the trials give the same table, column for column."""
    trials = read_trials(ROOT / "results/table1/trials.csv")
    assert "grok_epoch" not in trials and trials.threshold_epoch.notna().sum() > 0
    assert set(trials.status) <= set(STATUSES) and "grokked" not in set(trials.status)
    table = pd.read_csv(StringIO(build_table(trials).to_csv(index=False)))
    committed = pd.read_csv(ROOT / "results/table1/table1.csv").rename(columns=OLD_TABLE_NAMES)
    assert list(committed.columns) == list(table.columns)
    pd.testing.assert_frame_equal(committed, table, check_dtype=False)


def test_runs_logged_under_either_vocabulary_read_alike(tmp_path):
    """Two runs in one store, one tagged as sweeps tagged them before (status grokked,
    grok_epoch, grokked), one as they do now: one trial line each, today's names."""
    from mlflow.tracking import MlflowClient

    from analysis.runs import load_runs
    from sweeps.tracking import outcome_of_run

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("both")
    ends = [({"status": "grokked", "outcome": "grokked", "grokked": "true", "grok_epoch": "600",
              "grok_delay": "540"}, {"grokked": 1.0, "grok_epoch": 600.0}),
            ({"status": "not_reached", "outcome": "not_generalized", "reached": "false",
              "threshold_epoch": "none", "threshold_delay": "none"}, {"reached": 0.0})]
    ids = []
    for seed, (tags, metrics) in enumerate(ends):
        run_id = client.create_run(exp).info.run_id
        for key, value in {"task": "expmod", "a": "1", "b": "1", "p": "31", "seed": str(seed),
                           "frac_train": "0.5", "dtype": "float32", "split": "pairs"}.items():
            client.log_param(run_id, key, value)
        for key, value in {**tags, "memorization_epoch": "60", "n_spikes": "0"}.items():
            client.set_tag(run_id, key, value)
        for key, value in {**metrics, "epochs_run": 700.0}.items():
            client.log_metric(run_id, key, value, step=0)
        client.set_terminated(run_id)
        ids.append(run_id)
    trials = trials_from_runs(load_runs(client, "both")).sort_values("seed")
    assert list(trials.status) == ["reached", "not_reached"]
    assert list(trials.threshold_epoch.fillna(-1)) == [600, -1]
    assert list(trials.threshold_delay.fillna(-1)) == [540, -1]
    row = build_table(trials).iloc[0]
    assert (row.runs, row.reached, row.censored, row.threshold_km_median) == (2, 1, 1, 600)
    # the driver reads an ended run back the same way (a resumed sweep, its closing table)
    old = outcome_of_run(client.get_run(ids[0]), "k", None)
    assert (old.status, old.outcome, old.threshold_epoch) == ("reached", "grokked", 600)
