"""Grok epoch with and without Grokfast (EMA), at a matched effective learning rate.

Arms, each over the same seeds (the weight seed; the data split stays the config's):

    plain        AdamW at lr
    plain_lr3x   AdamW at 3 x lr   (Grokfast EMA with lambda 2 adds about 2 x the gradient's
                                    slow part, so it roughly triples the step: the fair match)
    ema          Grokfast EMA (alpha 0.98, lambda 2) at lr
    ma           Grokfast moving average (window 100, lambda 5) at lr      (only with --arms)

    python benchmarks/grokfast.py                         # the small config (minutes on 2 cores)
    python benchmarks/grokfast.py --seeds 0 1 2 --arms plain plain_lr3x ema ma
    python benchmarks/grokfast.py --canonical             # p 113, frac 0.3, lr 1e-3, wd 1 (hours)
    python benchmarks/grokfast.py --merge a.json b.json   # one table from arms run in parallel

Small config (default): p 31, frac 0.5, lr 3e-3, weight decay 3, float32, eval every 10 epochs,
budget 6000 epochs, stop 3 evaluations after grokking. Canonical: the seed paper's p 113,
frac 0.3, lr 1e-3, wd 1, eval every 100, budget 40000. The grok epoch is the first evaluation
from which test accuracy stays >= 0.99 (so it is resolved to --eval-every).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from grokcore.config import RunConfig
from grokcore.trainer import Trainer

SMALL = dict(p=31, frac_train=0.5, lr=3e-3, weight_decay=3.0, eval_every=10, epochs=6000,
             stop_after_grok=3)
CANONICAL = dict(p=113, frac_train=0.3, lr=1e-3, weight_decay=1.0, eval_every=100, epochs=40_000,
                 stop_after_grok=3)
ARMS = {
    "plain": lambda c: c,
    "plain_lr3x": lambda c: c.replace(lr=3 * c.lr),
    "ema": lambda c: c.replace(grokfast="ema", grokfast_alpha=0.98, grokfast_ema_lambda=2.0),
    "ma": lambda c: c.replace(grokfast="ma", grokfast_window=100, grokfast_ma_lambda=5.0),
}


def print_table(rows: list[dict], arms: list[str], budget: int) -> None:
    print("\n| arm | lr | threshold epoch per seed | median | memorized per seed |")
    print("|---|---|---|---|---|")
    for arm in arms:
        mine = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["seed"])
        if not mine:
            continue
        groks = [r["threshold_epoch"] for r in mine]
        median = (statistics.median(groks) if all(g is not None for g in groks)
                  else f"> {budget} (some did not reach it)")
        print(f"| {arm} | {mine[0]['lr']:.0e} | {', '.join(str(g) for g in groks)} | {median} | "
              f"{', '.join(str(r['memorization_epoch']) for r in mine)} |")


def merge(paths: list[Path]) -> int:
    """One table from the JSON of several runs (arms run as separate processes, in parallel)."""
    results = [json.loads(path.read_text()) for path in paths]
    configs = {json.dumps(r["config"], sort_keys=True) for r in results}
    if len(configs) > 1:
        print("error: the files were run with different configs; merge only runs of one config",
              file=sys.stderr)
        return 2
    rows = [row for r in results for row in r["rows"]]
    print("config: " + " ".join(f"{k}={v}" for k, v in results[0]["config"].items()))
    print_table(rows, [a for a in ARMS if any(r["arm"] == a for r in rows)],
                results[0]["config"]["epochs"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--canonical", action="store_true",
                        help="the seed paper's config (p 113, frac 0.3, lr 1e-3, wd 1): hours here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="weight seeds")
    parser.add_argument("--arms", nargs="+", default=["plain", "plain_lr3x", "ema"],
                        choices=list(ARMS))
    parser.add_argument("--epochs", type=int, default=None, help="override the budget")
    parser.add_argument("--lr", type=float, default=None, help="override the learning rate")
    parser.add_argument("--weight-decay", type=float, default=None, help="override weight decay")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: fastest on a shared 2-core machine)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                        help="print one table from the --out files of earlier runs; run nothing")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge)
    torch.set_num_threads(args.threads)

    settings = dict(CANONICAL if args.canonical else SMALL, dtype=args.dtype)
    for name in ("epochs", "lr", "weight_decay"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    base = RunConfig(**settings)
    print(f"config: {'canonical' if args.canonical else 'small'} "
          + " ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
    rows = []
    for arm in args.arms:
        for seed in args.seeds:
            cfg = ARMS[arm](base).replace(seed=seed)
            started = time.perf_counter()
            summary = Trainer(cfg).run()
            row = {"arm": arm, "seed": seed, "lr": cfg.lr, "status": summary["status"],
                   "threshold_epoch": summary["threshold_epoch"],
                   "memorization_epoch": summary["memorization_epoch"],
                   "epochs_run": summary["epochs_run"],
                   "seconds": round(time.perf_counter() - started, 1)}
            rows.append(row)
            print(f"{arm:<11} seed {seed}  lr {cfg.lr:.0e}  {row['status']:<11} "
                  f"memorized {row['memorization_epoch']}  "
                  f"threshold epoch {row['threshold_epoch']}  "
                  f"({row['epochs_run']} epochs, {row['seconds']} s)", flush=True)

    print_table(rows, args.arms, base.epochs)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"config": settings, "seeds": args.seeds, "rows": rows},
                                       indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
