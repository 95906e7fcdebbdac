"""A sweep on a real two-node Ray cluster on this machine, losing a node and losing its driver.

Each node is a `ray start --block` child in its own session, temp dir and ports (tests/raynodes.py);
a test stops only the nodes it started (never `ray stop`). The sweeps are the real command line,
`python sweeps/expmod_grid.py`, logging to a real SQLite MLflow store; Tune's storage is a local
folder, which both nodes of one machine share (on several machines: NFS or s3://).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from raynodes import ROOT, cluster_nodes, read_runs, start_node
from services import checkout_env

SCRIPT = ROOT / "sweeps" / "expmod_grid.py"
# p = 31 trials (README, "A run that groks fast"); stop_after_grok 0: every trial runs its
# epochs, so the node-loss trials are still running when their node goes.
QUICK = ["--primes", "31", "--frac", "0.5", "--lr", "3e-3", "--weight-decay", "3",
         "--eval-every", "20", "--checkpoint-every", "100", "--progress-every", "0.5"]


def store_args(tmp_path: Path) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--storage", str(tmp_path / "ray"), "--experiment", "test"]


def mlflow_runs(tmp_path: Path, trials: bool = True):
    """The trial runs of the store (``trials=False``: the runs that are not trials, e.g. the
    sweep's parent run)."""
    from mlflow.tracking import MlflowClient

    from grokcore.records import RUN_KIND_TAG

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    runs = client.search_runs([experiment.experiment_id])
    return client, [r for r in runs if (RUN_KIND_TAG not in r.data.tags) == trials]


def steps(client, run, key: str = "train_loss") -> list[int]:
    return [m.step for m in client.get_metric_history(run.info.run_id, key)]


def wait_for(condition, proc: subprocess.Popen, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}; sweep output:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)


def test_node_loss_trials_continue_on_the_surviving_node(tmp_path):
    """Head and worker with 1 CPU each, 1 CPU per trial: trials run on both nodes at once. Once a
    trial has finished on the worker and its next trial is part-way, the worker is SIGKILLed;
    that trial continues from its last checkpoint on the head, and the sweep completes."""
    started = time.monotonic()
    env = checkout_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    epochs = 800  # a wide window between epoch 200 and the end, however fast the machine
    head = start_node(env, num_cpus=1)
    worker = proc = None
    try:
        address = f"127.0.0.1:{head.port}"
        worker = start_node(env, num_cpus=1, head_address=address)
        nodes = cluster_nodes(address, env)
        assert [n["alive"] for n in nodes] == [True, True], nodes
        ids = {n["port"]: n["id"] for n in nodes}
        head_id, worker_id = ids[head.node_manager_port], ids[worker.node_manager_port]

        log = tmp_path / "sweep.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), *QUICK, "--address", address, "--pairs", "1,1",
                 "3,3", "--seeds", "0", "1", "--epochs", str(epochs), "--stop-after-grok", "0",
                 "--retries", "2", *store_args(tmp_path)],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)

        def worker_busy():  # a trial done on the worker and another one there past epoch 200
            runs = [r for r in read_runs(tmp_path / "mlflow.db")
                    if r["tags"].get("node_id") == worker_id]
            done = [r for r in runs if r["status"] == "FINISHED"]
            running = [r for r in runs if r["status"] == "RUNNING" and (r["last_step"] or 0) >= 200]
            return running if done and running else None

        running = wait_for(worker_busy, proc, 300, "a second trial running on the worker", log)
        worker.kill()
        killed = {r["tags"]["grid_index"]: r["last_step"] for r in running}
        assert proc.wait(timeout=300) == 0, log.read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for node in (worker, head):
            if node is not None:
                node.stop()

    client, runs = mlflow_runs(tmp_path)
    assert len(runs) == 4
    assert Counter(r.data.tags["trial_key"] for r in runs).most_common(1)[0][1] == 1
    assert sorted(int(r.data.tags["grid_index"]) for r in runs) == [0, 1, 2, 3]
    for run in runs:
        assert run.info.status == "FINISHED", run.data.tags
        assert run.data.tags["status"] in ("reached", "not_reached")
        assert run.data.metrics["epochs_run"] == epochs
        for key in ("train_loss", "test_acc"):  # every evaluation exactly once, in order
            assert steps(client, run, key) == list(range(0, epochs + 1, 20)), key
        assert run.data.tags["node_id"] in (head_id, worker_id)
        assert run.data.tags["hostname"] and run.data.tags["node_ip"]
    tags = {r.data.tags["grid_index"]: r.data.tags for r in runs}
    # Both nodes ran trials to the end; the killed trial(s) ended on the head, continued from a
    # checkpoint taken on the worker.
    assert any(t["nodes"] == worker_id for t in tags.values()), tags
    assert any(t["nodes"] == head_id for t in tags.values()), tags
    assert killed
    for index in killed:
        assert tags[index]["nodes"] == f"{worker_id},{head_id}"
        assert tags[index]["node_id"] == head_id
        resumed = int(tags[index]["resumed_from_epoch"])
        assert resumed >= 100 and resumed % 100 == 0 and resumed < epochs
    for index, t in tags.items():
        if index not in killed:
            assert t["resumed_from_epoch"] == "0" and "," not in t["nodes"]
    print(f"\nnode loss: killed the worker with trial(s) {killed} (grid index: last epoch logged); "
          "resumed from epoch " + ", ".join(f"[{i}] {tags[i]['resumed_from_epoch']}" for i in killed)
          + f" on the head; {len(runs)} runs, all FINISHED; test took "
          f"{time.monotonic() - started:.0f} s")


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def loss_counts(client, runs, n_trials: int) -> dict[str, int]:
    """What a sweep lost: trials of the grid without a FINISHED run, trial keys with more than
    one run, runs left RUNNING, and runs with an epoch logged twice (or out of order)."""
    finished = {int(r.data.tags["grid_index"]) for r in runs if r.info.status == "FINISHED"}
    per_key = Counter(r.data.tags["trial_key"] for r in runs)
    twice = 0
    for run in runs:
        history = steps(client, run)
        twice += history != sorted(set(history))
    return {"lost": len(set(range(n_trials)) - finished),
            "duplicated": sum(1 for n in per_key.values() if n > 1),
            "running": sum(r.info.status == "RUNNING" for r in runs),
            "epochs_twice": twice}


def test_driver_killed_mid_sweep_then_resumed_loses_nothing(tmp_path):
    """20 short trials on a 2-CPU cluster; the driver is SIGKILLed once 6 trials are done and
    others are part-way; the same command with --resume completes the sweep: 0 trials lost,
    0 duplicated runs, 0 runs left RUNNING, no epoch logged twice."""
    started = time.monotonic()
    # Trials report every evaluation (not every second, with a checkpoint at 100): the epochs
    # between the checkpoint and the end are then seen, however fast the machine.
    env = checkout_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
                    GROK_REPORT_EVERY_S="0")
    n_trials, epochs = 20, 200
    head = start_node(env, num_cpus=2)
    try:
        address = f"127.0.0.1:{head.port}"
        args = [*QUICK, "--address", address, "--pairs", "1,1", "3,3", "5,5", "7,7", "9,9",
                "--seeds", "0", "1", "2", "3", "--epochs", str(epochs), *store_args(tmp_path),
                "--progress-every", "0"]  # a line per evaluation: a fast machine skips none
        proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        try:
            deadline = time.monotonic() + 300
            for line in proc.stdout:  # kill once 6 trials are done and another is part-way
                seen.append(line)
                done = sum(bool(re.match(r"\S+ done ", s)) for s in seen)
                if done >= 6 and re.search(r"running .* epoch 1[2-8]\d ", line):
                    break
                assert time.monotonic() < deadline, "".join(seen)
            children = child_pids(proc.pid)  # the figure drawers, at least (6 runs ended)
        finally:
            proc.kill()  # SIGKILL: the driver cannot close its MLflow runs
            proc.wait()
        output = "".join(seen)
        assert "running" in seen[-1], "the sweep ended before the kill:\n" + output
        assert children, "the driver had started no process of its own"
        deadline = time.monotonic() + 60  # the processes the driver started end with it
        while any(Path(f"/proc/{pid}").exists() for pid in children):
            assert time.monotonic() < deadline, f"{children} outlived the killed driver"
            time.sleep(0.5)
        client, runs = mlflow_runs(tmp_path)
        before = loss_counts(client, runs, n_trials)
        assert before["running"] >= 1 and before["lost"] >= 1, (before, output)

        (tmp_path / "killed.log").write_text(output)
        done = subprocess.run([sys.executable, str(SCRIPT), "--resume", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=400)
        (tmp_path / "resumed.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        head.stop()
    client, runs = mlflow_runs(tmp_path)
    after = loss_counts(client, runs, n_trials)
    print(f"\ndriver loss: at the kill {before} ({len(runs)} runs in the end); after --resume "
          f"{after}; test took {time.monotonic() - started:.0f} s")
    assert after == {"lost": 0, "duplicated": 0, "running": 0, "epochs_twice": 0}
    assert len(runs) == n_trials
    _, (parent,) = mlflow_runs(tmp_path, trials=False)  # the resume reopened and closed it
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_trials"] == n_trials
    for run in runs:
        assert run.data.tags["status"] in ("reached", "not_reached")
        epochs_run = int(run.data.metrics["epochs_run"])
        assert steps(client, run) == list(range(0, epochs_run + 1, 20))


def test_a_node_with_a_gpu_shares_it_among_its_trials_by_default(tmp_path):
    """A head that declares 2 CPUs and 1 GPU: with the default --gpus-per-trial (auto) each
    trial reserves half of the GPU, so both trials run at once and Ray gives each GPU 0. A
    machine without CUDA (this one) still trains them on the CPU, and the runs say so."""
    import torch

    env = checkout_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    head = start_node(env, num_cpus=2, num_gpus=1)
    try:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), *QUICK, "--address", f"127.0.0.1:{head.port}",
             "--pairs", "3,3", "--seeds", "0", "1", "--epochs", "100", "--figures", "none",
             *store_args(tmp_path)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    finally:
        head.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ray: 2 CPU, 1 GPU; each trial 1 CPU and 0.5 GPU, 2 at once" in done.stdout, done.stdout
    assert "stay idle" not in done.stdout
    _, runs = mlflow_runs(tmp_path)
    assert len(runs) == 2
    for run in runs:
        assert run.data.tags["gpu_ids"] == "0"
        device = run.data.tags["device"]
        assert device == "cpu" if not torch.cuda.is_available() else device.startswith("cuda:0 ")
