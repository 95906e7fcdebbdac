"""Time one variable-length sorting step: rows in length groups vs one padded batch.

"groups" is Trainer.train_step as training runs it: each row is cut after its last labelled
position and rows run in 8 groups of similar length (``NextTokens.n_groups``). "one batch" is
the same step with a single group, every row padded to the longest list. Both are timed in
this process, interleaved round by round; the median of the rounds counts.

    python benchmarks/sorting_groups.py [--steps 3] [--rounds 3] [--examples 2000] [--groups 8]

The last line is `speedup <setting>: X.XX` (one-batch time / groups time).
"""

from __future__ import annotations

import argparse

import torch
from timing import print_comparison, side_by_side

from grokcore.config import RunConfig
from grokcore.trainer import Trainer


def bench(preset: str, n_examples: int, groups: int, steps: int, rounds: int,
          ) -> tuple[float, float]:
    cfg = RunConfig.for_task("sorting", preset=preset, n_examples=n_examples, epochs=10 ** 9,
                             device="cpu")
    trainer = Trainer(cfg)
    objective = trainer.objective
    print(f"{preset}: train tokens {tuple(trainer.train_x.shape)}, {groups} groups")

    def with_groups(n: int) -> None:
        objective.n_groups = n
        trainer.train_step()

    return side_by_side(lambda: with_groups(1), lambda: with_groups(groups), steps, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the two")
    parser.add_argument("--examples", type=int, default=2000,
                        help="lists for sorting-seed-variable (length 2..100; 80%% train)")
    parser.add_argument("--groups", type=int, default=8, help="length groups (default: 8)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
    preset = "sorting-seed-variable"
    print_comparison([(preset, lambda: bench(preset, args.examples, args.groups, args.steps,
                                             args.rounds))], "one batch", "groups")


if __name__ == "__main__":
    main()
