"""Provenance: what a run ran with (code commit and dirtiness, torch, device, threads, compiled
step) is in its summary, and the grok table names the rows whose runs differ in it."""

import subprocess
from pathlib import Path

import pandas as pd
import torch

from analysis import grok_table
from grokcore.config import RunConfig
from grokcore.provenance import PROVENANCE_FIELDS, merged
from grokcore.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_runs_summary_names_what_it_ran_with():
    torch.set_num_threads(1)
    summary = Trainer(RunConfig(p=13, epochs=20, eval_every=10, compile="off")).run()
    ran = summary["provenance"]
    assert set(ran) == set(PROVENANCE_FIELDS)
    assert ran["compiled"] == "off" and ran["device"] == "cpu" and ran["torch_threads"] == "1"
    assert ran["torch_version"] == torch.__version__
    # The commit of this checkout, and whether its tracked files have uncommitted changes.
    assert ran["code_commit"] == git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    assert ran["code_dirty"] == ("true" if dirty else "false")


def test_a_value_that_changed_over_a_run_keeps_both():
    assert merged(None, "2.13.0") == "2.13.0"
    assert merged("2.13.0", "2.13.0") == "2.13.0"
    assert merged("2.13.0", "2.15.0") == "2.13.0|2.15.0"
    assert merged("2.13.0|2.15.0", "2.13.0") == "2.13.0|2.15.0"


def _trials(path: Path) -> Path:
    """Two rows of two runs each; the runs of (3, 3) ran one compiled and one eager."""
    rows = []
    for a, compiled in [(1, "off"), (1, "off"), (3, "on"), (3, "off")]:
        rows.append({"task": "expmod", "a": a, "b": a, "p": 113, "split": "pairs",
                     "dtype": "float32", "frac_train": 0.3, "seed": len(rows),
                     "data_seed": len(rows), "status": "reached", "outcome": "grokked",
                     "threshold_epoch": 1000 + 100 * len(rows), "memorization_epoch": 100,
                     "epochs_run": 1500 + 100 * len(rows), "n_spikes": 0, "final_test_acc": 1.0,
                     "compiled": compiled, "torch_version": "2.13.0+cpu", "device": "cpu",
                     "torch_threads": "1", "code_commit": "a" * 40, "code_dirty": "false"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_the_grok_table_names_rows_that_mix_provenance(tmp_path, capsys):
    trials = _trials(tmp_path / "trials.csv")
    assert grok_table.main(["--trials", str(trials)]) == 0
    text = capsys.readouterr().out
    note = text[text.index("rows whose runs differ in what they ran with:"):].splitlines()
    assert note[1:] == ["  a 3, b 3, p 113, split pairs, dtype float32, frac_train 0.3: "
                        "compiled off|on"]
    assert grok_table.main(["--trials", str(trials), "--format", "csv"]) == 0
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert table.provenance_mixed.fillna("").tolist() == ["", "compiled off|on"]
