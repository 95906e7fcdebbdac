"""``python -m analysis.unended_grid TRIALS.csv GRID.json [GRID.json ...] --out FILE``: the runs
of grid files that a trials CSV does not hold as ended, as one grid file.

For finishing a long campaign somewhere else (a GPU machine lent for minutes, say): the grid
files say what was planned, the trials CSV what has ended, and what is written here is what
is left, in the grids' order. A run counts as ended as ``analysis.trials.one_run_per_setting``
counts it (reached, not reached or diverged), matched on its row's settings and its two seeds;
an unfinished or failed run is trained again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from analysis.runs import AnalysisError
from analysis.trials import config_keys, ended_mask, param_value, read_trials


def setting(values: dict, keys: tuple[str, ...]) -> tuple:
    """A run's settings and seeds in one comparable form, from a trial line or a config dict
    (MLflow, a CSV and JSON spell 0.5, 3 and True alike once read by ``param_value``)."""
    return tuple(param_value(str(values[k])) for k in keys)


def unended(grid: list[dict], trials: pd.DataFrame) -> list[dict]:
    """The configs of ``grid`` whose settings and seeds no ended trial of ``trials`` has."""
    left = []
    ended = trials[ended_mask(trials)]
    done_by_task: dict[str, set] = {}
    for cfg in grid:
        task = cfg["task"]
        keys = (*config_keys(task), "seed", "data_seed")
        if task not in done_by_task:
            rows = ended[ended.task == task]
            done_by_task[task] = {setting(row, keys) for row in rows.to_dict("records")}
        if setting(cfg, keys) not in done_by_task[task]:
            left.append(cfg)
    return left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.unended_grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("trials", type=Path, help="trials CSV (analysis.grok_table --write-trials)")
    parser.add_argument("grids", type=Path, nargs="+", metavar="GRID",
                        help="grid files (a sweep's grid.json, or --write-grid FILE)")
    parser.add_argument("--out", type=Path, required=True, help="grid file to write")
    args = parser.parse_args(argv)
    try:
        trials = read_trials(args.trials)
        grid = []
        for path in args.grids:
            try:
                grid += json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise AnalysisError(f"cannot read a grid from {path}: {err}") from None
        left = unended(grid, trials)
    except AnalysisError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(left, indent=1) + "\n")
    print(f"{len(left)} of {len(grid)} runs not ended in {args.trials} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
