"""Sweep sorting over list length, repeats, positional embeddings and heads.

    python sweeps/sorting.py --dry-run                    # lengths 5 10 x repeats x pos-embed, 1 head
    python sweeps/sorting.py --list-len 25 --n-max 47 --n-heads 1 2 4 --seeds 0 1
    python sweeps/sorting.py --list-len 100 --n-max 199 --variable-len on --d-model 128 --d-head 128

The grid is ``list_len x repeats x pos_embed x variable_len x n_heads x the other options``.
``--repeats``, ``--pos-embed`` and ``--variable-len`` take one or both of ``on off`` here. The
model is the task's 1-layer attention-only transformer; MLflow gets per evaluation the per-token
and full-sequence accuracies (``test_acc``, ``test_seq_acc``) and the OV copying score of each
head (``copying_score_h<i>``) and their mean (``copying_score``). Grokking is judged on per-token
test accuracy (``grok_acc``).
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

ALWAYS = ("list_len", "repeats", "pos_embed", "variable_len", "n_heads")
SWITCHES = {"repeats": ["off", "on"], "pos_embed": ["on", "off"], "variable_len": ["off"]}
SWEEP_DEFAULTS = {**TASKS["sorting"].defaults, "task": "sorting", "list_len": None,
                  "n_max": 50, "n_examples": 5000}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="python sweeps/sorting.py",
        description="Sweep sorting on Ray Tune, one MLflow run per trial, with the OV copying "
                    "score of each head.")
    for name, default in SWITCHES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, nargs="+",
                            choices=("on", "off"), default=default,
                            help=f"{name} on, off or both (default: {' '.join(default)})")
    add_grid_options(parser, ("sorting",), defaults=SWEEP_DEFAULTS, skip=SWITCHES,
                     default_help={"list_len": "5 10"})
    add_sweep_options(parser, experiment="sorting")
    return parser


def build_grid(args: argparse.Namespace) -> list[RunConfig]:
    values = values_from_args(args)
    if values.get("task", ["sorting"]) != ["sorting"]:
        raise ConfigError("this sweep trains task sorting only; leave out --task")
    values.setdefault("list_len", [5, 10])
    for name in SWITCHES:
        values[name] = [state == "on" for state in dict.fromkeys(getattr(args, name))]
    return product_grid(values)


def main(argv: list[str] | None = None) -> int:
    return sweep_main(build_parser(), build_grid, argv, always=ALWAYS)


if __name__ == "__main__":
    sys.exit(main())
