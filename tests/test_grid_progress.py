"""How far a grid got (``analysis.grid_progress``): its counts against a merge of the grid file
and the committed trials CSV made here, and what counts as ended."""

import json
from pathlib import Path

import pandas as pd

from analysis import grid_progress
from analysis.trials import read_trials
from grokcore.pack_grid import load_grid

PHASE = Path(__file__).resolve().parent.parent / "results" / "phase"
KEYS = ["a", "b", "p", "split", "dtype", "frac_train", "seed", "data_seed"]


def test_counts_are_those_of_a_merge_on_settings_and_seeds(capsys):
    grid_path = PHASE / "grid-classes-41.json"
    grid = pd.DataFrame(json.loads(grid_path.read_text()))[KEYS]
    whole = read_trials(PHASE / "trials.csv")
    # A part under way, whatever the committed CSV holds: the lines of its first ten runs gone.
    first = grid.head(10).merge(whole.reset_index(), on=KEYS)["index"]
    trials = whole.drop(index=first)
    done = trials[trials.status.isin(["reached", "not_reached", "diverged"])][KEYS + ["status"]]
    merged = grid.merge(done, on=KEYS, how="left")
    assert len(merged) == len(grid)  # one ended line a run at most
    counts = grid_progress.progress(trials, load_grid(grid_path))
    assert counts["runs"] == len(grid) and counts["ended"] == merged.status.notna().sum()
    assert counts["reached"] == (merged.status == "reached").sum()
    assert counts["left"] == merged.status.isna().sum() >= 10
    assert 0 < counts["ended"] < counts["runs"]
    assert grid_progress.main(["--trials", str(PHASE / "trials.csv"), str(grid_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    full = grid_progress.progress(whole, load_grid(grid_path))
    assert out[1].split() == ["grid-classes-41.json", *map(str, full.values())]
    # the runs whose lines were dropped, and only those, moved from ended to left
    dropped_ended = int(whole.loc[first].status.isin(["reached", "not_reached", "diverged"]).sum())
    assert counts["left"] - full["left"] == full["ended"] - counts["ended"] == dropped_ended > 0


def test_a_failed_or_unfinished_line_leaves_the_run_to_run():
    trials = read_trials(PHASE / "trials.csv")
    grid = load_grid(PHASE / "grid-pairs-31.json")
    assert grid_progress.progress(trials, grid)["left"] == 0
    first = grid[0]
    same = (trials.a == first.a) & (trials.b == first.b) & (trials.p == first.p) \
        & (trials.split == first.split) & (trials.dtype == first.dtype) \
        & (trials.frac_train == first.frac_train) & (trials.seed == first.seed) \
        & (trials.data_seed == first.data_seed)
    assert same.sum() == 1
    for status in ("failed", "unfinished"):
        trials.loc[same, "status"] = status
        assert grid_progress.progress(trials, grid)["left"] == 1, status


def test_a_file_that_is_not_a_grid_is_one_line(tmp_path, capsys):
    bad = tmp_path / "grid.json"
    bad.write_text("{}")
    assert grid_progress.main(["--trials", str(PHASE / "trials.csv"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--write-grid" in err
