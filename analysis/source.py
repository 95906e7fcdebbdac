"""Where an analysis command's trials come from: a sweep in MLflow (``--experiment``,
``--tracking-uri``, ``--sweep``) or a trials CSV (``--trials``, written by ``python -m
analysis.grok_table --write-trials``), kept to the trials of some settings with ``--only
KEY=VALUE``. ``analysis.grok_table``, ``analysis.hazard`` and
``analysis.power`` share these options and this loading.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence


from analysis.publish import sweep_runs
from analysis.runs import AnalysisError, client_for, load_runs
from analysis.trials import param_value, read_trials, trials_from_runs
from grokcore.records import DEFAULT_TRACKING_URI, OUTCOME_VALUES


def add_source_arguments(parser: argparse.ArgumentParser, sweep_help: str | None = None) -> None:
    """--experiment | --trials (one of them required), --tracking-uri, --sweep."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--experiment", help="MLflow experiment name of the sweep")
    src.add_argument("--trials", type=Path,
                     help="a trials CSV (written by analysis.grok_table --write-trials) "
                          "instead of MLflow")
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
        return restrict(read_trials(args.trials), args.only), None
    client = client_for(args.tracking_uri)
    runs = sweep_runs(load_runs(client, args.experiment), args.experiment, args.sweep)
    return restrict(trials_from_runs(runs), args.only), client


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
