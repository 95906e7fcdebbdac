"""Sweeps end to end: a real Ray cluster (`ray start --head`), real SQLite MLflow stores.

The cluster is started once for the module with `ray start --head --block` as a child process and
stopped by signalling that process (not `ray stop`, which would stop every Ray on the machine).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from services import checkout_env, free_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "sweeps" / "expmod_grid.py"
RAY = Path(sys.executable).parent / "ray"
# p = 31 groks in seconds (README, "A run that groks fast"); few epochs keep every test short.
QUICK = ["--primes", "31", "--frac", "0.5", "--lr", "3e-3", "--weight-decay", "3",
         "--eval-every", "20", "--progress-every", "0.5"]
TABLE1_ROWS = [(1, 1, 113), (3, 3, 113), (3, 4, 113), (5, 4, 113), (5, 5, 113), (7, 7, 113),
               (7, 7, 101), (9, 9, 113), (4, 5, 113), (8, 9, 113)]


@dataclasses.dataclass
class Cluster:
    address: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray head without GPUs, with token authentication, on free ports, in its own
    temp dir."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths are long
    env = checkout_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    port = free_port()
    log = open(Path(temp_dir) / "head.log", "w")
    proc = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
         "--num-gpus", "0", "--include-dashboard", "false", "--temp-dir", temp_dir,
         "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "block forever" not in (Path(temp_dir) / "head.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ray start failed:\n" + (Path(temp_dir) / "head.log").read_text())
            time.sleep(0.5)
        yield Cluster(f"127.0.0.1:{port}", env)
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this cluster
            proc.wait()
        log.close()


def sweep(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300,
          ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd,
                          env=env or checkout_env(), capture_output=True, text=True,
                          timeout=timeout)


def store_args(tmp_path: Path) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--storage", str(tmp_path / "ray"), "--experiment", "test"]


def mlflow_runs(tmp_path: Path):
    """The client and the trial runs (not the sweeps' parent runs)."""
    client, runs = all_runs(tmp_path)
    return client, [r for r in runs if "run_kind" not in r.data.tags]


def all_runs(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    return client, client.search_runs([experiment.experiment_id])


def sweep_run(tmp_path: Path):
    """The one parent run of the store's sweeps; every trial run is its child."""
    client, runs = all_runs(tmp_path)
    [parent] = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    trials = [r for r in runs if r is not parent]
    assert {r.data.tags.get("mlflow.parentRunId") for r in trials} == {parent.info.run_id}
    return parent


def steps(client, run, key: str = "train_loss") -> list[int]:
    return [m.step for m in client.get_metric_history(run.info.run_id, key)]


def by_index(runs) -> dict[int, object]:
    return {int(r.data.tags["grid_index"]): r for r in runs}


# ---- validation, no Ray ------------------------------------------------------------------------

def test_dry_run_prints_table1(tmp_path):
    done = sweep(["--dry-run"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [tuple(int(v) for v in m.groups()[1:])
            for m in re.finditer(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", done.stdout, re.M)]
    assert rows == TABLE1_ROWS
    assert "10 trials" in done.stdout
    shared = done.stdout.split("shared settings:")[1]
    assert "lr=0.001" in shared and "list_len" not in shared and "n_max" not in shared  # expmod's
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()


def test_demo_grid_is_table1_pairs_at_31_and_options_still_win(tmp_path):
    done = sweep(["--demo", "--dry-run", "--epochs", "700"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [tuple(int(v) for v in m.groups()[1:])
            for m in re.finditer(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", done.stdout, re.M)]
    assert rows == list(dict.fromkeys((a, b, 31) for a, b, _ in TABLE1_ROWS))
    for setting in ("frac_train=0.5", "lr=0.003", "weight_decay=3.0", "epochs=700"):
        assert setting in done.stdout


def test_bad_grid_is_one_line_error_and_creates_nothing(tmp_path):
    done = sweep(["--pairs", "1,1", "3,3", "--primes", "31", "100"], cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "p=100" in lines[0]
    assert done.stdout == ""
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()
    assert list(tmp_path.iterdir()) == []


def test_argparse_errors_are_one_line_and_a_hint(tmp_path):
    done = sweep(["--pairs", "3"], cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("error: argument --pairs: '3' is not a pair A,B such as 3,4 "
                           "(see python sweeps/expmod_grid.py --help)\n")
    assert list(tmp_path.iterdir()) == []


def test_replicates_vary_weight_and_split_seeds_and_the_dry_run_lists_them(tmp_path):
    done = sweep(["--dry-run", "--pairs", "1,1", "3,4", "--replicates", "3"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [tuple(int(v) for v in m.groups()[1:])
            for m in re.finditer(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$",
                                 done.stdout, re.M)]
    assert rows == [(a, b, 113, 598 + i, 999 + i) for a, b in ((1, 1), (3, 4)) for i in range(3)]
    assert "6 trials" in done.stdout and "seed 999+i and data_seed 598+i" in done.stdout
    done = sweep(["--dry-run", "--pairs", "1,1", "--replicates", "2", "--seeds", "0", "1"],
                 cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "give --replicates or several --seeds" in done.stderr


def test_cuda_without_a_gpu_share_is_one_line_error(tmp_path):
    done = sweep(["--pairs", "1,1", "--device", "cuda", "--gpus-per-trial", "0"], cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    assert "device=cuda needs --gpus-per-trial > 0" in done.stderr
    assert list(tmp_path.iterdir()) == []
    done = sweep(["--pairs", "1,1", "--gpus-per-trial", "half"], cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "'half' is not auto or a number of GPUs >= 0" in done.stderr


def test_negative_progress_interval_is_one_line_error(tmp_path):
    done = sweep(["--pairs", "1,1", "--progress-every", "-1"], cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: --progress-every must be >= 0")
    assert done.stderr.count("\n") == 1 and list(tmp_path.iterdir()) == []


# ---- on the cluster ----------------------------------------------------------------------------

def test_cluster_sweep_logs_every_trial(cluster, tmp_path):
    import torch

    from grokcore.config import RunConfig, fields_only_other_tasks_read
    from grokcore.trainer import METRICS

    done = sweep([*QUICK, "--address", cluster.address, "--pairs", "1,1", "3,3", "--seeds", "0",
                  "1", "--epochs", "200", *store_args(tmp_path)], cwd=tmp_path, env=cluster.env)
    assert done.returncode == 0, done.stdout + done.stderr
    # the printed command is this environment's own mlflow, which exists
    command = re.search(r"^    (\S+) ui --backend-store-uri sqlite:///(\S+)$",
                        done.stdout, re.M)
    assert command and os.access(command.group(1), os.X_OK), done.stdout
    assert tmp_path / command.group(2) == tmp_path / "mlflow.db"  # relative to where it ran
    client, runs = mlflow_runs(tmp_path)
    assert len(runs) == 4
    # The sweep is a parent run holding its grid, command line, counts and grok table.
    parent = sweep_run(tmp_path)
    assert re.search(r"then open http://127.0.0.1:5000/#/experiments/\d+/runs\?", done.stdout)
    assert parent.data.tags["command"].endswith(" ".join(done.args[2:]))
    assert parent.data.metrics["n_trials"] == 4 and parent.info.status == "FINISHED"
    # one count per outcome, and they agree with the trials' own outcome tags
    outcomes = [r.data.tags["outcome"] for r in runs]
    for word in ("grokked", "no_delay", "lookup", "not_generalized", "diverged", "failed",
                 "unfinished"):
        assert parent.data.metrics[f"n_{word}"] == outcomes.count(word), word
    assert "n_not_grokked" not in parent.data.metrics
    assert (parent.data.params["p"], parent.data.params["lr"]) == ("31", "0.003")
    assert "a" not in parent.data.params and "seed" not in parent.data.params  # they vary
    assert {"grid.json", "grok_table.md", "trials.csv"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}
    # The sweep's trials CSV carries what each trial ran with.
    table_trials = pd.read_csv(client.download_artifacts(parent.info.run_id, "trials.csv",
                                                         str(tmp_path)))
    assert set(table_trials.compiled) == {"off"} and table_trials.code_commit.notna().all()
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**Grok table**: expmod (a, b; p 31") and "| 3 | 3 |" in note
    assert "The grok table of sweep" in note
    experiment = client.get_experiment_by_name("test")
    assert "| 1 | 1 |" in experiment.tags["mlflow.note.content"]
    assert {(r.data.params["a"], r.data.params["seed"]) for r in runs} == {
        ("1", "0"), ("1", "1"), ("3", "0"), ("3", "1")}
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for run in runs:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        grokfast_own = {"grokfast_alpha", "grokfast_ema_lambda", "grokfast_window",
                        "grokfast_ma_lambda"}  # Grokfast is off: its settings are not params
        assert set(params) == fields - fields_only_other_tasks_read(["expmod"]) - grokfast_own
        assert float(params["spike_floor"]) == torch.finfo(torch.float32).eps  # the one in force
        assert {"a", "b", "p", "lr"} <= set(params) and "list_len" not in params
        assert run.info.run_name == f"a{params['a']}b{params['a']} p31 frac0.5 fp32 s{params['seed']}"
        assert (params["p"], params["frac_train"], params["lr"]) == ("31", "0.5", "0.003")
        # Stopping: held 5 evaluations after grokking, else the whole budget.
        assert tags["status"] in ("reached", "not_reached")
        epochs_run = int(metrics["epochs_run"])
        if tags["status"] == "reached":
            assert tags["reached"] == "true" and metrics["reached"] == 1
            assert tags["outcome"] in ("grokked", "no_delay", "lookup")
            assert epochs_run == int(tags["threshold_epoch"]) + 4 * 20 \
                == metrics["threshold_epoch"] + 80
            # end values are one value per run, at step 0 (bars in the UI's charts)
            assert steps(client, run, "threshold_epoch") == [0]
        else:
            assert tags["reached"] == "false" and metrics["reached"] == 0
            assert epochs_run == 200 and tags["threshold_epoch"] == "none"
            assert "threshold_epoch" not in metrics and tags["outcome"] == "not_generalized"
        # "grokked" is an outcome only: no tag or metric of that name
        assert "grokked" not in tags and "grokked" not in metrics
        for name in ("memorization_epoch", "threshold_delay", "n_spikes"):
            assert name in tags
        # What the trial ran with (grokcore.provenance): eager, 1 thread, this torch, a commit.
        assert (tags["compiled"], tags["torch_threads"], tags["device"]) == ("off", "1", "cpu")
        assert tags["torch_version"] == torch.__version__
        assert re.fullmatch(r"[0-9a-f]{40}", tags["code_commit"])
        assert tags["code_dirty"] in ("true", "false")
        for name in METRICS:
            history = steps(client, run, name)
            assert history == list(range(0, epochs_run + 1, 20)), name
        for name in ("label_entropy", "label_chi2_pvalue", "leakage", "image_size_a",
                     "bijective_a", "n_train", "n_test", "seconds"):
            assert name in metrics
        assert metrics["n_train"] + metrics["n_test"] == 31 * 31
        assert metrics["bijective_a"] == (1.0 if params["a"] == "1" else 0.0)  # 3 | 30

        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"history.csv", "model.pt", "curves.png", "config.json"} <= artifacts
        # The analysis figures of every run (progress measures are taken at the last evaluation)
        assert {"progress_measures.png", "embedding_fourier.png",
                "neuron_fourier.png", "unembed_fourier.png", "attention.png"} <= artifacts
        assert run.data.tags["figures"] == "drawn"  # by the driver, after the trial (default)
        assert metrics["phase_memorization_end"] == metrics["memorization_epoch"]
        assert "excluded_loss" in metrics and "restricted_loss" in metrics
        folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        csv_lines = (folder / "history.csv").read_text().strip().splitlines()
        assert len(csv_lines) == 1 + len(range(0, epochs_run + 1, 20))
        weights = torch.load(folder / "model.pt", weights_only=True)
        assert weights and all(isinstance(t, torch.Tensor) for t in weights.values())
        assert any(t.shape[0] == 32 for t in weights.values())  # vocabulary p + 1
        assert (folder / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cli_run_and_a_sweep_trial_leave_the_same_files(cluster, tmp_path):
    """grokcore.records.write_run_folder writes both: the --out folder (plus its checkpoint)
    and the final checkpoint whose files the driver logs to MLflow."""
    settings = ["--frac", "0.5", "--lr", "3e-3", "--weight-decay", "3", "--epochs", "60",
                "--eval-every", "20", "--measure-every", "60"]
    done = sweep([*settings, "--primes", "31", "--pairs", "2,3", "--address", cluster.address,
                  "--figures", "trial", *store_args(tmp_path)], cwd=tmp_path, env=cluster.env)
    assert done.returncode == 0, done.stdout + done.stderr
    client, (run,) = mlflow_runs(tmp_path)
    assert run.data.tags["figures"] == "in_trial"
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    out = tmp_path / "cli"
    cli = subprocess.run([sys.executable, "-m", "grokcore", "train", *settings, "--p", "31",
                          "--a", "2", "--b", "3", "--out", str(out), "--no-progress"],
                         cwd=tmp_path, env=checkout_env(), capture_output=True, text=True,
                         timeout=300)
    assert cli.returncode == 0, cli.stderr
    written = {p.name for p in out.iterdir()}
    assert written - {"checkpoint.pt"} == logged
    assert {"history.csv", "summary.json", "config.json", "dataset_stats.json", "model.pt",
            "curves.png", "progress_measures.png", "neuron_fourier.png"} <= logged
    summary = json.loads((out / "summary.json").read_text())
    assert {"outcome", "final_test_acc_unseen", "phase_memorization_end"} <= set(summary)


def test_cuda_trials_on_a_cluster_without_gpus_are_one_line_error(cluster, tmp_path):
    # --gpus-per-trial auto settles to 0 on this cluster, once connected, before MLflow.
    done = sweep(["--pairs", "1,1", "--device", "cuda", "--address", cluster.address,
                  *store_args(tmp_path)], cwd=tmp_path, env=cluster.env)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "device=cuda needs --gpus-per-trial > 0" in errors[0], done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_interrupted_sweep_resumes(cluster, tmp_path):
    # Trials 0 and 1 (a = b = 3) grok at once and stop; 2 and 3 (a = b = 1) run the budget.
    args = [*QUICK, "--address", cluster.address, "--pairs", "3,3", "1,1", "--seeds", "0", "1",
            "--epochs", "400", "--checkpoint-every", "60", "--max-concurrent", "2",
            *store_args(tmp_path), "--progress-every", "0"]  # a line per evaluation
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = []
    try:
        deadline = time.monotonic() + 240
        for line in proc.stdout:  # kill once trial 0 is done and trial 2 is part-way
            seen.append(line)
            if re.search(r"running\s+\[2\].*epoch (1[89]\d|2\d\d|3[0-5]\d)\b", line):
                break
            assert time.monotonic() < deadline, "".join(seen)
    finally:
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait()
    killed_at_ms = time.time() * 1000
    output = "".join(seen)
    assert re.search(r"done\s+\[0\]", output), output
    assert re.search(r"starting sweep '.+', 4 trials\n.*Ray: \d+ CPU, 0 GPU; each trial 1 CPU, 2 at once",
                     output), output
    client, runs = mlflow_runs(tmp_path)
    assert by_index(runs)[2].info.status == "RUNNING"  # left behind by the kill
    first = by_index(runs)[0]
    assert first.info.status == "FINISHED"

    # A third seed given now is not in the stored grid: the resume says so and does not run it.
    done = sweep(["--resume", *args, "--seeds", "0", "1", "2"], cwd=tmp_path, env=cluster.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 trial(s) of the settings given now are not in it" in done.stdout, done.stdout
    assert re.search(r"resuming sweep '.+'\n", done.stdout), done.stdout
    # The count of ended trials includes those that ended before the interruption.
    assert max(int(n) for n in re.findall(r"\((\d+)/4\)", done.stdout)) == 4, done.stdout
    client, runs = mlflow_runs(tmp_path)
    assert len(runs) == 4 and set(by_index(runs)) == {0, 1, 2, 3}
    for index, run in by_index(runs).items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["status"] in ("reached", "not_reached")
        epochs_run = int(run.data.metrics["epochs_run"])
        history = steps(client, run)
        assert history == list(range(0, epochs_run + 1, 20)), (index, history)  # none twice
    # Finished before the kill: not trained again, its run untouched.
    assert by_index(runs)[0].info.end_time == first.info.end_time < killed_at_ms
    assert by_index(runs)[0].data.metrics["epochs_run"] < 400  # stopped after grokking
    # Trial 2 went on from a checkpoint taken before the kill, not from epoch 0.
    trial2 = by_index(runs)[2]
    assert trial2.data.metrics["epochs_run"] == 400
    assert int(trial2.data.tags["resumed_from_epoch"]) >= 60
    # The resume kept the sweep's one parent run, and finished it.
    parent = sweep_run(tmp_path)
    assert parent.info.status == "FINISHED" and "--resume" in parent.data.tags["last_command"]
    assert parent.data.metrics["n_unfinished"] == 0 and parent.data.metrics["n_trials"] == 4


def test_trial_failing_every_attempt_is_recorded_failed(cluster, tmp_path):
    done = sweep([*QUICK, "--address", cluster.address, "--pairs", "1,1", "3,3", "--epochs", "100",
                  "--retries", "0", "--fail-at-epoch", "40", "--fail-trials", "1",
                  *store_args(tmp_path)], cwd=tmp_path, env=cluster.env)
    assert done.returncode == 1, done.stdout + done.stderr
    client, runs = mlflow_runs(tmp_path)
    runs = by_index(runs)
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["status"] != "failed"
    assert runs[1].info.status == "FAILED" and runs[1].data.tags["status"] == "failed"
    assert "injected fault" in runs[1].data.tags["error"]


def test_resume_goes_on_when_the_snapshot_names_pruned_checkpoints(cluster, tmp_path):
    # Trials 0 and 1 fail at epoch 140 after checkpoints every 20 epochs up to 120; Tune keeps
    # the last two of each and its snapshot names them.
    args = [*QUICK, "--address", cluster.address, "--pairs", "1,1", "--seeds", "0", "1",
            "--epochs", "200", "--checkpoint-every", "20", "--retries", "0",
            "--fail-at-epoch", "140", "--fail-trials", "0", "1", "--name", "pruned",
            *store_args(tmp_path)]
    done = sweep(args, cwd=tmp_path, env=cluster.env)
    assert done.returncode == 1, done.stdout + done.stderr
    kept = {i: sorted(next((tmp_path / "ray" / "pruned").glob(f"trial_000{i}_*"))
                      .glob("checkpoint_*")) for i in (0, 1)}
    # What a driver killed between a prune and the next snapshot leaves: trial 0's snapshot
    # names checkpoints that are gone, and a newer one (with the latest's content) is on disk;
    # trial 1 lost only the older one, which Tune would fail to delete again.
    older, latest = kept[0]
    newer = latest.parent / f"checkpoint_{int(latest.name.split('_')[1]) + 1:06d}"
    shutil.rmtree(older)
    latest.rename(newer)
    shutil.rmtree(kept[1][0])
    done = sweep(["--resume", *args], cwd=tmp_path, env=cluster.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"stored {latest.name} was pruned after the last snapshot; going on from " \
           f"{newer.name}" in done.stdout, done.stdout
    assert f"older stored {kept[1][0].name} pruned after the last snapshot refilled; going on " \
           f"from {kept[1][1].name}" in done.stdout, done.stdout
    client, runs = mlflow_runs(tmp_path)
    assert set(by_index(runs)) == {0, 1}
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.metrics["epochs_run"] == 200
        assert run.data.tags["resumed_from_epoch"] == "120"
        assert steps(client, run) == list(range(0, 201, 20))  # none twice, none missing


# ---- embedded default: a local Ray started by the command --------------------------------------

def test_crash_is_retried_and_divergence_recorded_on_local_ray(tmp_path):
    done = sweep([*QUICK, "--pairs", "1,1", "3,3", "--lr", "3e-3", "1e6", "--loss-dtype", "float32",
                  "--epochs", "160", "--checkpoint-every", "40", "--stop-after-grok", "0",
                  "--fail-at-epoch", "60", "--fail-trials", "0", "--retries", "1",
                  *store_args(tmp_path)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"retry\s+\[0\]", done.stdout), done.stdout
    client, runs = mlflow_runs(tmp_path)
    runs = by_index(runs)
    assert set(runs) == {0, 1, 2, 3}  # lr is the inner loop: 1 and 3 have lr 1e6
    for index in (1, 3):
        assert runs[index].data.params["lr"] == "1000000.0"
        assert runs[index].data.tags["status"] == "diverged"
        assert runs[index].info.status == "FINISHED"
        assert runs[index].data.metrics["epochs_run"] < 160
    for index in (0, 2):
        assert runs[index].info.status == "FINISHED"
        assert runs[index].data.tags["status"] in ("reached", "not_reached")
        assert steps(client, runs[index]) == list(range(0, 161, 20))
    # The crash at epoch 60 was retried from the checkpoint at epoch 40.
    assert runs[0].data.tags["resumed_from_epoch"] == "40"
    assert runs[2].data.tags["resumed_from_epoch"] == "0"


def test_a_trial_logs_the_params_in_force_under_a_name_that_cannot_be_misread():
    import torch

    from grokcore.config import RunConfig
    from sweeps.run_names import run_name, task_params

    cfg = RunConfig(p=31, a=3, b=4, frac_train=0.5, dtype="float64", seed=2)
    assert run_name(cfg) == "a3b4 p31 frac0.5 fp64 s2"
    params = task_params(cfg)
    assert float(params["spike_floor"]) == torch.finfo(torch.float64).eps
    assert params["grokfast"] == "none" and not any(k.startswith("grokfast_") for k in params)
    ema = task_params(cfg.replace(grokfast="ema", spike_floor=1e-9))
    assert (ema["grokfast_alpha"], ema["spike_floor"]) == ("0.98", "1e-09")
    assert "grokfast_window" not in ema and "grokfast_ma_lambda" not in ema
    ma = task_params(cfg.replace(grokfast="ma"))
    assert ma["grokfast_window"] == "100" and "grokfast_alpha" not in ma
    assert "list_len" not in params and params["a"] == "3"  # a field only sorting reads


def test_trial_logger_unpickles_state_of_the_version_before_parent_runs():
    """A long sweep pickled by the previous version (no parent run id, no names) must resume:
    its logger then finds the sweep's parent run by the sweep's name."""
    import pickle

    from sweeps.tracking import MLflowTrialLogger

    old = MLflowTrialLogger.__new__(MLflowTrialLogger)
    old.__setstate__({"tracking_uri": "sqlite:///x.db", "experiment": "e", "sweep": "s"})
    assert (old.parent_run_id, old.names, old.sweep) == (None, {}, "s")
    new = pickle.loads(pickle.dumps(MLflowTrialLogger("sqlite:///x.db", "e", "s", "abc",
                                                      {"k": "a1b1 p31 frac0.5 fp32 s0"})))
    assert (new.parent_run_id, new.names) == ("abc", {"k": "a1b1 p31 frac0.5 fp32 s0"})


def test_a_new_worker_removes_the_checkpoint_scratch_of_workers_that_are_gone(tmp_path, monkeypatch):
    from sweeps.trial import SCRATCH_PREFIX, scratch_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen(["true"])
    ended.wait()  # a pid whose process is gone
    host = socket.gethostname()
    folders = {name: tmp_path / f"{SCRATCH_PREFIX}{name}" for name in
               (f"{host}_{ended.pid}", f"{host}_{os.getppid()}", f"otherhost_{ended.pid}")}
    for folder in folders.values():  # a checkpoint left in each, as by a killed worker
        (folder / "ckpt_x").mkdir(parents=True)
        (folder / "ckpt_x" / "checkpoint.pt").write_bytes(b"weights")
    mine = scratch_folder.__wrapped__()  # uncached: what a new worker's first call does
    assert mine == tmp_path / f"{SCRATCH_PREFIX}{host}_{os.getpid()}" and mine.is_dir()
    assert not folders[f"{host}_{ended.pid}"].exists()
    assert (folders[f"{host}_{os.getppid()}"] / "ckpt_x" / "checkpoint.pt").exists()  # alive
    assert (folders[f"otherhost_{ended.pid}"] / "ckpt_x").exists()  # not this host's to judge
