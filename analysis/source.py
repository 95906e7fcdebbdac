"""Where an analysis command's trials come from: a sweep in MLflow (``--experiment``,
``--tracking-uri``, ``--sweep``) or trials CSVs (``--trials``, written by ``python -m
analysis.grok_table --write-trials``; several read as one), kept to the trials of some
settings with ``--only KEY=VALUE``. ``analysis.grok_table``, ``analysis.hazard`` and
``analysis.power`` share these options and this loading.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis.publish import sweep_runs
from analysis.runs import AnalysisError, client_for, load_runs
from analysis.trials import param_value, read_trials, run_keys_of, trials_from_runs
from grokcore.records import DEFAULT_TRACKING_URI, OUTCOME_VALUES


def add_source_arguments(parser: argparse.ArgumentParser, sweep_help: str | None = None,
                         several: bool = True) -> None:
    """--experiment | --trials (one of them required), --tracking-uri, --sweep. ``several``:
    --trials takes one or more CSVs (False for a command whose positional arguments follow)."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--experiment", help="MLflow experiment name of the sweep")
    src.add_argument("--trials", type=Path, nargs="+" if several else None, metavar="CSV",
                     help="a trials CSV (written by analysis.grok_table --write-trials) "
                          "instead of MLflow" + ("; several are read as one (a run in two "
                                                 "of them is an error)" if several else ""))
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"MLflow tracking URI (default: {DEFAULT_TRACKING_URI})")
    parser.add_argument("--sweep", default=None, metavar="NAME",
                        help=sweep_help or "only the trials of this sweep (its MLflow tag "
                                           "'sweep'; default: every trial of the experiment)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                        help="keep only the trials with this setting, e.g. split=pairs, or "
                             "with any of several, e.g. seed=0,1,2 (repeatable: all must hold)")


def load_trials(args: argparse.Namespace):
    """(trials, client): the trials named by the source options, and the MLflow client they
    came from (None for a CSV). Bad input raises ``analysis.runs.AnalysisError``."""
    if args.trials is not None:
        paths = args.trials if isinstance(args.trials, list) else [args.trials]
        return restrict(read_several(paths), args.only), None
    client = client_for(args.tracking_uri)
    runs = sweep_runs(load_runs(client, args.experiment), args.experiment, args.sweep)
    return restrict(trials_from_runs(runs), args.only), client


def read_several(paths: Sequence[Path]) -> pd.DataFrame:
    """The trials of one or more CSVs as one frame. A run (its row's settings, seed and data
    seed) in two of them would count twice, so that is an error naming both files."""
    frames = [read_trials(path) for path in paths]
    if len(frames) == 1:
        return frames[0]
    trials = pd.concat([f.assign(_file=i) for i, f in enumerate(frames)], ignore_index=True)
    names = trials[[k for k in run_keys_of(trials) if k in trials]].astype(str)
    twice = trials._file.groupby([names[k] for k in names]).transform("nunique") > 1
    if twice.any():
        files = " and ".join(str(paths[i]) for i in sorted(trials._file[twice].unique())[:2])
        run = ", ".join(f"{k}={v}" for k, v in names[twice].iloc[0].items())
        raise AnalysisError(f"{files} both hold the run {run}; give each run's CSV once "
                            "(a run would count twice)")
    return trials.drop(columns="_file")


def restrict(trials, only: Sequence[str], option: str = "--only", what: str = "a trials column"):
    """The trials whose column KEY has VALUE (or one of the comma-separated VALUEs), for each
    ``KEY=VALUE`` of ``only``. ``option`` and ``what`` name the option and its keys in errors
    (``analysis.hazard --where`` restricts its table of covariates the same way)."""
    for item in only:
        key, sep, value = item.partition("=")
        if not sep or key not in trials:
            known = ", ".join(c for c in trials.columns if c not in OUTCOME_VALUES)
            raise AnalysisError(f"{option} {item}: give KEY=VALUE with KEY {what} ({known})")
        wanted = {str(param_value(v)) for v in value.split(",")}
        trials = trials[trials[key].map(lambda v: str(param_value(v))).isin(wanted)]
        if trials.empty:
            raise AnalysisError(f"{option} {item}: no trial has {key} = {value}")
    return trials.reset_index(drop=True)
