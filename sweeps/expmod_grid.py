"""Sweep (x^a + y^b) mod p over exponent pairs, primes, dtypes, training fractions and seeds.

    python sweeps/expmod_grid.py --dry-run                  # the paper's Table 1: ten (a, b, p) rows
    python sweeps/expmod_grid.py --primes 31 --frac 0.5 --lr 3e-3 --weight-decay 3 --epochs 3000
    python sweeps/expmod_grid.py --a 1 3 5 --b 1 3 5 --seeds 0 1 --address auto

Exponents: ``--pairs 1,1 3,3 7,7`` lists (a, b) pairs; ``--a 1 3 --b 1 3`` takes the product of
the two lists; neither gives Table 1's rows, each at its own prime unless ``--primes`` is given
(then Table 1's distinct pairs at each of those primes). Every other run setting takes one or more
values, and the grid is the product of everything.
"""

from __future__ import annotations

import argparse
import sys

from grokcore.cli import OneLineErrorParser
from grokcore.config import ConfigError, RunConfig
from sweeps.cli import (add_grid_options, add_sweep_options, sweep_main,
                        values_from_args)
from sweeps.grid import product_grid

# Table 1 of the seed paper: (a, b, p) and the grok epoch it reports (None: no grok).
TABLE1 = [
    (1, 1, 113, 18100), (3, 3, 113, 10000), (3, 4, 113, 70000), (5, 4, 113, 5000),
    (5, 5, 113, 3000), (7, 7, 113, None), (7, 7, 101, 2500), (9, 9, 113, 1600),
    (4, 5, 113, 1100), (8, 9, 113, 600),
]
# `--demo`: a grid that finishes in a few minutes on 2 CPU cores, so the first command shows the
# whole platform: Table 1's nine distinct pairs at p = 31 with settings that grok fast there.
DEMO = {"p": [31], "frac_train": [0.5], "lr": [3e-3], "weight_decay": [3.0], "epochs": [1500],
        "eval_every": [20], "measure_every": [500], "experiment": "expmod_demo"}
# Progress measures every 1000 epochs (and at the end): about 0.5 s each at p = 113.
SWEEP_DEFAULTS = {"stop_after_grok": 5, "measure_every": 1000, "p": None, "a": None, "b": None}


def parse_pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pair A,B such as 3,4") from None
    return a, b


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="python sweeps/expmod_grid.py",
        description="Sweep (x^a + y^b) mod p on Ray Tune, one MLflow run per trial. With no "
                    "exponent options the grid is the seed paper's Table 1 (ten (a, b, p) rows).")
    parser.add_argument("--pairs", type=parse_pair, nargs="+", metavar="A,B", default=None,
                        help="exponent pairs, e.g. 1,1 3,3 7,7 (crossed with --primes)")
    add_grid_options(parser, ("expmod",), defaults=SWEEP_DEFAULTS,
                     default_help={"p": "Table 1's primes, else 113", "a": "Table 1's rows",
                                   "b": "Table 1's rows"})
    add_sweep_options(parser, experiment="expmod_grid")
    parser.add_argument("--demo", action="store_true",
                        help="a demo grid that finishes in a few minutes on 2 cores: Table 1's "
                             "pairs at p=31, frac 0.5, lr 3e-3, weight decay 3, 1500 epochs, "
                             "experiment expmod_demo (any option given still wins)")
    return parser


def build_grid(args: argparse.Namespace) -> list[RunConfig]:
    values = values_from_args(args)
    values.setdefault("task", ["expmod"])
    if args.pairs and (args.a or args.b):
        raise ConfigError("give --pairs or --a/--b, not both")
    if args.pairs:
        rows = [{"a": a, "b": b} for a, b in args.pairs]
    elif args.a or args.b:
        rows = [{}]  # a and b come from the product (the one not given stays 1)
    elif args.p:
        rows = list({(a, b): {"a": a, "b": b} for a, b, _, _ in TABLE1}.values())
    else:
        rows = [{"a": a, "b": b, "p": p} for a, b, p, _ in TABLE1]
    values.setdefault("p", [113])
    return product_grid(values, rows)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--demo" in argv:  # the demo's values become the defaults, so explicit options still win
        parser.set_defaults(**DEMO)
    return sweep_main(parser, build_grid, argv)


if __name__ == "__main__":
    sys.exit(main())
