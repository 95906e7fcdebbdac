"""Member-epochs per second of a pack of K runs against one run, on one device, in one process.

For each p, dtype and K (as memory and ``--budget-s`` allow) it builds a pack of K expmod runs
(seeds 0..K-1, the pairs split; ``grokcore.pack``) and one single run, and times them in
alternation over ``--rounds`` rounds, so that machine noise hits both alike:

* ``step``: the training step alone (the pack's engine step against ``Trainer.train_step``);
* ``run``: whole training with an evaluation every ``--eval-every`` epochs (each member
  evaluated on its own model, as in a real pack), ``Pack.run`` against ``Trainer.run``.

Speedup = median over rounds of (pack member-epochs/s) / (single-run epochs/s). The lines
``pack speedup DEVICE DTYPE p=P K=K: X`` give the ``run`` figure (evaluation included).

A stacked pack's last member trains on its own step (``grokcore.pack``), so its K = 1 is the run
alone. ``--stack-of-one`` times instead what that replaced, one member's step through the stack
(``StackedSteps([member])``) against its own step, side by side, and prints
``stack of one DEVICE DTYPE p=P: X`` (the stack's time over the own step's).

    python benchmarks/pack_speed.py --device cpu [--ps 31 113] [--dtypes float32 float64]
        [--ks 1 4 16 64 256] [--engines stacked,loop] [--threads 1] [--stack-of-one]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
from timing import side_by_side

from grokcore.config import RunConfig
from grokcore.pack import Pack
from grokcore.stacked import StackedSteps
from grokcore.trainer import Trainer


def base_config(p: int, dtype: str, device: str, epochs: int, eval_every: int) -> RunConfig:
    # The seed's frac (0.3) at p = 113, the demo's (0.5) at p = 31; eager, never stopping.
    return RunConfig(p=p, frac_train=0.3 if p >= 100 else 0.5, dtype=dtype, device=device,
                     compile="off", epochs=epochs, eval_every=eval_every)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    _sync(device)
    started = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - started


def step_rates(cfg: RunConfig, k: int, engine: str, steps: int, rounds: int) -> list[float]:
    """Per round: (pack member-steps/s) / (single steps/s)."""
    configs = [cfg.replace(seed=i, data_seed=i) for i in range(k)]
    pack, single = Pack.from_configs(configs, engine=engine), Trainer(cfg)
    for _ in range(2):  # warm-up
        pack.steps.step(), single.train_step()
    ratios = []
    for _ in range(rounds):
        alone = timed(lambda: [single.train_step() for _ in range(steps)], cfg.device)
        packed = timed(lambda: [pack.steps.step() for _ in range(steps)], cfg.device)
        ratios.append((k * steps / packed) / (steps / alone))
    return ratios


def stack_of_one(cfg: RunConfig, steps: int, rounds: int) -> tuple[float, float]:
    """Median ms of (the run's own step, the same run's step through a stack of one)."""
    own, stacked = Trainer(cfg), StackedSteps([Trainer(cfg)])
    return side_by_side(own.train_step, stacked.step, steps, rounds)


def run_rates(cfg: RunConfig, k: int, engine: str, rounds: int) -> tuple[list[float], float]:
    """Per round: (pack member-epochs/s) / (single epochs/s) of whole runs of cfg.epochs with
    their evaluations; and the pack's member-epochs/s (median)."""
    ratios, rates = [], []
    for _ in range(rounds):
        single = Trainer(cfg)
        alone = timed(single.run, cfg.device)
        pack = Pack.from_configs([cfg.replace(seed=i, data_seed=i) for i in range(k)],
                                 engine=engine)
        packed = timed(pack.run, cfg.device)
        rates.append(k * cfg.epochs / packed)
        ratios.append(rates[-1] / (cfg.epochs / alone))
    return ratios, statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--ps", type=int, nargs="+", default=[31, 113])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--engines", default=None,
                        help="comma-separated (default: stacked on cuda; stacked,loop on cpu)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs of the timed runs")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed step round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--budget-s", type=float, default=120.0,
                        help="skip a K whose pack would take longer than this per round")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--stack-of-one", action="store_true",
                        help="time one member's step through a stack against its own step")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch sees no GPU here")
    torch.set_num_threads(args.threads)
    engines = (args.engines or ("stacked" if args.device == "cuda" else "stacked,loop")).split(",")
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"pack speed on {where}; torch {torch.__version__}; load average before "
          f"{os.getloadavg()[0]:.2f}; {args.epochs} epochs a run, evaluation every "
          f"{args.eval_every}; {args.rounds} rounds, single run and pack alternating", flush=True)
    if args.stack_of_one:
        for p in args.ps:
            for dtype in args.dtypes:
                cfg = base_config(p, dtype, args.device, args.epochs, args.eval_every)
                own, stacked = stack_of_one(cfg, args.steps, args.rounds)
                print(f"  p={p} {dtype}: own step {own:.2f} ms, through a stack of one "
                      f"{stacked:.2f} ms", flush=True)
                print(f"stack of one {args.device} {dtype} p={p}: {stacked / own:.2f}", flush=True)
        print(f"load average after {os.getloadavg()[0]:.2f}")
        return
    figures = []
    for p in args.ps:
        for dtype in args.dtypes:
            cfg = base_config(p, dtype, args.device, args.epochs, args.eval_every)
            single_s = timed(Trainer(cfg).run, args.device)
            for engine in engines:
                last = (1, single_s)  # (K, seconds of its pack's run): the next K's estimate
                for k in args.ks:
                    estimate = last[1] * k / last[0]  # linear in K: an upper bound on a GPU
                    if estimate > args.budget_s:
                        print(f"  skip {engine} p={p} {dtype} K={k}: about {estimate:.0f} s "
                              f"a round (--budget-s {args.budget_s:g})", flush=True)
                        continue
                    try:
                        steps = step_rates(cfg, k, engine, args.steps, args.rounds)
                        runs, rate = run_rates(cfg, k, engine, args.rounds)
                    except torch.OutOfMemoryError:
                        print(f"  skip {engine} p={p} {dtype} K={k}: out of memory", flush=True)
                        break
                    row = {"device": args.device, "engine": engine, "p": p, "dtype": dtype,
                           "k": k, "step_speedup": statistics.median(steps),
                           "run_speedup": statistics.median(runs), "member_epochs_per_s": rate,
                           "step_rounds": steps, "run_rounds": runs}
                    figures.append(row)
                    last = (k, k * cfg.epochs / rate)
                    print(f"  {engine:7s} p={p} {dtype} K={k}: {rate:.1f} member-epochs/s; "
                          f"step speedup {row['step_speedup']:.2f} (rounds "
                          f"{', '.join(f'{x:.2f}' for x in steps)}); run speedup "
                          f"{', '.join(f'{x:.2f}' for x in runs)}", flush=True)
                    tag = "" if engine == "stacked" else f" ({engine} engine)"
                    print(f"pack speedup {args.device} {dtype} p={p} K={k}: "
                          f"{row['run_speedup']:.2f}{tag}", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=1)


if __name__ == "__main__":
    main()
