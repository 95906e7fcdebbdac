"""The primality, gcd and sorting sweeps end to end: tiny grids, a real Ray cluster, real MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_sweeps import by_index, cluster, mlflow_runs, store_args  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, args: list[str], tmp_path: Path, cluster) -> subprocess.CompletedProcess:  # noqa: F811
    done = subprocess.run([sys.executable, str(ROOT / "sweeps" / name), *args, "--address",
                           cluster.address, "--progress-every", "5", *store_args(tmp_path)],
                          cwd=tmp_path, env=cluster.env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_primality_sweep_float32_vs_float64(cluster, tmp_path):  # noqa: F811
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


def test_gcd_sweep_logs_gcd_metrics(cluster, tmp_path):  # noqa: F811
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


def test_sorting_sweep_logs_copying_scores(cluster, tmp_path):  # noqa: F811
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
