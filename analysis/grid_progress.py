"""How far the runs of grid files got: per grid file, its runs, how many ended and how (by
status), and how many are left, read from a trials CSV or an MLflow experiment.

    python -m analysis.grid_progress --trials results/phase/trials.csv results/phase/grid-*.json

A grid file is a JSON list of run configurations (``sweeps/expmod_grid.py --write-grid``; the
decisive runs' parts). A run of it has *ended* when a trial line with its settings has a status
of ``grokcore.records.DONE_STATUSES`` (reached, not_reached, diverged), as
``--skip-ended`` counts them; a failed or unfinished line, or none, leaves it to run. A grid run is
matched to trial lines by the settings that name its table row (``analysis.trials.config_keys``),
its seed and its data seed: the trial lines hold no more of a configuration, so two grid files
that differ only in other settings (the learning rate, say) cannot be told apart here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis.runs import AnalysisError, fail
from analysis.source import add_source_arguments, load_trials
from analysis.text_table import format_table
from analysis.trials import param_value, run_keys
from grokcore.cli import OneLineErrorParser
from grokcore.config import ConfigError
from grokcore.records import DONE_STATUSES


def _key(values) -> tuple:
    return tuple(str(param_value(v)) for v in values)


def progress(trials: pd.DataFrame, grid: Sequence) -> dict[str, int]:
    """For the RunConfigs of one grid: ``runs``, ``ended``, the ended runs by status, ``left``."""
    status_of: dict[tuple, str] = {}
    for task in {cfg.task for cfg in grid}:
        keys = run_keys(task)
        missing = [k for k in keys if k not in trials]
        if missing:
            raise AnalysisError(f"the trials lack {', '.join(missing)}; write them again with "
                                "python -m analysis.grok_table --write-trials")
        done = trials[(trials.task == task) & trials.status.isin(DONE_STATUSES)]
        for values, status in zip(done[list(keys)].itertuples(index=False), done.status):
            status_of[_key(values)] = status
    counts = {"runs": len(grid), "ended": 0, **{s: 0 for s in DONE_STATUSES}}
    for cfg in grid:
        status = status_of.get(_key(getattr(cfg, k) for k in run_keys(cfg.task)))
        if status:
            counts["ended"] += 1
            counts[status] += 1
    counts["left"] = counts["runs"] - counts["ended"]
    return counts


def render(rows: list[tuple[str, dict[str, int]]]) -> str:
    header = ["grid", *rows[0][1]]
    total = {k: sum(r[k] for _, r in rows) for k in rows[0][1]}
    cells = [[name, *r.values()] for name, r in [*rows, ("all", total)]]
    return (format_table(header, cells, align="lr", strip=True) + "\n\nended: a trial line "
            "with the run's settings, seed and data seed has status " + ", ".join(DONE_STATUSES)
            + "; left: none has (failed, unfinished or not yet started).\n")


def build_parser():
    parser = OneLineErrorParser(
        prog="python -m analysis.grid_progress",
        description="How many runs of each grid file ended (by status) and how many are left, "
                    "from a trials CSV or an MLflow experiment.")
    add_source_arguments(parser, several=False)  # the grids follow as positionals
    parser.add_argument("grids", nargs="+", type=Path, metavar="GRID",
                        help="grid files (JSON lists of run configurations, as "
                             "sweeps/expmod_grid.py --write-grid writes them)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from grokcore.pack_grid import load_grid

    try:
        trials, _ = load_trials(args)
        rows = [(path.name, progress(trials, load_grid(path))) for path in args.grids]
    except (AnalysisError, ConfigError) as err:
        return fail(str(err))
    sys.stdout.write(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
