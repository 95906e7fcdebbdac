"""Where a sweep's time goes outside training: many short trials on real Ray and real MLflow.

Runs a grid of short expmod trials (by default 40 at p = 31 with the demo's settings and its
1,500 epochs, none stopping early) with ``sweeps.runner.run_sweep`` on a local Ray started here
(its own temp dir, ``--cores`` CPUs, one per trial) and an MLflow SQLite store in a temp dir. Each trial reports
wall-clock timestamps of its steps (``trial_timing`` in its end result, ``sweeps/trial.py``);
MLflow's run start and end times are the driver's view. Training seconds are the CPU seconds of
the trainer's loop (the worker's ``time.process_time``) minus those of the reports inside it: the
step, evaluations, progress measures. (The loop's wall time, printed beside it, also counts the
time a trial waited for a core while something else ran, such as the driver or figures drawn
beside it, and would flatter a sweep that makes its trials wait.)

    efficiency = training CPU seconds / (wall seconds x cores)
    overhead per trial = (wall seconds x cores - training CPU seconds) / trials

    python benchmarks/sweep_overhead.py [--trials 40] [--epochs 1500] [--cores 2]
        [--modes plain,after] [--rounds 1] [--pack 10]

Modes, run alternately (``--rounds``) so that machine noise hits them alike:

* ``plain``: a trial reports each evaluation as it comes (``GROK_REPORT_EVERY_S=0``), the
  driver writes each metric row as it comes (``sweeps.row_writer.BATCH_SECONDS = 0``) and each
  trial draws its figures: the sweep before this benchmark's changes;
* ``trial``: rows reported in groups of up to a second, batched writes, figures drawn in the
  trial (``--figures trial``);
* ``after``: grouped reports, batched writes, figures drawn by the driver after each trial at
  the lowest CPU priority (``--figures after``): the sweep now;
* ``none``: grouped reports, batched writes, no figures (``--figures none``): what the rest costs.

With ``--pack K`` each mode also runs as a packed sweep (``sweeps.packing``; a pack is one
trial, its training CPU the pack's loop), alternating with the unpacked one, and the last lines
compare the two: the ratio of their wall times and the packed sweep's efficiency counted with the
unpacked sweep's training CPU (the same runs' work; on CPUs a pack trains each member with its
own step, so the two differ only by noise).

The sweep's own CPU seconds are not counted: Ray's workers are the raylet's children, and
``getrusage(RUSAGE_CHILDREN)`` of the driver misses them (an earlier version printed such a
"CPU efficiency" and got values over 1). Efficiency therefore needs a quiet machine.

The wall time is the whole sweep, figures included. ``efficiency until the last trial ended``
stops the clock when the last trial's run is closed (what is left then is drawing figures).
The last lines are ``efficiency: X`` and ``overhead per trial: Y s`` (of the last mode, the
median over its rounds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from sweeps import row_writer  # noqa: E402  (the project is installed: setup.sh)

BATCHED_SECONDS = row_writer.batch_seconds()
REPORT_SECONDS = 1.0  # sweeps.trial.REPORT_EVERY_S's default

PHASES = (  # (label, start key, end key) in a trial's timing
    ("imports in the trial", "entered", "imported"),
    ("trainer built", "imported", "built"),
    ("built -> first evaluation", "built", "first_eval"),
    ("record written", "end_started", "record_written"),
)


def grid(trials: int, p: int, epochs: int, eval_every: int, measure_every: int,
         checkpoint_every: int = 0):
    from grokcore.config import RunConfig

    base = RunConfig(p=p, frac_train=0.5, lr=3e-3, weight_decay=3.0, epochs=epochs,
                     eval_every=eval_every, measure_every=measure_every, device="cpu",
                     checkpoint_every=checkpoint_every)
    return [base.replace(seed=seed) for seed in range(trials)]


def trial_timings(sweep_folder: Path) -> list[dict]:
    """Each trial's timing, with the trial keys of the runs it trained (a pack's members)."""
    found = []
    for result_file in sorted(sweep_folder.glob("trial_*/result.json")):
        lines = [json.loads(line) for line in result_file.read_text().splitlines() if line]
        ends = [r for r in lines if "trial_timing" in r]
        if ends:
            trial = ends[-1]["config"]["trial"]
            keys = [m["key"] for m in trial["pack"]] if "pack" in trial else [trial["key"]]
            found.append({**ends[-1]["trial_timing"], "pid": ends[-1].get("pid"),
                          "key": trial["key"], "keys": keys})
    return found


# mode -> (the driver's batching seconds, who draws figures, seconds a trial gathers rows)
MODES = {"plain": (0.0, "trial", 0.0), "trial": (BATCHED_SECONDS, "trial", REPORT_SECONDS),
         "after": (BATCHED_SECONDS, "after", REPORT_SECONDS),
         "none": (BATCHED_SECONDS, "none", REPORT_SECONDS)}


def one_sweep(mode: str, args, work: Path, pack: str = "off") -> dict:
    import ray
    from mlflow.tracking import MlflowClient

    from sweeps.packing import pack_option
    from sweeps.runner import Resources, run_sweep

    row_writer.BATCH_SECONDS, figures, report_s = MODES[mode]
    os.environ["GROK_REPORT_EVERY_S"] = str(report_s)  # the local Ray's workers inherit it
    folder = Path(tempfile.mkdtemp(prefix=f"{mode}_{pack}_", dir=work))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    ray.init(address="local", num_cpus=args.cores, include_dashboard=False,
             _temp_dir=tempfile.mkdtemp(prefix="ro", dir="/tmp"), logging_level="WARNING",
             configure_logging=False)
    try:
        configs = grid(args.trials, args.p, args.epochs, args.eval_every, args.measure_every,
                       args.checkpoint_every)
        started = time.time()
        result = run_sweep(configs, experiment="overhead", name=f"overhead_{mode}",
                           tracking_uri=uri, storage=str(folder / "ray"),
                           resources=Resources(cpus_per_trial=1, gpus_per_trial=0, retries=0),
                           progress_every_s=3600, figures=figures,
                           pack=pack_option(pack))
        wall = time.time() - started
    finally:
        ray.shutdown()
    assert all(o.status in ("reached", "not_reached") for o in result.outcomes), result.outcomes
    rows = trial_timings(Path(result.path))
    by_run = {key: t for t in rows for key in t["keys"]}
    client = MlflowClient(uri)
    for run in client.search_runs([result.experiment_id]):
        t = by_run.get(run.data.tags.get("trial_key"))
        if t is not None:  # a pack's: from its first member's start to its last one's end
            t["driver_start"] = min(t.get("driver_start", math.inf), run.info.start_time / 1e3)
            t["driver_end"] = max(t.get("driver_end", 0.0), run.info.end_time / 1e3)
    train = sum(t["loop_seconds"] - t["report_seconds"] for t in rows)
    train_cpu = sum(t["cpu_end_started"] - t["cpu_built"] - t["report_cpu_seconds"] for t in rows)
    stats = {"mode": mode if pack == "off" else f"{mode}+pack {pack}", "wall": wall,
             "train": train, "train_cpu": train_cpu, "runs": len(by_run),
             "trials": len(rows), "workers": len({t["pid"] for t in rows}),
             "efficiency_wall": train / (wall * args.cores),
             "efficiency": train_cpu / (wall * args.cores),
             "overhead": (wall * args.cores - train_cpu) / len(by_run)}
    phases = {label: [t[b] - t[a] for t in rows] for label, a, b in PHASES}
    phases["reports in the loop"] = [t["report_seconds"] for t in rows]
    phases["driver start -> trial entered"] = [t["entered"] - t["driver_start"] for t in rows]
    phases["record written -> driver closed run"] = [t["driver_end"] - t["record_written"]
                                                     for t in rows]
    phases["training (step, evaluation), wall"] = [t["loop_seconds"] - t["report_seconds"]
                                                   for t in rows]
    phases["training (step, evaluation), CPU"] = [
        t["cpu_end_started"] - t["cpu_built"] - t["report_cpu_seconds"] for t in rows]
    stats["phases"] = {label: statistics.mean(values) for label, values in phases.items()}
    first = min(t["driver_start"] for t in rows)
    last = max(t["driver_end"] for t in rows)
    stats["before first trial"] = first - started
    stats["after last trial"] = started + wall - last
    stats["efficiency until the last trial ended"] = train_cpu / ((last - started) * args.cores)
    shutil.rmtree(folder, ignore_errors=True)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--p", type=int, default=31)
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--measure-every", type=int, default=500)
    parser.add_argument("--checkpoint-every", type=int, default=0,
                        help="epochs between a trial's checkpoints (default 0: the sweep's, "
                             "10 evaluations)")
    parser.add_argument("--cores", type=int, default=2, help="Ray CPUs; one trial per CPU")
    parser.add_argument("--modes", default="plain,after",
                        help=f"comma-separated, of: {', '.join(MODES)} (see above)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, alternating the modes")
    parser.add_argument("--pack", default="off",
                        help="also run each mode as a packed sweep (--pack of the sweeps: K; "
                             "auto is off on CPUs), alternating with the unpacked one (default: off)")
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]])
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    print(f"{args.trials} trials, p={args.p}, {args.epochs} epochs, eval every "
          f"{args.eval_every}, measures every {args.measure_every}, {args.cores} cores; "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="sweep_overhead_"))
    runs: dict[str, list[dict]] = {}
    try:
        packs = ["off"] if args.pack == "off" else ["off", args.pack]
        for _ in range(args.rounds):
            for mode, pack in [(m, p) for m in args.modes.split(",") for p in packs]:
                stats = one_sweep(mode, args, work, pack)
                runs.setdefault(stats["mode"], []).append(stats)
                print(f"\n[{stats['mode']}] wall {stats['wall']:.1f} s, training "
                      f"{stats['train_cpu']:.1f} CPU s ({stats['train']:.1f} s of wall time in "
                      f"the loops), {stats['runs']} runs in {stats['trials']} trials on "
                      f"{stats['workers']} worker processes; "
                      f"efficiency {stats['efficiency']:.3f} ({stats['efficiency_wall']:.3f} by "
                      f"the loops' wall time), overhead per trial {stats['overhead']:.2f} s; "
                      f"load average now {os.getloadavg()[0]:.2f}")
                print(f"  sweep start -> first trial {stats['before first trial']:.2f} s, "
                      f"last trial closed -> sweep returned {stats['after last trial']:.2f} s; "
                      f"efficiency until the last trial ended "
                      f"{stats['efficiency until the last trial ended']:.3f}")
                for label, value in stats["phases"].items():
                    print(f"  mean per trial, {label}: {value:.3f} s")
                sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    for mode, stats in runs.items():
        print(f"{mode}: efficiency {statistics.median(s['efficiency'] for s in stats):.3f}, "
              f"overhead per trial {statistics.median(s['overhead'] for s in stats):.2f} s "
              f"({len(stats)} rounds)")
    if args.pack != "off":
        for mode in args.modes.split(","):
            alone, packed = runs[mode], runs[f"{mode}+pack {args.pack}"]
            walls = [a["wall"] / p["wall"] for a, p in zip(alone, packed)]
            credited = [a["train_cpu"] / (p["wall"] * args.cores) for a, p in zip(alone, packed)]
            print(f"{mode}: unpacked wall / packed wall {statistics.median(walls):.3f}; packed "
                  f"efficiency by the unpacked sweep's training CPU "
                  f"{statistics.median(credited):.3f}")
    last = list(runs.values())[-1]
    print(f"efficiency: {statistics.median(s['efficiency'] for s in last):.3f}")
    print(f"overhead per trial: {statistics.median(s['overhead'] for s in last):.2f} s")


if __name__ == "__main__":
    main()
