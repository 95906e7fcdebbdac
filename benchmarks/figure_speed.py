"""CPU seconds to draw one run's figures (``grokcore.figures.write_run_figures``): this tree's
code against an earlier revision's, and with the garbage collector's full passes kept off what
the imports created (``gc.freeze()``, as a sweep's figure processes do: ``sweeps/figures_after.py``).

    python benchmarks/figure_speed.py [--run DIR] [--against REV] [--rounds 4] [--draws 3]

``--run`` takes a run's record (``python -m grokcore train ... --out DIR``); without it a
demo-sized run (p = 31, 1,500 epochs, progress measures every 500) is trained first into a
temporary folder. ``--against`` (default 2e5fb1a, the last revision whose run figures were laid
out by matplotlib's layout engines and saved with a tight crop, before fixed margins) is checked
out into a temporary git worktree. Each round starts one process per way, in turn (this tree;
this tree with gc frozen; the revision), which imports its tree's grokcore, draws the figures
once to warm up, then ``--draws`` times, and reports the median CPU seconds of a draw. The last
lines give the medians over the rounds and ``figure speedup: X`` (the revision / this tree).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo_run(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "grokcore", "train", "--p", "31", "--frac-train", "0.5",
                    "--lr", "3e-3", "--weight-decay", "3", "--epochs", "1500", "--eval-every", "20",
                    "--measure-every", "500", "--out", str(folder)], check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT)
    return folder


def draw_times(run: Path, draws: int, frozen: bool) -> list[float]:
    """In a process of its own (``--draw``): CPU seconds of each of ``draws`` drawings of the run's
    figures, after one to warm up (fonts, caches)."""
    import torch

    from grokcore.figures import write_run_figures
    from grokcore.records import load_run_folder
    from grokcore.tasks import TASKS

    torch.set_num_threads(1)  # as a sweep's figure processes draw
    cfg, history, summary, model, dataset = load_run_folder(run)
    with tempfile.TemporaryDirectory() as out, torch.no_grad():
        def draw() -> float:
            start = time.process_time()
            write_run_figures(cfg, history, summary, model, dataset, out, task=TASKS[cfg.task])
            return time.process_time() - start

        draw()
        if frozen:
            gc.collect()
            gc.freeze()
        return [draw() for _ in range(draws)]


def one_way(tree: Path, run: Path, draws: int, frozen: bool) -> float:
    """The median CPU seconds of a draw, by a process that imports ``tree``'s grokcore."""
    command = [sys.executable, str(Path(__file__).resolve()), "--draw", str(run),
               "--draws", str(draws)] + (["--frozen"] if frozen else [])
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True, text=True)
    return statistics.median(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run's record folder (default: train a demo run)")
    parser.add_argument("--against", default="2e5fb1a", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--draws", type=int, default=3, help="timed draws in each process")
    parser.add_argument("--draw", type=Path, help=argparse.SUPPRESS)  # a way's own process
    parser.add_argument("--frozen", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.draw:
        print(json.dumps(draw_times(args.draw, args.draws, args.frozen)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        run = (args.run or demo_run(Path(tmp) / "run")).resolve()
        old = Path(tmp) / "against"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), args.against],
                       cwd=ROOT, check=True)
        try:
            ways = {"this tree": (ROOT, False), "this tree, gc frozen": (ROOT, True),
                    args.against: (old, False)}
            times: dict[str, list[float]] = {way: [] for way in ways}
            for _ in range(args.rounds):
                for way, (tree, frozen) in ways.items():
                    times[way].append(one_way(tree, run, args.draws, frozen))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    print(f"the figures of {run}: {args.rounds} rounds of a process per way, "
          f"{args.draws} draws each, 1 thread; load average now {os.getloadavg()[0]:.2f}")
    median = {way: statistics.median(values) for way, values in times.items()}
    for way, values in times.items():
        print(f"median CPU s a run, {way}: {median[way]:.3f} "
              f"(rounds {', '.join(f'{v:.2f}' for v in values)})")
    print(f"gc frozen speedup: {median['this tree'] / median['this tree, gc frozen']:.2f}")
    print(f"figure speedup: {median[args.against] / median['this tree']:.2f}")


if __name__ == "__main__":
    main()
