"""Time one training step at the canonical configuration (p 113, frac 0.3), fast path vs plain.

"plain" is the same model run the ordinary way: the full-sequence forward pass (every position,
every hook point), logits of the last position, the same float64 loss, backward and AdamW step.
"grokcore" is Trainer.train_step, which uses the exact fast path. Both are timed in this process,
interleaved round by round so that machine noise hits both alike; the median of the rounds counts.

Then the compiled step (RunConfig compile=on, torch.compile with Inductor) against the eager one,
both Trainer.train_step at 1 thread, as sweep trials run; the first compiled step's time
(compilation, less with a warm Inductor cache) is printed apart and not counted.

    python benchmarks/train_speed.py [--steps 20] [--rounds 5] [--p 113] [--compile-only]

The last lines are `speedup float32: X.XX` and `speedup float64: X.XX` (plain time / grokcore time)
and `speedup compile float32: X.XX` (eager time / compiled time).
"""

from __future__ import annotations

import argparse
import time

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
    trainer = Trainer(RunConfig(p=p, frac_train=0.3, dtype=dtype, epochs=10 ** 9, device="cpu",
                                compile="off"))
    return side_by_side(lambda: plain_step(trainer), trainer.train_step, steps, rounds, warmup=3)


def bench_compile(p: int, steps: int, rounds: int) -> tuple[float, float]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = RunConfig(p=p, frac_train=0.3, epochs=10 ** 9, device="cpu")
        eager = Trainer(cfg.replace(compile="off"))
        compiled = Trainer(cfg.replace(compile="on"))
        started = time.perf_counter()
        compiled.train_step()
        print(f"compile float32: first compiled step {time.perf_counter() - started:.1f} s "
              "(compilation; Inductor's cache on disk makes later processes faster)", flush=True)
        return side_by_side(eager.train_step, compiled.train_step, steps, rounds, warmup=3)
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, default=113)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, alternating the two")
    parser.add_argument("--compile-only", action="store_true",
                        help="only the compiled against the eager step")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, p={args.p}, frac 0.3")
    if not args.compile_only:
        plain_vs_grokcore(args)
    print_comparison([("compile float32", lambda: bench_compile(args.p, args.steps, args.rounds))],
                     "eager", "compiled")


def plain_vs_grokcore(args: argparse.Namespace) -> None:
    print_comparison([(dtype, lambda dtype=dtype: bench(dtype, args.p, args.steps, args.rounds))
                      for dtype in ("float32", "float64")], "plain", "grokcore",
                     note=lambda plain, fast: f"   40k epochs: plain {plain * 40:.0f} s, "
                                              f"grokcore {fast * 40:.0f} s")


if __name__ == "__main__":
    main()
