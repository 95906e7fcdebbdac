"""On a machine with a GPU: does training on cuda compute what it computes on the CPU, and how much
faster is it? Three parts, all in this one process, so that the figures compare like with like.

1. agreement: the quick configuration (p 31, frac 0.5; README "A run that groks fast") trained on
   the CPU and on cuda from the same initial weights, in float64 and float32. It prints the largest
   relative difference of the training loss over the first evaluations and the memorization and
   grok epochs of each device; float64 must agree to 1e-8 early on and both dtypes must grok
   within two evaluations of the CPU's epoch, else the script exits 1.
2. fast path on cuda: ``Transformer.forward_last`` against the full forward pass at p 113, logits
   and gradients (the CPU test, tests/test_model.py, on the GPU).
3. speed: ms per training step, CPU at 1 thread (as a sweep trial trains) against cuda, side by
   side at the seed's configuration (p 113, frac 0.3); then cuda eager against cuda compiled; then
   the seed's run, (x + y) mod 113 with a 40,000-epoch budget, on cuda to its grok and stop.

    python benchmarks/gpu_check.py [--json results.json] [--skip-seed-run]

It exits 2 where there is no GPU. The last lines are ``speedup <case>: X.XX``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from timing import print_comparison, side_by_side

from grokcore.config import RunConfig
from grokcore.model import Transformer
from grokcore.tasks import build_dataset, validate
from grokcore.trainer import Trainer

QUICK = dict(p=31, frac_train=0.5, lr=3e-3, weight_decay=3.0, eval_every=10, epochs=3000,
             stop_after_grok=3)
SEED = dict(p=113, a=1, b=1, frac_train=0.3)  # lr 1e-3, weight decay 1: the defaults
EARLY_EVALS = 20  # the first 200 epochs: before chaotic growth of rounding differences


def run(cfg: RunConfig) -> tuple[dict, list[dict]]:
    trainer = Trainer(cfg)
    summary = trainer.run()
    return summary, trainer.history


def agreement() -> tuple[list[dict], bool]:
    rows, ok = [], True
    for dtype, tol in (("float64", 1e-8), ("float32", None)):
        cpu_sum, cpu_hist = run(RunConfig(**QUICK, dtype=dtype, device="cpu"))
        gpu_sum, gpu_hist = run(RunConfig(**QUICK, dtype=dtype, device="cuda"))
        early = [abs(c["train_loss"] - g["train_loss"]) / max(abs(c["train_loss"]), 1e-30)
                 for c, g in zip(cpu_hist[:EARLY_EVALS], gpu_hist[:EARLY_EVALS])]
        row = {"dtype": dtype, "early_rel_loss_diff": max(early),
               **{f"{dev}_{key}": s[key] for dev, s in (("cpu", cpu_sum), ("cuda", gpu_sum))
                  for key in ("memorization_epoch", "grok_epoch", "final_test_acc", "seconds")}}
        both = row["cpu_grok_epoch"] is not None and row["cuda_grok_epoch"] is not None
        row["agrees"] = (both and abs(row["cpu_grok_epoch"] - row["cuda_grok_epoch"])
                         <= 2 * QUICK["eval_every"] and (tol is None or row["early_rel_loss_diff"] < tol))
        ok &= row["agrees"]
        print(f"agreement {dtype}: loss rel. diff over the first {EARLY_EVALS} evaluations "
              f"{row['early_rel_loss_diff']:.2e}; memorized cpu {row['cpu_memorization_epoch']} "
              f"cuda {row['cuda_memorization_epoch']}; grokked cpu {row['cpu_grok_epoch']} "
              f"cuda {row['cuda_grok_epoch']}; {'agrees' if row['agrees'] else 'DISAGREES'}",
              flush=True)
        rows.append(row)
    return rows, ok


def fast_path() -> list[dict]:
    rows = []
    for dtype in ("float64", "float32"):
        cfg = validate(RunConfig(**SEED, dtype=dtype))
        ds = build_dataset(cfg)
        model = Transformer.for_run(cfg, ds).cuda()
        tokens, labels = ds.inputs.cuda(), ds.labels.cuda()
        full, fast = model(tokens)[:, -1], model.forward_last(tokens)
        params = [model.W_E, model.W_U]
        g_full = torch.autograd.grad(torch.nn.functional.cross_entropy(full, labels), params)
        g_fast = torch.autograd.grad(torch.nn.functional.cross_entropy(fast, labels), params)
        row = {"dtype": dtype, "logits_max_abs_diff": (full - fast).abs().max().item(),
               "grad_max_abs_diff": max((a - b).abs().max().item() for a, b in zip(g_full, g_fast))}
        print(f"fast path on cuda {dtype}: logits {row['logits_max_abs_diff']:.1e}, "
              f"gradients {row['grad_max_abs_diff']:.1e} (max abs difference)", flush=True)
        rows.append(row)
    return rows


def step_speed(dtype: str, steps: int, rounds: int) -> tuple[float, float]:
    cfg = RunConfig(**SEED, dtype=dtype, epochs=10 ** 9, compile="off")
    cpu, gpu = Trainer(cfg.replace(device="cpu")), Trainer(cfg.replace(device="cuda"))

    def gpu_step():
        gpu.train_step()
        torch.cuda.synchronize()  # count the kernels, not their launch

    return side_by_side(cpu.train_step, gpu_step, steps, rounds, warmup=3)


def compile_speed(steps: int, rounds: int) -> tuple[float, float]:
    cfg = RunConfig(**SEED, epochs=10 ** 9, device="cuda")
    eager, compiled = Trainer(cfg.replace(compile="off")), Trainer(cfg.replace(compile="on"))
    started = time.perf_counter()
    compiled.train_step()
    torch.cuda.synchronize()
    print(f"compile on cuda: first compiled step {time.perf_counter() - started:.1f} s", flush=True)

    def timed(trainer):
        def step():
            trainer.train_step()
            torch.cuda.synchronize()
        return step

    return side_by_side(timed(eager), timed(compiled), steps * 10, rounds, warmup=3)


def seed_run() -> dict:
    summary, _ = run(RunConfig(**SEED, epochs=40_000, stop_after_grok=5, device="cuda"))
    keep = ("outcome", "memorization_epoch", "grok_epoch", "epochs_run", "final_test_acc", "seconds")
    row = {key: summary[key] for key in keep}
    print("seed run on cuda: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="CPU steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--skip-seed-run", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: no GPU here (torch.cuda.is_available() is False); run this on a GPU machine",
              file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(1)  # the CPU side as a sweep trial runs: one core
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, CPU at 1 thread", flush=True)
    results: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    results["agreement"], ok = agreement()
    results["fast_path"] = fast_path()
    speeds = {}

    def keep(name, measure):
        def measured():
            speeds[name] = measure()
            return speeds[name]
        return name, measured

    print_comparison([keep(f"cuda {dtype}", lambda dtype=dtype: step_speed(dtype, args.steps,
                                                                           args.rounds))
                      for dtype in ("float32", "float64")], "cpu(1 thread)", "cuda")
    print_comparison([keep("cuda compile float32", lambda: compile_speed(args.steps, args.rounds))],
                     "eager", "compiled")
    results["ms_per_step"] = {name: {"baseline": b, "candidate": c} for name, (b, c) in speeds.items()}
    if not args.skip_seed_run:
        results["seed_run"] = seed_run()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    if not ok:
        sys.exit("error: training on cuda disagrees with the CPU (see the agreement lines)")


if __name__ == "__main__":
    main()
