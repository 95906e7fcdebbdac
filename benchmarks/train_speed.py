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
import statistics
import time

import torch

from grokcore.config import RunConfig
from grokcore.optim import cross_entropy
from grokcore.trainer import Trainer


def plain_step(trainer: Trainer) -> None:
    trainer.optimizer.zero_grad(set_to_none=True)
    logits = trainer.model(trainer.train_x)[:, -1]
    cross_entropy(logits, trainer.train_y, trainer.loss_dtype).backward()
    trainer.optimizer.step()


def ms_per_step(step, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * 1000


def bench(dtype: str, p: int, steps: int, rounds: int) -> tuple[float, float]:
    trainer = Trainer(RunConfig(p=p, frac_train=0.3, dtype=dtype, epochs=10 ** 9, device="cpu"))
    fast = lambda: trainer.train_step()  # noqa: E731
    plain = lambda: plain_step(trainer)  # noqa: E731
    for step in (fast, plain):  # warm up allocator and kernels
        ms_per_step(step, 3)
    fast_ms, plain_ms = [], []
    for _ in range(rounds):
        fast_ms.append(ms_per_step(fast, steps))
        plain_ms.append(ms_per_step(plain, steps))
    return statistics.median(plain_ms), statistics.median(fast_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=113)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, alternating the two")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, p={args.p}, frac 0.3")
    results = {}
    for dtype in ("float32", "float64"):
        plain, fast = bench(dtype, args.p, args.steps, args.rounds)
        results[dtype] = plain / fast
        print(f"{dtype}: plain {plain:7.1f} ms/step   grokcore {fast:7.1f} ms/step   "
              f"40k epochs: plain {plain * 40:.0f} s, grokcore {fast * 40:.0f} s")
    for dtype, speedup in results.items():
        print(f"speedup {dtype}: {speedup:.2f}")


if __name__ == "__main__":
    main()
