"""Time one sorting training step at the seed's sizes: grokcore's objective vs the plain one.

"plain" is the whole padded batch through ``model(tokens)``, every position, then the loss at the
labelled positions, backward and the AdamW step. "grokcore" is Trainer.train_step, whose
objective cuts each row after its last label, runs rows in length groups and computes the last
block only from the first labelled position on (``NextTokens``, ``Transformer.forward_from``).
Both are timed in this process, interleaved round by round; the median of the rounds counts.

    python benchmarks/sorting_speed.py [--steps 3] [--rounds 3] [--examples-fixed 4000]
                                       [--examples-variable 2000]

The last lines are `speedup <setting>: X.XX` (plain time / grokcore time).
"""

from __future__ import annotations

import argparse

import torch
from timing import print_comparison, side_by_side

from grokcore.config import RunConfig
from grokcore.objectives import IGNORE
from grokcore.trainer import Trainer


def plain_step(trainer: Trainer) -> None:
    x, y = trainer.train_x, trainer.train_y
    keep = y != IGNORE
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.objective.loss_fn(trainer.model(x)[keep], y[keep]).backward()
    trainer.optimizer.step()


def bench(preset: str, n_examples: int, steps: int, rounds: int) -> tuple[float, float]:
    cfg = RunConfig.for_task("sorting", preset=preset, n_examples=n_examples, epochs=10 ** 9,
                             device="cpu")
    trainer = Trainer(cfg)
    print(f"{preset}: train tokens {tuple(trainer.train_x.shape)}")
    return side_by_side(lambda: plain_step(trainer), trainer.train_step, steps, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the two")
    parser.add_argument("--examples-fixed", type=int, default=4000,
                        help="lists for sorting-seed-fixed (length 25; 80%% train)")
    parser.add_argument("--examples-variable", type=int, default=2000,
                        help="lists for sorting-seed-variable (length 2..100; 80%% train)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
    cases = (("sorting-seed-fixed", args.examples_fixed),
             ("sorting-seed-variable", args.examples_variable))
    print_comparison([(preset, lambda preset=preset, n=n: bench(preset, n, args.steps,
                                                                  args.rounds))
                      for preset, n in cases], "plain", "grokcore")


if __name__ == "__main__":
    main()
