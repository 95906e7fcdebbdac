"""``python -m grokcore grid GRID.json [GRID.json ...] --out DIR``: every run of a grid trained
as packs on one device, without Ray or MLflow, each run's record written to a folder of its own.

For a GPU machine that has neither Ray nor MLflow: the sweep's grid is written where they are
(``sweeps/expmod_grid.py ... --write-grid GRID.json``, the sweep's own validated RunConfigs),
trained here, and the folders are logged into MLflow there as a sweep
(``python -m sweeps.import_runs DIR``), each run a child run as a sweep trial's would be.

* Packs: runs that may share a pack (``grokcore.pack.pack_groups``: on cuda also the number of
  training examples) train as one, at most ``--max-pack`` members each; ``--workers`` processes
  take packs in grid order (several processes keep a GPU busy while each launches the kernels
  of its own small steps).
* A run's folder, ``DIR/<grid index>``: ``grokcore.records.write_run_folder``'s files (no
  figures; ``--no-weights`` leaves out model.pt). ``--history-every N`` keeps the evaluations at
  multiples of N epochs, the memorization and grok epochs' and the last in history.csv (to make
  the folders small enough to carry); the summary is computed from every evaluation.
* ``--budget-s``: when the wall clock passes it, the runs still training stop at their next
  evaluation. Such a run did not end by its own rule: its folder holds ``UNFINISHED`` and
  ``sweeps.import_runs`` leaves it out (it is not censored at that epoch). Packs not started by
  then are not started (no folder).
* ``DIR/grid_run.json``: the device, torch, each pack's members, seconds and member-epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from grokcore import records
from grokcore.config import ConfigError, RunConfig
from grokcore.pack import ENGINES

GRID_RUN_FILE = "grid_run.json"
UNFINISHED_FILE = "UNFINISHED"  # in a run's folder: the budget stopped it, not its own rule


def load_grid(path: Path) -> list[RunConfig]:
    """The RunConfigs of a grid file (a JSON list of RunConfig dicts: a sweep's grid.json)."""
    try:
        items = json.loads(Path(path).read_text())
        if not isinstance(items, list) or not items:
            raise ValueError("not a non-empty JSON list")
        return [RunConfig.from_dict(item) for item in items]
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"cannot read a grid from {path}: {err}; write one with "
                          "sweeps/expmod_grid.py ... --write-grid FILE") from None


def plan(configs: Sequence[RunConfig], stacked: bool, max_pack: int) -> list[list[int]]:
    """Packs (grid indices) in grid order, each at most ``max_pack`` runs of one group."""
    from grokcore.pack import pack_groups
    from grokcore.pack_size import balanced_chunks

    return [chunk for group in pack_groups(configs, stacked)
            for chunk in balanced_chunks(group, min(max_pack, len(group)))]


class GridRecord:
    """A member's callbacks: stop at the deadline; at the end, write the run's folder."""

    def __init__(self, folder: Path, deadline: float | None, history_every: int, weights: bool):
        self.folder, self.deadline = folder, deadline
        self.history_every, self.weights = history_every, weights

    def on_eval(self, trainer, row, checkpoint) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def on_end(self, trainer, summary) -> None:
        records.write_run_folder(trainer, summary, self.folder, figures=False,
                                 weights=self.weights, history_every=self.history_every)
        if not trainer.ended_by_own_rule():
            (self.folder / UNFINISHED_FILE).write_text(
                f"stopped by the budget at epoch {trainer.epoch} of {trainer.cfg.epochs}\n")


def run_pack(job: dict[str, Any]) -> dict[str, Any]:
    """Train one pack (in a worker process): its members' folders written; its counts and
    seconds returned."""
    import torch

    from grokcore.pack import Pack

    configs = [RunConfig.from_dict(c) for c in job["configs"]]
    if job["deadline"] is not None and time.time() >= job["deadline"]:  # never started: no folders
        return {"indices": job["indices"], "members": len(configs), "engine": "-",
                "p": configs[0].p, "dtype": configs[0].dtype, "build_s": 0.0, "train_s": 0.0,
                "member_epochs": 0, "reached": 0, "unfinished": 0, "skipped": len(configs)}
    torch.set_num_threads(job["threads"])
    started = time.perf_counter()
    pack = Pack.from_configs(configs, engine=job["engine"])
    built = time.perf_counter()
    for member, index in zip(pack.members, job["indices"]):
        member.callbacks = [GridRecord(Path(job["out"]) / f"{index:05d}", job["deadline"],
                                       job["history_every"], job["weights"])]
    summaries = pack.run()
    seconds = time.perf_counter() - built
    unfinished = sum(not m.ended_by_own_rule() for m in pack.members)
    return {"indices": job["indices"], "members": len(configs), "engine": pack.engine,
            "p": configs[0].p, "dtype": configs[0].dtype, "build_s": round(built - started, 2),
            "train_s": round(seconds, 2), "member_epochs": sum(s["epochs_run"] for s in summaries),
            "reached": sum(bool(s["reached"]) for s in summaries), "unfinished": unfinished,
            "skipped": 0}


def run_grid(configs: Sequence[RunConfig], out: Path, *, workers: int = 1, max_pack: int = 256,
             budget_s: float | None = None, history_every: int = 0, weights: bool = True,
             engine: str = "auto", say=print) -> dict[str, Any]:
    """Train ``configs`` as packs into ``out``; returns what grid_run.json holds."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    import torch

    from grokcore.provenance import device_name
    from grokcore.trainer import resolve_device

    device = resolve_device(configs[0].device)
    stacked = engine == "stacked" or (engine == "auto" and device.type == "cuda")
    packs = plan(configs, stacked, max_pack)
    started = time.time()
    deadline = started + budget_s if budget_s else None
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [{"configs": [configs[i].to_dict() for i in pack], "indices": pack, "out": str(out),
             "deadline": deadline, "history_every": history_every, "weights": weights,
             "engine": engine, "threads": threads} for pack in packs]
    say(f"{len(configs)} runs in {len(packs)} packs ({', '.join(str(len(p)) for p in packs)}) on "
        f"{device_name(device)}, {workers} worker(s)"
        + (f", budget {budget_s:g} s" if budget_s else ""))
    done = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_pack, job) for job in jobs]
        for future in as_completed(futures):
            result = future.result()
            done.append(result)
            say(f"  pack of {result['members']} (p={result['p']} {result['dtype']}, "
                f"{result['engine']}): {result['reached']} reached the threshold, "
                f"{result['unfinished']} unfinished, {result['train_s']:.1f} s, "
                f"{result['member_epochs']} member-epochs "
                f"({result['member_epochs'] / max(result['train_s'], 1e-9):.0f}/s); "
                f"{len(done)}/{len(jobs)} packs at {time.time() - started:.0f} s")
    wall = time.time() - started
    report = {"device": device_name(device), "torch": torch.__version__, "workers": workers,
              "budget_s": budget_s, "history_every": history_every, "wall_s": round(wall, 2),
              "runs": len(configs), "unfinished": sum(r["unfinished"] for r in done),
              "not_started": sum(r["skipped"] for r in done),
              "member_epochs": sum(r["member_epochs"] for r in done),
              "packs": sorted(done, key=lambda r: r["indices"][0])}
    (out / GRID_RUN_FILE).write_text(json.dumps(report, indent=1))
    say(f"{len(configs)} runs in {wall:.1f} s: {report['member_epochs']} member-epochs "
        f"({report['member_epochs'] / wall:.0f}/s), {report['unfinished']} unfinished, "
        f"{report['not_started']} not started (no folder)")
    return report


def add_grid_parser(sub) -> None:
    grid = sub.add_parser(
        "grid", help="train every run of a grid file as packs, each run's record to a folder",
        description="Train every run of a grid file as packs on one device, without Ray or "
                    "MLflow; each run's record goes to a folder of its own (grokcore/pack_grid.py).")
    grid.add_argument("grids", type=Path, nargs="+", metavar="GRID",
                      help="JSON list of RunConfigs (a sweep's grid.json, or sweeps/expmod_grid.py "
                           "... --write-grid FILE); several are run as one grid, in order")
    grid.add_argument("--out", type=Path, required=True,
                      help="folder for the runs' folders (OUT/<grid index>) and grid_run.json")
    grid.add_argument("--device", default=None,
                      help="train on this device instead of the grid's (cpu, cuda, auto)")
    grid.add_argument("--workers", type=int, default=1, help="processes training packs at once")
    grid.add_argument("--max-pack", type=int, default=256, help="most runs in one pack")
    grid.add_argument("--budget-s", type=float, default=None,
                      help="wall-clock seconds; runs still training then stop, marked unfinished")
    grid.add_argument("--history-every", type=int, default=0, metavar="N",
                      help="keep only the evaluations at multiples of N epochs in history.csv "
                           "(and the memorization, grok and last ones); default: all")
    grid.add_argument("--no-weights", action="store_true", help="leave model.pt out")
    grid.add_argument("--pack-engine", choices=ENGINES, default="auto",
                      help="how each pack trains (grokcore/pack.py; default: auto)")


def grid_main(args: argparse.Namespace) -> int:
    try:
        configs = [c for path in args.grids for c in load_grid(path)]
        if args.device:
            configs = [c.replace(device=args.device) for c in configs]
        if args.workers < 1 or args.max_pack < 1:
            raise ConfigError("--workers and --max-pack take 1 or more")
        if args.budget_s is not None and not args.budget_s > 0:
            raise ConfigError(f"--budget-s {args.budget_s:g}: give seconds > 0, or leave it out")
        if args.history_every < 0:
            raise ConfigError(f"--history-every {args.history_every}: give 0 (all) or more")
        args.out.mkdir(parents=True, exist_ok=True)
        run_grid(configs, args.out, workers=args.workers, max_pack=args.max_pack,
                 budget_s=args.budget_s, history_every=args.history_every,
                 weights=not args.no_weights, engine=args.pack_engine)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
