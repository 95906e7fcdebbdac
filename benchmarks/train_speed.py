"""Time one training step at the canonical configuration (p 113, frac 0.3), fast path vs plain.

"plain" is the same model run the ordinary way: the full-sequence forward pass (every position,
every hook point), logits of the last position, the same float64 loss, backward and AdamW step.
"grokcore" is Trainer.train_step, which uses the exact fast path. Both are timed in this process,
interleaved round by round so that machine noise hits both alike; the median of the rounds counts.

    python benchmarks/train_speed.py [--steps 20] [--rounds 5] [--p 113]

The last lines are `speedup float32: X.XX` and `speedup float64: X.XX` (plain time / grokcore time).
"""

from __future__ import annotations

import argparse

import torch
from timing import print_comparison, side_by_side

from grokcore.config import RunConfig
from grokcore.optim import cross_entropy
from grokcore.trainer import Trainer


def plain_step(trainer: Trainer) -> None:
    trainer.optimizer.zero_grad(set_to_none=True)
    logits = trainer.model(trainer.train_x)[:, -1]
    cross_entropy(logits, trainer.train_y, trainer.loss_dtype).backward()
    trainer.optimizer.step()


def bench(dtype: str, p: int, steps: int, rounds: int) -> tuple[float, float]:
    trainer = Trainer(RunConfig(p=p, frac_train=0.3, dtype=dtype, epochs=10 ** 9, device="cpu"))
    return side_by_side(lambda: plain_step(trainer), trainer.train_step, steps, rounds, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=113)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, alternating the two")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, p={args.p}, frac 0.3")
    print_comparison([(dtype, lambda dtype=dtype: bench(dtype, args.p, args.steps, args.rounds))
                      for dtype in ("float32", "float64")], "plain", "grokcore",
                     note=lambda plain, fast: f"   40k epochs: plain {plain * 40:.0f} s, "
                                              f"grokcore {fast * 40:.0f} s")


if __name__ == "__main__":
    main()
