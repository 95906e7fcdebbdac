"""Sweep GCD (Charton 2023) over the base, the operand sampling and seeds.

    python sweeps/gcd.py --dry-run                     # bases 2 10 30 x three samplings
    python sweeps/gcd.py --base 10 30 210 --gcd-sampling loguniform_gcd --seeds 0 1 2
    python sweeps/gcd.py --preset gcd-seed --base 10 --gcd-sampling loguniform   # the seed's run

The grid is ``bases x gcd_sampling x seeds x the other options`` (every RunConfig option takes
one or more values). Defaults are the task's small CPU model (2+2 layers, d_model 64, minibatches
of 256, 30 epochs); ``--preset gcd-seed`` gives the seed's 4+4 layers, d_model 512, 8 heads,
FFN 2048, 400k log-uniform pairs. MLflow gets, per evaluation, ``gcd_n_learned`` (GCDs 1..100 with
>= 90% of their test pairs right), ``gcd_n_smooth_learned`` and ``gcd_rule_agreement`` (share of
predictions equal to Charton's rule) beside the usual metrics.
"""

from __future__ import annotations

import argparse
import sys

from grokcore.cli import OneLineErrorParser
from grokcore.config import ConfigError, RunConfig
from grokcore.tasks import PRESETS, TASKS
from sweeps.cli import (add_grid_options, add_sweep_options, sweep_main,
                        values_from_args)
from sweeps.grid import product_grid

ALWAYS = ("base", "gcd_sampling", "seed")
SWEEP_DEFAULTS = {**TASKS["gcd"].defaults, "task": "gcd", "base": None, "gcd_sampling": None,
                  "n_max": 10_000}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="python sweeps/gcd.py",
        description="Sweep GCD as translation on Ray Tune, one MLflow run per trial: how many "
                    "GCDs 1..100 are learned, by base and operand sampling.")
    parser.add_argument("--preset", default=None, choices=[p for p, (t, _) in PRESETS.items()
                                                           if t == "gcd"],
                        help="start from a named preset; options given still override it")
    add_grid_options(parser, ("gcd",), defaults=SWEEP_DEFAULTS,
                     default_help={"base": "2 10 30", "gcd_sampling": "uniform loguniform "
                                   "loguniform_gcd"})
    add_sweep_options(parser, experiment="gcd")
    return parser


def build_grid(args: argparse.Namespace, argv_given: set[str] | None = None) -> list[RunConfig]:
    values = values_from_args(args)
    if values.get("task", ["gcd"]) != ["gcd"]:
        raise ConfigError("this sweep trains task gcd only; leave out --task")
    if args.preset:  # the preset beneath the options the user gave (not beneath the defaults)
        given = _given_options()
        for name, value in PRESETS[args.preset][1].items():
            if name not in given:
                values[name] = [value]
    values.setdefault("base", [2, 10, 30])
    values.setdefault("gcd_sampling", ["uniform", "loguniform", "loguniform_gcd"])
    return product_grid(values)


def _given_options() -> set[str]:
    """RunConfig field names spelled out on the command line."""
    names = set()
    for arg in sys.argv[1:]:
        if arg.startswith("--"):
            names.add(arg[2:].split("=")[0].replace("-", "_"))
    return names


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    return sweep_main(build_parser(), build_grid, argv, always=ALWAYS)


if __name__ == "__main__":
    sys.exit(main())
