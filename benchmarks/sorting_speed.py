"""Time one sorting training step at the seed's sizes: grokcore's step vs the plain one, and the
fused attention kernel vs the explicit pattern.

* "plain" is the whole padded batch through ``model(tokens)``, every position, then the loss at
  the labelled positions, backward and the AdamW step. "grokcore" is Trainer.train_step, whose
  objective cuts each row after its last label, runs rows in length groups and computes the last
  block only from the first labelled position on (``NextTokens``, ``Transformer.forward_from``).
* "fused" is Trainer.train_step as training runs it: no hook watches the attention pattern, so
  ``Attention.mix`` calls PyTorch's scaled_dot_product_attention. "explicit" is the same step
  with a do-nothing hook on ``blocks.0.attn.hook_pattern``, which makes the model compute the
  scores and the pattern as tensors (what ``run_with_cache`` needs).

Each pair is timed in this process, interleaved round by round; the median of the rounds counts.

    python benchmarks/sorting_speed.py [--steps 3] [--rounds 3] [--examples-fixed 4000]
                                       [--examples-variable 2000]

The last lines of each comparison are `speedup <setting>: X.XX` (baseline time / new time).
"""

from __future__ import annotations

import argparse

import torch
from timing import print_comparison, side_by_side

from grokcore.objectives import IGNORE
from grokcore.tasks import config_for
from grokcore.trainer import Trainer

WATCH = [("blocks.0.attn.hook_pattern", lambda pattern, hook: pattern)]


def plain_step(trainer: Trainer) -> None:
    x, y = trainer.train_x, trainer.train_y
    keep = y != IGNORE
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.objective.loss_fn(trainer.model(x)[keep], y[keep]).backward()
    trainer.optimizer.step()


def explicit_step(trainer: Trainer) -> None:
    with trainer.model.hooks(fwd_hooks=WATCH):
        trainer.train_step()


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
    trainers = {}
    for preset, n in (("sorting-seed-fixed", args.examples_fixed),
                      ("sorting-seed-variable", args.examples_variable)):
        trainers[preset] = Trainer(config_for("sorting", preset=preset, n_examples=n,
                                                      epochs=10 ** 9, device="cpu",
                                                      compile="off"))
        print(f"{preset}: train tokens {tuple(trainers[preset].train_x.shape)}")

    def timed(baseline, preset):
        trainer = trainers[preset]
        return lambda: side_by_side(lambda: baseline(trainer), trainer.train_step, args.steps,
                                    args.rounds)

    print_comparison([(p, timed(plain_step, p)) for p in trainers], "plain", "grokcore")
    print_comparison([(p, timed(explicit_step, p)) for p in trainers], "explicit", "fused")


if __name__ == "__main__":
    main()
