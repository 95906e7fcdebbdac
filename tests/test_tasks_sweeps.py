"""The primality, gcd and sorting sweeps end to end: tiny grids, a real Ray cluster, real MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
from services import checkout_env
from test_sweeps import by_index, cluster, mlflow_runs, store_args  # noqa: F401  (the fixture)

from analysis import grok_table

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, args: list[str], tmp_path: Path, cluster) -> subprocess.CompletedProcess:  # noqa: F811
    done = subprocess.run([sys.executable, str(ROOT / "sweeps" / name), *args, "--address",
                           cluster.address, "--progress-every", "5", *store_args(tmp_path)],
                          cwd=tmp_path, env=cluster.env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def table_of(tmp_path: Path, capsys) -> tuple[pd.DataFrame, str]:
    """The grok table of the sweep in tmp_path: as a frame (from its CSV) and as markdown."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    csv = tmp_path / "table.csv"
    assert grok_table.main(["--experiment", "test", "--tracking-uri", uri, "--no-log",
                            "--format", "csv", "--out", str(csv)]) == 0
    capsys.readouterr()  # the CSV's echo
    assert grok_table.main(["--experiment", "test", "--tracking-uri", uri, "--no-log",
                            "--format", "md"]) == 0
    return pd.read_csv(csv, float_precision="round_trip"), capsys.readouterr().out


def test_primality_sweep_float32_vs_float64(cluster, tmp_path, capsys):  # noqa: F811
    run_script("primality.py", ["--n-max", "200", "--encoding", "token", "digits", "--base", "2",
                                "--epochs", "40", "--eval-every", "20"], tmp_path, cluster)
    client, runs = mlflow_runs(tmp_path)
    runs = by_index(runs)
    got = {(r.data.params["encoding"], r.data.params["base"], r.data.params["dtype"],
            r.data.params["loss_dtype"]) for r in runs.values()}
    assert got == {(e, b, d, d) for e, b in (("token", "10"), ("digits", "2"))
                   for d in ("float32", "float64")}
    for run in runs.values():
        assert run.info.status == "FINISHED"
        hist = client.get_metric_history(run.info.run_id, "test_bacc")
        assert [m.step for m in hist] == [0, 20, 40]
        assert run.data.metrics["prime_share_all"] == 46 / 200  # 46 primes below 200
        # The run is named by the primality settings, not by expmod's a, b, p.
        params = run.data.params
        assert run.info.run_name.startswith(
            f"primality n200 {params['encoding']} B{params['base']} "), run.info.run_name
    # The table has a row per (encoding, base, dtype) with the end balanced accuracy of its run.
    table, _ = table_of(tmp_path, capsys)
    assert len(table) == 4 and set(table.task) == {"primality"}
    for row in table.itertuples():
        (run,) = [r for r in runs.values() if (r.data.params["encoding"], r.data.params["base"],
                                               r.data.params["dtype"]) ==
                  (row.encoding, str(row.base), row.dtype)]
        assert row.final_test_bacc == run.data.metrics["test_bacc"] and row.runs == 1


def test_gcd_sweep_logs_gcd_metrics(cluster, tmp_path, capsys):  # noqa: F811
    run_script("gcd.py", ["--base", "2", "10", "--gcd-sampling", "loguniform", "--n-max", "2000",
                          "--n-examples", "400", "--gcd-test-per-gcd", "2", "--n-layers", "1",
                          "--d-model", "32", "--d-mlp", "64", "--epochs", "2"], tmp_path, cluster)
    client, runs = mlflow_runs(tmp_path)
    runs = by_index(runs)
    assert {r.data.params["base"] for r in runs.values()} == {"2", "10"}
    for run in runs.values():
        assert run.info.status == "FINISHED"
        m = run.data.metrics
        assert {"gcd_n_learned", "gcd_rule_agreement", "gcd_n_smooth_learned"} <= set(m)
        assert m["gcd_n_smooth"] == (7 if run.data.params["base"] == "2" else 15)
        steps = [x.step for x in client.get_metric_history(run.info.run_id, "gcd_rule_agreement")]
        assert steps == [0, 1, 2]
    table, markdown = table_of(tmp_path, capsys)
    assert sorted(table.base) == [2, 10] and set(table.gcd_sampling) == {"loguniform"}
    for row in table.itertuples():
        (run,) = [r for r in runs.values() if r.data.params["base"] == str(row.base)]
        assert row.final_gcd_rule_agreement == run.data.metrics["gcd_rule_agreement"]
        assert row.final_gcd_n_learned == run.data.metrics["gcd_n_learned"]
    assert markdown.startswith("| task | base | gcd_sampling | n_max | dtype | frac |")
    assert "final gcd_rule_agreement" in markdown


def test_sorting_sweep_logs_copying_scores(cluster, tmp_path, capsys):  # noqa: F811
    run_script("sorting.py", ["--list-len", "4", "--n-max", "10", "--n-examples", "300",
                              "--repeats", "off", "--pos-embed", "on", "off", "--n-heads", "1", "2",
                              "--epochs", "40", "--eval-every", "20"], tmp_path, cluster)
    client, runs = mlflow_runs(tmp_path)
    runs = by_index(runs)
    assert len(runs) == 4
    for run in runs.values():
        m = run.data.metrics
        heads = int(run.data.params["n_heads"])
        assert {f"copying_score_h{h}" for h in range(heads)} <= set(m)
        assert f"copying_score_h{heads}" not in m
        assert {"test_seq_acc", "train_seq_acc", "copying_score"} <= set(m)
        assert -1.0 <= m["copying_score"] <= 1.0
        assert "attention.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # One table row per (pos_embed, n_heads): the four configurations are not merged.
    table, markdown = table_of(tmp_path, capsys)
    assert len(table) == 4 and set(table.list_len) == {4}
    assert {(bool(r.pos_embed), int(r.n_heads)) for r in table.itertuples()} == \
        {(p, h) for p in (True, False) for h in (1, 2)}
    for row in table.itertuples():
        (run,) = [r for r in runs.values()
                  if (r.data.params["pos_embed"], r.data.params["n_heads"]) ==
                  (str(row.pos_embed).lower(), str(row.n_heads))]
        assert row.final_copying_score == run.data.metrics["copying_score"]
        assert row.final_test_seq_acc == run.data.metrics["test_seq_acc"]
    assert markdown.startswith("| task | list_len | n_max | variable_len | repeats | pos_embed |")


def test_sweep_help_lists_its_own_task_options_only():
    """Each sweep's --help shows the settings of the tasks it sweeps, not the other tasks'."""
    own = {"expmod_grid.py": ["--primes", "--a", "--n-operands"],
           "primality.py": ["--n-max", "--encoding", "--base"],
           "gcd.py": ["--gcd-sampling", "--n-examples", "--base", "--n-max"],
           "sorting.py": ["--list-len", "--repeats", "--n-examples", "--n-max"]}
    for script, flags in own.items():
        done = subprocess.run([sys.executable, str(ROOT / "sweeps" / script), "--help"],
                              env=checkout_env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        options = set(done.stdout.replace("[", " ").replace("]", " ").replace(",", " ").split())
        others = {f for s, fs in own.items() if s != script for f in fs} - set(flags)
        assert set(flags) <= options and not others & options, (script, others & options)
        for shared in ("--lr", "--dtypes", "--seeds", "--grokfast", "--address"):
            assert shared in options


def test_task_specific_fields_name_real_tasks():
    """A field's ``tasks`` metadata (what --help filters on) names registered tasks only."""
    import dataclasses

    from grokcore.config import RunConfig
    from grokcore.tasks import TASKS

    named = {t for f in dataclasses.fields(RunConfig) for t in f.metadata.get("tasks", ())}
    assert named == set(TASKS)
