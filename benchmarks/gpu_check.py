"""On a machine with a GPU: does training on cuda compute what it computes on the CPU, and how much
faster is it? Three parts, all in this one process, so that the figures compare like with like.

1. agreement: the quick configuration (p 31, frac 0.5; README "A run that groks fast") trained on
   the CPU and on cuda from the same initial weights, in float64 and float32, with a control: the
   CPU run from weights nudged by one unit in the last place, which shows what rounding alone
   does to the history. It prints the largest relative difference of the training loss from the
   CPU's over the first evaluations, the epoch where the histories part, and the memorization and
   grok epochs. cuda may differ from the CPU by no more than 10x the control (1e-8 at least) and
   must memorize and grok (float64: within two evaluations of the CPU's epoch); else exit 1.
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
EARLY_EVALS = 20  # the first 200 epochs of the quick config (an evaluation every 10)


def run(cfg: RunConfig, trainer: Trainer | None = None) -> tuple[dict, list[dict]]:
    """(summary, history) of training ``cfg`` (or the ``trainer`` given, built from it)."""
    trainer = trainer or Trainer(cfg)
    summary = trainer.run()
    return summary, trainer.history


def loss_differences(a: list[dict], b: list[dict]) -> list[tuple[int, float]]:
    """(epoch, relative difference of the training losses) at each evaluation of both."""
    return [(x["epoch"], abs(x["train_loss"] - y["train_loss"]) / max(abs(x["train_loss"]), 1e-30))
            for x, y in zip(a, b)]


def parting_epoch(a: list[dict], b: list[dict], rel: float = 1e-4) -> int | None:
    """The first evaluated epoch whose training losses differ by more than ``rel`` (relative)."""
    return next((epoch for epoch, diff in loss_differences(a, b) if diff > rel), None)


def nudged(cfg: RunConfig) -> tuple[dict, list[dict]]:
    """The CPU run with about half the initial weights moved by one unit in the last place: what
    rounding alone does to this run's history, with no change of device or code."""
    trainer = Trainer(cfg.replace(device="cpu"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in trainer.model.parameters():
            flip = torch.randint(0, 2, param.shape, generator=gen).bool()
            up = torch.nextafter(param, torch.full_like(param, float("inf")))
            param.copy_(torch.where(flip, up, param))
    return run(cfg, trainer)


def early_diff(a: list[dict], b: list[dict]) -> float:
    return max(diff for _, diff in loss_differences(a[:EARLY_EVALS], b[:EARLY_EVALS]))


def agreement() -> tuple[list[dict], bool]:
    """cuda against the CPU; the control is the CPU run from weights nudged by one ulp."""
    rows, ok = [], True
    for dtype in ("float64", "float32"):
        cfg = RunConfig(**QUICK, dtype=dtype)
        runs = {"cpu": run(cfg.replace(device="cpu")), "cpu_1ulp": nudged(cfg),
                "cuda": run(cfg.replace(device="cuda"))}
        cpu_hist = runs["cpu"][1]
        row = {"dtype": dtype,
               **{f"{dev}_{key}": s[key] for dev, (s, _) in runs.items()
                  for key in ("memorization_epoch", "threshold_epoch", "final_test_acc",
                              "seconds")}}
        for dev in ("cpu_1ulp", "cuda"):
            row[f"{dev}_early_rel_loss_diff"] = early_diff(cpu_hist, runs[dev][1])
            row[f"{dev}_parts_from_cpu_at"] = parting_epoch(cpu_hist, runs[dev][1])
        grok = [row[f"{d}_threshold_epoch"] for d in runs]
        mem = [row[f"{d}_memorization_epoch"] for d in runs]
        # cuda may differ from the CPU by what one ulp of rounding makes of this run, no more
        # (10x the control's difference, or 1e-8 where the control is below it), and must
        # memorize and grok; float64 must also grok within two evaluations of the CPU.
        bound = max(10 * row["cpu_1ulp_early_rel_loss_diff"], 1e-8)
        row["agrees"] = (row["cuda_early_rel_loss_diff"] <= bound and None not in grok
                         and len(set(mem)) == 1)
        if dtype == "float64":
            row["agrees"] &= abs(grok[2] - grok[0]) <= 2 * QUICK["eval_every"]
        ok &= row["agrees"]
        print(f"agreement {dtype}: largest loss rel. diff from the CPU over the first {EARLY_EVALS} "
              f"evaluations: cuda {row['cuda_early_rel_loss_diff']:.1e}, 1-ulp control "
              f"{row['cpu_1ulp_early_rel_loss_diff']:.1e}; parts (rel. 1e-4) at epoch: cuda "
              f"{row['cuda_parts_from_cpu_at']}, control {row['cpu_1ulp_parts_from_cpu_at']}"
              + "; memorized " + ", ".join(f"{d} {row[f'{d}_memorization_epoch']}" for d in runs)
              + "; threshold epoch " + ", ".join(f"{d} {row[f'{d}_threshold_epoch']}" for d in runs)
              + f"; {'agrees' if row['agrees'] else 'DISAGREES'}", flush=True)
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


def synced_step(trainer: Trainer):
    """The trainer's step, waiting for its kernels: times count the work, not its launch."""
    def step():
        trainer.train_step()
        torch.cuda.synchronize()
    return step


def step_speed(dtype: str, steps: int, rounds: int) -> tuple[float, float]:
    cfg = RunConfig(**SEED, dtype=dtype, epochs=10 ** 9, compile="off")
    cpu, gpu = Trainer(cfg.replace(device="cpu")), Trainer(cfg.replace(device="cuda"))
    return side_by_side(cpu.train_step, synced_step(gpu), steps, rounds, warmup=3)


def compile_speed(steps: int, rounds: int) -> tuple[float, float]:
    cfg = RunConfig(**SEED, epochs=10 ** 9, device="cuda")
    eager, compiled = Trainer(cfg.replace(compile="off")), Trainer(cfg.replace(compile="on"))
    started = time.perf_counter()
    compiled.train_step()
    torch.cuda.synchronize()
    print(f"compile on cuda: first compiled step {time.perf_counter() - started:.1f} s", flush=True)
    return side_by_side(synced_step(eager), synced_step(compiled), steps * 10, rounds, warmup=3)


def seed_run() -> dict:
    summary, _ = run(RunConfig(**SEED, epochs=40_000, stop_after_grok=5, device="cuda"))
    keep = ("outcome", "memorization_epoch", "threshold_epoch", "epochs_run", "final_test_acc",
            "seconds")
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
