"""A grid trained without Ray or MLflow (``python -m grokcore grid``, what a GPU machine runs) and
logged afterwards (``python -m sweeps.import_runs``) leaves the children a sweep of the same grid
leaves, and the same grok table. Real Ray for the sweep, real SQLite MLflow stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_pack_sweeps import SAME_VALUES, children, grok_table
from test_sweeps import QUICK, ROOT, cluster, store_args, sweep  # noqa: F401

GRID = [*QUICK, "--a", "1", "3", "--b", "3", "--epochs", "300", "--stop-after-grok", "3",
        "--measure-every", "100", "--replicates", "2", "--name", "same-sweep"]
# What only a Ray trial or only an import can know: where and how it ran.
OWN_TAGS = {"node_id", "node_ip", "nodes", "hostname", "trial_id", "imported_from"}


def grokcore(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grokcore", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def import_runs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeps.import_runs", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_an_imported_grid_leaves_the_runs_a_sweep_does(cluster, tmp_path):  # noqa: F811
    db = tmp_path / "mlflow.db"
    done = sweep([*GRID, "--address", cluster.address, *store_args(tmp_path),
                  "--experiment", "swept"], tmp_path, cluster.env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    grid = tmp_path / "grid.json"
    done = sweep([*GRID, "--write-grid", str(grid)], tmp_path)
    assert done.returncode == 0 and len(json.loads(grid.read_text())) == 4
    done = grokcore("grid", str(grid), "--out", str(tmp_path / "out"), "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    done = import_runs(str(tmp_path / "out"), "--experiment", "imported", "--name", "same-sweep",
                       "--tracking-uri", f"sqlite:///{db}")
    assert done.returncode == 0, done.stderr[-3000:]
    swept, imported = children(db, "swept"), children(db, "imported")
    assert sorted(swept) == sorted(imported) and len(swept) == 4
    for name, trial in swept.items():
        run = imported[name]
        assert run["params"] == trial["params"]
        assert set(run["tags"]) - OWN_TAGS == set(trial["tags"]) - OWN_TAGS
        assert run["tags"]["trial_key"] == trial["tags"]["trial_key"]
        same = [k for k in SAME_VALUES if k not in ("figures", "grid_index")]
        assert {k: run["tags"][k] for k in same} == {k: trial["tags"][k] for k in same}
        assert run["tags"]["device"] == "cpu" and run["tags"]["imported_from"].endswith("out")
        assert run["metrics"] == trial["metrics"]
        assert run["artifacts"] == [a for a in trial["artifacts"] if not a.endswith(".png")]
        # On the CPU a pack runs each member's own step: the numbers of the sweep, bit for bit.
        assert run["train_loss"] == trial["train_loss"]
    columns = ["a", "b", "p", "shows", "reached", "threshold_epoch_min", "threshold_epoch_max",
               "memorization_epoch_median"]
    assert grok_table(db, "imported")[columns].equals(grok_table(db, "swept")[columns])
    # Importing again adds nothing.
    again = import_runs(str(tmp_path / "out"), "--experiment", "imported", "--name",
                        "same-sweep", "--tracking-uri", f"sqlite:///{db}")
    assert again.returncode == 0 and len(children(db, "imported")) == 4


def test_runs_the_budget_stopped_are_not_imported_as_ended(tmp_path):
    """A budget that ends before the runs do: every folder says UNFINISHED; the import logs no
    child run, counts them unfinished, exits 1 and leaves the sweep KILLED."""
    from mlflow.tracking import MlflowClient

    # Runs that cannot end in the budget (100,000 epochs, no stop after grokking), and a budget
    # long enough for the workers to start on a busy machine (a pack not started by the
    # deadline leaves no folder: 1 s was too short here at load 10 on 2 cores).
    grid = tmp_path / "grid.json"
    assert sweep([*QUICK, "--a", "1", "--b", "1", "--epochs", "100000", "--stop-after-grok", "0",
                  "--replicates", "2", "--write-grid", str(grid)], tmp_path).returncode == 0
    done = grokcore("grid", str(grid), "--out", str(tmp_path / "out"), "--budget-s", "15",
                    "--history-every", "40", "--no-weights")
    assert done.returncode == 0, done.stderr[-3000:]
    folders = sorted((tmp_path / "out").glob("0*"))
    assert len(folders) == 2 and all((f / "UNFINISHED").exists() for f in folders)
    assert not (folders[0] / "model.pt").exists()
    # Thinned history: multiples of 40, the event epochs (memorization can come within the
    # budget on a fast machine) and the last row, where the budget stopped the run.
    summary = json.loads((folders[0] / "summary.json").read_text())
    events = {summary.get("memorization_epoch"), summary.get("threshold_epoch")}
    epochs = [int(line.split(",")[0]) for line in
              (folders[0] / "history.csv").read_text().splitlines()[1:]]
    assert all(e % 40 == 0 or e in events for e in epochs[:-1]) and epochs[-1] < 100000
    assert len([e for e in epochs if e % 40]) <= len(events) + 1
    db = tmp_path / "mlflow.db"
    done = import_runs(str(tmp_path / "out"), "--experiment", "cut", "--name", "cut",
                       "--tracking-uri", f"sqlite:///{db}")
    assert done.returncode == 1 and "2 unfinished" in done.stdout
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("cut").experiment_id])
    assert [r.data.tags.get("run_kind") for r in runs] == ["sweep"]
    assert runs[0].info.status == "KILLED"


def test_bad_grid_and_empty_folder_are_one_line_errors(tmp_path):
    (tmp_path / "grid.json").write_text("{}")
    done = grokcore("grid", str(tmp_path / "grid.json"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--write-grid" in done.stderr
    (tmp_path / "empty").mkdir()
    done = import_runs(str(tmp_path / "empty"), "--experiment", "x", "--name", "x",
                       "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()  # nothing written


def test_skip_ended_leaves_out_what_was_imported(tmp_path):
    """A grid imported from elsewhere, then a sweep of a larger grid with --skip-ended: only the
    runs without an ended run of the same configuration remain; none left is an error."""
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    quick = ["--primes", "13", "--a", "1", "--b", "1", "--frac", "0.5", "--epochs", "30",
             "--eval-every", "10"]
    assert sweep([*quick, "--replicates", "2", "--write-grid", str(small)], tmp_path).returncode == 0
    assert sweep([*quick, "--replicates", "3", "--write-grid", str(large)], tmp_path).returncode == 0
    assert grokcore("grid", str(small), "--out", str(tmp_path / "out")).returncode == 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert import_runs(str(tmp_path / "out"), "--experiment", "e", "--name", "gpu",
                       "--tracking-uri", uri).returncode == 0
    store = ["--experiment", "e", "--tracking-uri", uri, "--skip-ended", "--dry-run"]
    done = sweep(["--from-grid", str(large), *store], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 of 3 runs already ended" in done.stdout and "\n1 trials;" in done.stdout
    done = sweep(["--from-grid", str(small), *store], tmp_path)
    assert done.returncode == 2 and "nothing to run" in done.stderr
    done = sweep(["--from-grid", str(small), "--a", "3", "--dry-run"], tmp_path)
    assert done.returncode == 2 and "leave out --a" in done.stderr
