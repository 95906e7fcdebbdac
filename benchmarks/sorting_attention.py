"""Time one sorting training step at the seed's sizes: fused attention vs the explicit pattern.

"fused" is Trainer.train_step as training runs it: no hook watches the attention pattern, so
``Attention.mix`` calls PyTorch's scaled_dot_product_attention. "explicit" is the same step with
a do-nothing hook on ``blocks.0.attn.hook_pattern``, which makes the model compute the scores and
the pattern as tensors (what ``run_with_cache`` needs). Both are timed in this process,
interleaved round by round; the median of the rounds counts.

    python benchmarks/sorting_attention.py [--steps 3] [--rounds 3] [--examples-fixed 4000]
                                           [--examples-variable 2000]

The last lines are `speedup <setting>: X.XX` (explicit time / fused time).
"""

from __future__ import annotations

import argparse

import torch
from timing import print_comparison, side_by_side

from grokcore.config import RunConfig
from grokcore.trainer import Trainer

WATCH = [("blocks.0.attn.hook_pattern", lambda pattern, hook: pattern)]


def explicit_step(trainer: Trainer) -> None:
    with trainer.model.hooks(fwd_hooks=WATCH):
        trainer.train_step()


def bench(preset: str, n_examples: int, steps: int, rounds: int) -> tuple[float, float]:
    cfg = RunConfig.for_task("sorting", preset=preset, n_examples=n_examples, epochs=10 ** 9,
                             device="cpu")
    trainer = Trainer(cfg)
    print(f"{preset}: train tokens {tuple(trainer.train_x.shape)}")
    return side_by_side(lambda: explicit_step(trainer), trainer.train_step, steps, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the two")
    parser.add_argument("--examples-fixed", type=int, default=4000,
                        help="lists for sorting-seed-fixed (length 25; 80%% train)")
    parser.add_argument("--examples-variable", type=int, default=2000,
                        help="lists for sorting-seed-variable (length up to 100; 80%% train)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
    print_comparison([(preset, lambda preset=preset, n=n: bench(preset, n, args.steps,
                                                                  args.rounds))
                      for preset, n in (("sorting-seed-fixed", args.examples_fixed),
                                        ("sorting-seed-variable", args.examples_variable))],
                     "explicit", "fused")

if __name__ == "__main__":
    main()
