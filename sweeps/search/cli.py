"""The search's command line: ``python -m sweeps.search`` (or ``grok-search``), and run_search.

Importing this module imports neither Ray nor Optuna nor MLflow: ``--help`` and ``--dry-run``
answer at once; :func:`run_search` imports the runner and the searcher.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from grokcore.cli import OneLineErrorParser
from grokcore.config import ConfigError, RunConfig
from grokcore.records import DEFAULT_TRACKING_URI
from sweeps.cli import add_sweep_options, print_where_to_look, resources_from_args
from sweeps.search.space import PARAMS, SearchSpace, build_space, fmt
from sweeps.search.summary import (SearchSummary, format_summary, log_summary_to_mlflow,
                                   summarize_study)

DEFAULT_STORAGE = "sqlite:///optuna.db"  # the Optuna study's


def run_search(space: SearchSpace, *, num_samples: int, seed: int = 0,
               experiment: str = "grok_search", name: str | None = None,
               tracking_uri: str = DEFAULT_TRACKING_URI, storage: str = "ray_results",
               optuna_storage: str = DEFAULT_STORAGE, study_name: str | None = None,
               address: str | None = None, resume: bool = False, resources=None,
               penalty_factor: float = 2.0, baseline: bool = True, startup_trials: int = 10,
               progress_every_s: float = 30.0, figures: str = "after") -> SearchSummary:
    """Run the search on Ray Tune through ``run_sweep``, then summarize it (and log that).

    ``resources``: a :class:`sweeps.sweep_plan.Resources` (default: one CPU a trial, two retries).
    """
    from sweeps.runner import run_sweep
    from sweeps.search.searcher import make_searcher
    from sweeps.sweep_plan import Resources, Search, new_sweep_name
    from sweeps.tracking import normalize_tracking_uri

    if num_samples < 1 or penalty_factor <= 1:
        raise ConfigError("need --num-samples >= 1 and --penalty-factor > 1 (a non-grokking "
                          "trial must score worse than any grok epoch)")
    optuna_storage = normalize_tracking_uri(optuna_storage)  # a relative SQLite path made absolute
    tracking_uri = normalize_tracking_uri(tracking_uri)
    if not resume:
        name = name or new_sweep_name(experiment)
    searcher = None
    if not resume:
        searcher = make_searcher(space, seed=seed, storage=optuna_storage,
                                 study_name=study_name or name, penalty_factor=penalty_factor,
                                 baseline=baseline, startup_trials=startup_trials)
    result = run_sweep(
        search=Search(base=space.base, search_alg=searcher, num_samples=num_samples),
        experiment=experiment, name=name, tracking_uri=tracking_uri, storage=storage,
        address=address, resume=resume, resources=resources or Resources(),
        progress_every_s=progress_every_s, figures=figures)
    summary = summarize_study(study_name or result.name, optuna_storage, result.name,
                              penalty_factor * space.base.epochs)
    summary.outcomes, summary.result = result.outcomes, result
    log_summary_to_mlflow(summary, result.tracking_uri, experiment)
    return summary


# ==== command line ===============================================================================

def build_parser() -> argparse.ArgumentParser:
    from grokcore.cli import add_config_options

    parser = OneLineErrorParser(
        prog="python -m sweeps.search", conflict_handler="resolve",
        description="Search (Optuna TPE on Ray Tune) for the settings that grok fastest; each "
                    "trial is an MLflow run, and a summary run holds the best settings and the "
                    "parameter importances. The RunConfig options set the base run.")
    add_config_options(parser)  # the base run; --seed is the sampler's below
    parser.add_argument("--model-seed", dest="seed", type=int, default=RunConfig.seed,
                        help=f"seed of the weight initialisation (default: {RunConfig.seed})")
    parser.set_defaults(stop_after_grok=3)
    add_sweep_options(parser, experiment="grok_search", grid=False)
    g = parser.add_argument_group("search")
    g.add_argument("--num-samples", type=int, default=20,
                   help="trials to run, the baseline included (default: 20)")
    g.add_argument("--seed", dest="search_seed", type=int, default=0,
                   help="seed of the TPE sampler (default: 0); with --max-concurrent 1 the "
                        "search repeats exactly")
    g.add_argument("--search", nargs="+", default=None, metavar="NAME",
                   help=f"settings to search (default: all of {', '.join(PARAMS)})")
    g.add_argument("--range", nargs="+", default=[], metavar="NAME=SPEC",
                   help="override a range: lr=1e-4:3e-2 (LOW:HIGH) or d_model=32,64 (choices)")
    g.add_argument("--penalty-factor", type=float, default=2.0,
                   help="a trial that does not grok scores this x --epochs (default: 2)")
    g.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="do not enqueue the base configuration as the first trial")
    g.add_argument("--startup-trials", type=int, default=10,
                   help="random trials before TPE models the results (default: 10)")
    g.add_argument("--optuna-storage", default=DEFAULT_STORAGE,
                   help=f"Optuna storage URL of the study (default: {DEFAULT_STORAGE})")
    g.add_argument("--study-name", default=None,
                   help="Optuna study name (default: the sweep's name); an existing one is "
                        "continued")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from grokcore.cli import config_from_args
    from grokcore.tasks import validate

    args = build_parser().parse_args(argv)
    try:
        if args.fail_at_epoch:
            raise ConfigError("--fail-at-epoch applies to grids, not to searches")
        ranges = {}
        for item in args.range:
            key, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"--range {item!r}: expected NAME=LOW:HIGH or NAME=A,B")
            ranges[key.strip()] = text.strip()
        base = validate(config_from_args(args))
        space = build_space(base, args.search, ranges)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print("searched settings:")
        for n, spec in space.params:
            cond = f"  (when {spec.only_if[0]}={spec.only_if[1]})" if spec.only_if else ""
            print(f"  {n:<22} {spec.describe()}{cond}")
        print(f"baseline (trial 0): {space.baseline_point()}")
        print(f"objective: threshold epoch (test accuracy held from it on), or "
              f"{fmt(args.penalty_factor * base.epochs)} when not reached; "
              f"{args.num_samples} trials")
        return 0

    from sweeps.sweep_plan import SweepError

    try:
        summary = run_search(
            space, num_samples=args.num_samples, seed=args.search_seed,
            experiment=args.experiment, name=args.name, tracking_uri=args.tracking_uri,
            storage=args.storage, optuna_storage=args.optuna_storage,
            study_name=args.study_name, address=args.address, resume=args.resume,
            resources=resources_from_args(args), penalty_factor=args.penalty_factor,
            baseline=args.baseline, startup_trials=args.startup_trials,
            progress_every_s=args.progress_every, figures=args.figures)
    except (ConfigError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(format_summary(summary, space))
    print(f"\nsweep {summary.sweep!r}, Optuna study {summary.study_name!r} in {summary.storage}; "
          f"the summary is in the sweep's MLflow run {summary.summary_run_id}")
    print_where_to_look(summary.result)
    unfinished = sum(getattr(o, "status", "") == "unfinished" for o in summary.outcomes)
    if unfinished:
        print(f"{unfinished} trials did not finish (interrupted; the summary above is partial): "
              f"run the same command with --resume --name {summary.sweep} to continue")
    failed = any(t.score is None for t in summary.trials)
    return 1 if failed or unfinished else 0
