"""analysis.unended_grid: what of a planned grid is left to train, given the trials that ended."""

import dataclasses
import json

import pandas as pd

from analysis.unended_grid import main
from grokcore.config import RunConfig


def _config(**changes) -> dict:
    return dataclasses.replace(RunConfig(p=13, epochs=10), **changes).to_dict()


def _trial(cfg: dict, status: str) -> dict:
    keys = ("task", "a", "b", "p", "split", "dtype", "frac_train", "seed", "data_seed")
    return {**{k: cfg[k] for k in keys}, "status": status, "threshold_epoch": 100,
            "epochs_run": 200}


def test_only_runs_without_an_ended_trial_are_left(tmp_path):
    grid = [_config(seed=s, data_seed=d) for s, d in [(0, 0), (1, 1), (2, 2), (3, 3)]]
    grid.append(_config(seed=0, data_seed=0, a=3))  # an ended trial's seeds, another row
    grid.append(_config(seed=0, data_seed=0, frac_train=0.4))  # and another fraction
    trials = [_trial(grid[0], "reached"), _trial(grid[1], "not_reached"),
              _trial(grid[2], "unfinished"), _trial(grid[3], "failed")]
    pd.DataFrame(trials).to_csv(tmp_path / "trials.csv", index=False)
    (tmp_path / "a.json").write_text(json.dumps(grid[:3]))
    (tmp_path / "b.json").write_text(json.dumps(grid[3:]))
    out = tmp_path / "left.json"
    assert main([str(tmp_path / "trials.csv"), str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == grid[2:]  # in the grids' order


def test_a_file_that_is_not_a_trials_csv_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "trials.csv").write_text("x,y\n1,2\n")
    (tmp_path / "g.json").write_text(json.dumps([_config()]))
    out = tmp_path / "left.json"
    assert main([str(tmp_path / "trials.csv"), str(tmp_path / "g.json"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "--write-trials" in err
    assert not out.exists()
