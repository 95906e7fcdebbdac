"""A team tracking server: `mlflow server` on PostgreSQL with a served local artifact root.

PostgreSQL (Debian's `postgresql`) is started by the test on 127.0.0.1 in a data folder of its
own; the MLflow server runs on it; a sweep on a local Ray logs to the server end to end, and the
analysis reads it back through the server. Everything is stopped and removed afterwards.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from services import (checkout_env, mlflow_process, mlflow_server_args, postgres,
                      require_postgres)

from analysis import grok_table

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sweeps" / "expmod_grid.py"


@pytest.fixture
def server(tmp_path):
    require_postgres()
    artifacts = tmp_path / "artifacts"
    with postgres() as backend:
        with mlflow_process(mlflow_server_args(backend, artifacts), cwd=tmp_path) as url:
            yield url, backend, artifacts


def test_a_sweep_against_a_tracking_server_on_postgresql(server, tmp_path, capsys):
    import psycopg2
    from mlflow.tracking import MlflowClient

    url, backend, artifacts = server
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--pairs", "3,3", "1,1", "--primes", "31", "--frac", "0.5",
         "--lr", "3e-3", "--weight-decay", "3", "--epochs", "200", "--eval-every", "20",
         "--max-concurrent", "2", "--progress-every", "5", "--tracking-uri", url,
         "--experiment", "team", "--name", "team-sweep", "--storage", str(tmp_path / "ray")],
        cwd=tmp_path, env=checkout_env(), capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("team")
    assert f"the MLflow UI: open {url}/#/experiments/{experiment.experiment_id}/runs?" \
        in done.stdout
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    trials = [r for r in runs if r is not parent]
    assert len(runs) == 3 and parent.info.run_name == "team-sweep"
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert parent.data.metrics["n_trials"] == 2 and parent.info.status == "FINISHED"
    outcomes = [r.data.tags["outcome"] for r in trials]
    assert all(parent.data.metrics[f"n_{o}"] == outcomes.count(o) for o in set(outcomes))

    # The store is PostgreSQL: the runs and their tags are rows there.
    conn = psycopg2.connect(backend.replace("postgresql+psycopg2://", "postgresql://"))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT run_uuid FROM runs WHERE experiment_id = %s",
                    (int(experiment.experiment_id),))
        assert {row[0] for row in cur.fetchall()} == {r.info.run_id for r in runs}
        cur.execute("SELECT count(*) FROM tags WHERE key = 'mlflow.parentRunId' AND value = %s",
                    (parent.info.run_id,))
        assert cur.fetchone()[0] == 2
    conn.close()

    # Artifacts went through the server into its artifact folder.
    for run in trials:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert len(list(artifacts.rglob("model.pt"))) == 2
    assert len(list(artifacts.rglob("grok_table.md"))) == 1  # the parent's, written by the sweep

    # The analysis reads it back through the server, and stores its table on the sweep's run.
    out = tmp_path / "table.csv"
    assert grok_table.main(["--experiment", "team", "--tracking-uri", url, "--format", "csv",
                            "--out", str(out), "--plot-km", str(tmp_path / "km.png")]) == 0
    capsys.readouterr()
    table = pd.read_csv(out, float_precision="round_trip")
    statuses = {(int(r.data.params["a"]), r.data.tags["status"]) for r in trials}
    # the bare postgresql:// of the README's server works too (the driver that is installed)
    assert grok_table.main(["--experiment", "team", "--no-log", "--tracking-uri",
                            backend.replace("postgresql+psycopg2://", "postgresql://")]) == 0
    assert {(row.a, "reached" if row.reached else "not_reached")
            for row in table.itertuples()} == statuses
    assert set(table.p) == {31} and set(table.runs) == {1}
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"grok_table.md", "grok_table.csv", "trials.csv", "grok_km.png", "grid.json"} <= files
    note = client.get_run(parent.info.run_id).data.tags["mlflow.note.content"]
    assert "python -m analysis.grok_table" in note and "| 3 | 3 |" in note
    experiment = client.get_experiment(experiment.experiment_id)
    assert "| 1 | 1 |" in experiment.tags["mlflow.note.content"]
    # nothing analytical among the trials
    assert len(client.search_runs([experiment.experiment_id])) == 3


def test_the_sweep_survives_a_tracking_server_stopped_for_30_s(tmp_path):
    """The server stops while trials run, stays down 35 s and comes back on the same address:
    the sweep goes on, and afterwards every evaluation is logged exactly once, no run is left
    RUNNING and every trial ended."""
    import threading
    import time

    from mlflow.tracking import MlflowClient

    from grokcore.records import read_history_csv
    from services import free_port, stop

    require_postgres()
    port, artifacts = free_port(), tmp_path / "artifacts"
    with postgres() as backend:
        server = start_server(backend, artifacts, port, tmp_path / "server1.log")
        sweep = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--pairs", "1,1", "3,4", "--primes", "31", "--frac",
             "0.5", "--lr", "3e-3", "--weight-decay", "3", "--epochs", "900", "--eval-every",
             "20", "--max-concurrent", "2", "--progress-every", "0", "--stop-after-grok", "1000",
             "--tracking-uri", f"http://127.0.0.1:{port}", "--experiment", "outage",
             "--name", "outage-sweep", "--storage", str(tmp_path / "ray")],
            cwd=tmp_path, env=checkout_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        lines: list[str] = []  # the sweep's output, read by a thread (the driver may block)
        reader = threading.Thread(target=lambda: lines.extend(sweep.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 600
        while sum(" running " in x for x in lines) < 10:  # both trials well into training
            assert sweep.poll() is None and time.monotonic() < deadline, "".join(lines)[-4000:]
            time.sleep(0.5)
        stop(server)
        time.sleep(35)
        server = start_server(backend, artifacts, port, tmp_path / "server2.log")
        assert sweep.wait(timeout=900) == 0, "".join(lines)[-4000:]
        reader.join(timeout=30)
        assert sum(" running " in x for x in lines) > 10  # it went on training

        client = MlflowClient(f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name("outage")
        runs = client.search_runs([experiment.experiment_id])
        trials = [r for r in runs if r.data.tags.get("run_kind") != "sweep"]
        assert len(trials) == 2 and {r.info.status for r in runs} == {"FINISHED"}
        for run in trials:
            assert run.data.tags["status"] in ("reached", "not_reached")
            history = read_history_csv(client.download_artifacts(run.info.run_id, "history.csv",
                                                                 str(tmp_path)))
            for key in ("train_loss", "test_acc"):
                steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
                assert sorted(steps) == [int(r["epoch"]) for r in history], (key, steps)
        stop(server)


def start_server(backend: str, artifacts: Path, port: int, log: Path):
    """``mlflow server`` on 127.0.0.1:port in a session of its own (services.stop ends it)."""
    from services import wait_http

    with open(log, "w") as out:
        proc = subprocess.Popen([*mlflow_server_args(backend, artifacts), "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "1"], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/health", proc, log)
    return proc

