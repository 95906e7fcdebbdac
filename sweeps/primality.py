"""Sweep primality (or coprimality) over dtype, encoding, base, N and seeds: the seed's float64 question.

    python sweeps/primality.py --dry-run       # float32 vs float64 x token / base-10 / base-2 digits
    python sweeps/primality.py --n-max 1000 --seeds 0 1 2 --epochs 20000
    python sweeps/primality.py --task coprimality --n-max 60 --bases 2 3 10

The grid is ``dtypes x encodings (token, then digits in each --bases) x the other options``.
Each arm is float32 or float64 throughout: the loss's log-softmax follows ``dtype`` unless
``--loss-dtype`` is given (the seed's question is whether float64 training shows a phase
transition that float32 does not). The signals read balanced accuracy (primality is ~83%
composite), so the threshold (grok_acc) is on balanced test accuracy. Defaults are the task's (the
seed's model and optimiser, sequential split at 0.7); every RunConfig option takes one or more
values, as in every sweep script.
"""

from __future__ import annotations

import argparse
import sys

from grokcore.cli import OneLineErrorParser
from grokcore.config import ConfigError, RunConfig
from grokcore.tasks import TASKS
from sweeps.cli import (add_grid_options, add_sweep_options, sweep_main,
                        values_from_args)
from sweeps.grid import product_grid

ALWAYS = ("task", "encoding", "base", "n_max", "dtype", "seed")
SWEEP_DEFAULTS = {**TASKS["primality"].defaults, "task": None, "dtype": None, "loss_dtype": None,
                  "encoding": None, "base": None, "n_max": None, "epochs": 10_000,
                  "eval_every": 100}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="python sweeps/primality.py",
        description="Sweep primality/coprimality on Ray Tune, one MLflow run per trial: float32 "
                    "vs float64, one token per number vs base-B digits.")
    parser.add_argument("--bases", type=int, nargs="+", default=[10, 2],
                        help="bases of the digit encodings in the grid (default: 10 2)")
    add_grid_options(parser, ("primality", "coprimality"), defaults=SWEEP_DEFAULTS,
                     default_help={"task": "primality", "dtype": "float32 float64",
                                   "loss_dtype": "as dtype", "encoding": "token digits",
                                   "base": "see --bases", "n_max": "the task's (1000; 100 for "
                                   "coprimality)"})
    add_sweep_options(parser, experiment="primality")
    return parser


def build_grid(args: argparse.Namespace) -> list[RunConfig]:
    values = values_from_args(args)
    task = values.pop("task", ["primality"])
    if len(task) != 1 or task[0] not in ("primality", "coprimality"):
        raise ConfigError(f"--task {' '.join(task)}: this sweep takes one of primality, coprimality")
    task = task[0]
    if task == "coprimality":  # its own defaults for what the user did not give
        for name, value in TASKS[task].defaults.items():
            if getattr(args, name) == [SWEEP_DEFAULTS.get(name)]:
                values[name] = [value]
    values.setdefault("dtype", ["float32", "float64"])
    values.setdefault("n_max", [TASKS[task].default_n_max])
    if args.base is not None:
        args.bases = args.base
    encodings = values.pop("encoding", ["token", "digits"])
    rows = []
    for encoding in encodings:
        bases = [10] if encoding == "token" else args.bases  # the base is unused for tokens
        rows += [{"encoding": encoding, "base": b} for b in bases]
    values.pop("base", None)
    configs = []
    for cfg in product_grid({**values, "task": [task]}, rows):
        if "loss_dtype" not in values:
            cfg = cfg.replace(loss_dtype=cfg.dtype)
        configs.append(cfg)
    return configs


def main(argv: list[str] | None = None) -> int:
    return sweep_main(build_parser(), build_grid, argv, always=ALWAYS)


if __name__ == "__main__":
    sys.exit(main())
