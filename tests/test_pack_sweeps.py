"""Packed sweeps (sweeps/pack_trial.py, sweeps/pack_tracking.py, sweeps/packing.py): a pack is one
Tune trial, each member its own MLflow child run, indistinguishable from a single trial's run.
Real Ray (the cluster of tests/test_sweeps.py), real SQLite MLflow stores."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from grokcore.config import RunConfig
from test_sweeps import (QUICK, ROOT, SCRIPT, by_index, cluster, mlflow_runs,  # noqa: F401
                         steps, store_args, sweep, sweep_run)

# Two rows, two replicates each; (3, 3) generalizes at once and stops at epoch 80, so its
# members end while the pack trains on; a checkpoint at epoch 200 and at the end.
GRID = [*QUICK, "--a", "1", "3", "--b", "3", "--epochs", "300", "--stop-after-grok", "3",
        "--measure-every", "100", "--replicates", "2"]
SAME_VALUES = ("status", "outcome", "reached", "threshold_epoch", "memorization_epoch",
               "threshold_delay", "n_spikes", "figures", "resumed_from_epoch", "compiled",
               "device", "grid_index", "config_hash")


def children(tracking: Path, experiment: str) -> dict[str, dict]:
    """The trial runs of an experiment by run name: params, tags, metric histories, artifacts."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tracking}")
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    out = {}
    for run in runs:
        if run is parent:
            continue
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        history = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
        out[run.info.run_name] = {
            "params": run.data.params, "tags": run.data.tags, "metrics": set(run.data.metrics),
            "train_loss": history,
            "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id))}
    return out


def grok_table(tracking: Path, experiment: str) -> pd.DataFrame:
    done = subprocess.run([sys.executable, "-m", "analysis.grok_table", "--experiment", experiment,
                           "--tracking-uri", f"sqlite:///{tracking}", "--format", "csv",
                           "--no-log"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return pd.read_csv(io.StringIO(done.stdout))


def test_a_packed_sweep_leaves_the_runs_an_unpacked_one_does(cluster, tmp_path):  # noqa: F811
    db = tmp_path / "mlflow.db"
    for experiment, pack in (("single", "off"), ("packed", "4")):
        args = [*GRID, "--pack", pack, "--address", cluster.address, *store_args(tmp_path),
                "--experiment", experiment]
        done = sweep(args, tmp_path, cluster.env, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "4 runs in 1 pack of 4, one trial a pack" in done.stdout
    assert re.search(r"\n4 runs in 1 pack trial in \d+ s", done.stdout), done.stdout[-2000:]
    single, packed = children(db, "single"), children(db, "packed")
    assert sorted(single) == sorted(packed) and len(single) == 4
    for name, alone in single.items():
        member = packed[name]
        assert member["params"] == alone["params"]
        assert set(member["tags"]) == set(alone["tags"])
        assert {k: member["tags"][k] for k in SAME_VALUES} == {k: alone["tags"][k] for k in SAME_VALUES}
        assert (member["tags"]["pack_size"], alone["tags"]["pack_size"]) == ("4", "1")
        assert member["metrics"] == alone["metrics"]
        assert member["artifacts"] == alone["artifacts"]
        # On the CPU a pack runs each member's own step: the same numbers, bit for bit.
        assert member["train_loss"] == alone["train_loss"] and len(alone["train_loss"]) >= 5
    # members that ended while the pack trained on, and members that ran to the end
    assert {r["tags"]["status"] for r in packed.values()} == {"reached", "not_reached"}
    pd.testing.assert_frame_equal(grok_table(db, "single"), grok_table(db, "packed"))


def test_a_packed_sweep_killed_and_resumed(cluster, tmp_path):  # noqa: F811
    """Pack 0 (a = b = 3) ends at once; the driver is killed while pack 1 (a = b = 1) trains.
    --resume continues pack 1 from its last checkpoint: every member's run finished, no step
    logged twice, pack 0's runs untouched."""
    args = [*QUICK, "--address", cluster.address, "--pairs", "3,3", "1,1", "--seeds", "0", "1",
            "--epochs", "400", "--checkpoint-every", "60", "--max-concurrent", "1",
            "--pack", "2", *store_args(tmp_path), "--progress-every", "0"]
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=tmp_path, env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = []
    try:
        deadline = time.monotonic() + 400
        for line in proc.stdout:
            seen.append(line)
            if re.search(r"running\s+\[pack 1\].*epoch (1[89]\d|2\d\d|3[0-5]\d),", line):
                break
            assert time.monotonic() < deadline, "".join(seen)
    finally:
        proc.kill()
        proc.wait()
    output = "".join(seen)
    assert "4 runs in 2 packs of 2" in output and re.search(r"done\s+\[1\]", output), output
    client, runs = mlflow_runs(tmp_path)
    before = by_index(runs)
    assert before[0].info.status == before[1].info.status == "FINISHED"
    assert before[2].info.status == "RUNNING"

    done = sweep(["--resume", *args], cwd=tmp_path, env=cluster.env, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    client, runs = mlflow_runs(tmp_path)
    after = by_index(runs)
    assert len(runs) == 4 and set(after) == {0, 1, 2, 3}
    for index, run in after.items():
        assert run.info.status == "FINISHED" and run.data.tags["pack_size"] == "2"
        epochs_run = int(run.data.metrics["epochs_run"])
        assert steps(client, run) == list(range(0, epochs_run + 1, 20)), index  # none twice
    for index in (0, 1):
        assert after[index].info.end_time == before[index].info.end_time
    for index in (2, 3):
        assert after[index].data.metrics["epochs_run"] == 400
        assert int(after[index].data.tags["resumed_from_epoch"]) >= 60
    parent = sweep_run(tmp_path)
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_trials"] == 4


def test_a_crashed_pack_restarts_from_its_checkpoint(cluster, tmp_path):  # noqa: F811
    """Member 2 of the one pack raises at epoch 120 on its first attempt; the pack restarts from
    its checkpoint. The members that had ended (a = b = 3, at epoch 80) are not logged again;
    the others continue, no step twice."""
    done = sweep([*QUICK, "--address", cluster.address, "--pairs", "3,3", "1,1", "--seeds", "0",
                  "1", "--epochs", "200", "--stop-after-grok", "3", "--checkpoint-every", "60",
                  "--fail-at-epoch", "120",
                  "--fail-trials", "2", "--pack", "4", *store_args(tmp_path)],
                 cwd=tmp_path, env=cluster.env, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"retry\s+\[0\]", done.stdout), done.stdout
    client, runs = mlflow_runs(tmp_path)
    runs = by_index(runs)
    assert len(runs) == 4
    for index, run in runs.items():
        assert run.info.status == "FINISHED", index
        epochs_run = int(run.data.metrics["epochs_run"])
        assert steps(client, run) == list(range(0, epochs_run + 1, 20)), index
    assert [runs[i].data.tags["resumed_from_epoch"] for i in (0, 1)] == ["0", "0"]
    assert [int(runs[i].data.tags["resumed_from_epoch"]) for i in (2, 3)] == [80, 80]


def test_pack_options_and_plans():
    """--pack parsing, and how a grid is cut: by what must agree, then into even packs."""
    import argparse

    from sweeps.packing import pack_option, plan_packs

    assert pack_option("auto") == "auto" and pack_option("off") == "off"
    assert pack_option("1") == "off" and pack_option("16") == 16
    for bad in ("0", "-2", "many"):
        with pytest.raises(argparse.ArgumentTypeError):
            pack_option(bad)
    base = RunConfig(p=31, frac_train=0.5, epochs=1500, eval_every=20, device="cpu")
    grid = [base.replace(seed=s) for s in range(10)] + [base.replace(lr=3e-3, seed=s)
                                                         for s in range(3)]
    # lr must agree: two groups; 10 runs in packs of at most 4 -> 4, 3, 3 (grid order kept)
    assert plan_packs(grid, 4, slots=2, on_cuda=False) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9],
                                                          [10, 11, 12]]
    assert plan_packs(grid, "off", slots=2, on_cuda=False) is None
    # auto on CPUs is off (measured: packs did not shorten a CPU sweep), short runs or long
    assert plan_packs(grid, "auto", slots=2, on_cuda=False) is None
    long = [RunConfig(seed=s, device="cpu", epochs=40_000) for s in range(4)]
    assert plan_packs(long, "auto", slots=2, on_cuda=False) is None


def test_packs_that_do_not_fit_in_memory_are_refused():
    """10,000 p = 113 runs in one pack need over 500 GiB (tens of MiB each): ConfigError naming
    the figures, before anything runs."""
    from grokcore.config import ConfigError
    from sweeps.packing import plan_packs

    grid = [RunConfig(seed=s, device="cpu", epochs=100) for s in range(10_000)]
    with pytest.raises(ConfigError, match=r"a pack of 10000 members needs about .* GiB"):
        plan_packs(grid, 10_000, slots=1, on_cuda=False)


def test_bad_pack_option_is_one_line_error(tmp_path):
    done = sweep([*GRID, "--pack", "0", *store_args(tmp_path)], tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--pack" in done.stderr and not (tmp_path / "mlflow.db").exists()
