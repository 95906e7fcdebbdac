"""Table 1's ten pairs-split rows x R replicates trained as packs on one device, end to end.

The settings of results/table1/run.sh (frac 0.3, lr 1e-3, weight decay 1, float32, 40,000
epochs, an evaluation every 100, stop 5 evaluations after grokking; replicate i: seed 999+i,
data seed 598+i), grouped into packs as a packed sweep groups them (``sweeps.packing``: the nine
p = 113 rows share one pack, p = 101 has its own), each pack trained by ``grokcore.pack`` (on
cuda: one stacked model). No Ray: this is the part of a packed sweep that a GPU does.

``--budget-s``: a pack's members that are still training when its share of the budget (by its
number of members) is spent end there, censored (the threshold not reached, at the epoch it got
to), as a run that hit its epoch budget: the table then says how far the budget got.

    python benchmarks/pack_table.py [--device cuda] [--replicates 15] [--budget-s 240]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from grokcore.config import RunConfig
from grokcore.pack import Pack, pack_groups
from grokcore.records import jsonable

ROWS = [(1, 1, 113), (3, 3, 113), (3, 4, 113), (5, 4, 113), (5, 5, 113), (7, 7, 113),
        (7, 7, 101), (9, 9, 113), (4, 5, 113), (8, 9, 113)]
SETTINGS = dict(frac_train=0.3, lr=1e-3, weight_decay=1.0, dtype="float32", epochs=40_000,
                eval_every=100, stop_after_grok=5, split="pairs")


class Deadline:
    """A member callback that ends the run once the wall clock passes ``at``."""

    def __init__(self, at: float):
        self.at = at

    def on_eval(self, trainer, row, checkpoint) -> bool:
        return time.perf_counter() >= self.at

    def on_end(self, trainer, summary) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--replicates", type=int, default=15)
    parser.add_argument("--budget-s", type=float, default=240.0)
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    configs = [RunConfig(a=a, b=b, p=p, **{**SETTINGS, "epochs": args.epochs},
                         device=args.device, seed=999 + i, data_seed=598 + i)
               for a, b, p in ROWS for i in range(args.replicates)]
    groups = pack_groups(configs, stacked=args.device.startswith("cuda"))
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device
    print(f"{len(configs)} runs ({len(ROWS)} rows x {args.replicates}) in {len(groups)} packs "
          f"of {', '.join(str(len(g)) for g in groups)} on {where}; budget {args.budget_s:g} s",
          flush=True)
    started = time.perf_counter()
    summaries: dict[int, dict] = {}
    member_epochs = 0
    for group in groups:
        share = args.budget_s * len(group) / len(configs)
        building = time.perf_counter()
        pack = Pack.from_configs([configs[i] for i in group])
        built = time.perf_counter()
        for member in pack.members:
            member.callbacks = [Deadline(built + share)]
        done = pack.run()
        seconds = time.perf_counter() - built
        epochs = sum(s["epochs_run"] for s in done)
        member_epochs += epochs
        summaries.update(zip(group, done))
        print(f"  pack of {len(group)} ({pack.engine}): built in {built - building:.1f} s, "
              f"trained {seconds:.1f} s, {epochs} member-epochs, {epochs / seconds:.0f} "
              f"member-epochs/s", flush=True)
    wall = time.perf_counter() - started
    print(f"\n{'a':>2} {'b':>2} {'p':>4}  reached  median threshold epoch  epochs run (min-max)")
    for r, (a, b, p) in enumerate(ROWS):
        rows = [summaries[r * args.replicates + i] for i in range(args.replicates)]
        held = [s["threshold_epoch"] for s in rows if s["reached"]]
        shown = f"{statistics.median(held):.0f}" if held else "-"
        runs = [s["epochs_run"] for s in rows]
        print(f"{a:>2} {b:>2} {p:>4}  {len(held):>3}/{len(rows):<3}  {shown:>22}  "
              f"{min(runs)}-{max(runs)}")
    print(f"\ntable wall time: {wall:.1f} s; {member_epochs} member-epochs, "
          f"{member_epochs / wall:.0f} member-epochs/s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"wall_s": wall, "rows": ROWS, "replicates": args.replicates,
                       "summaries": [jsonable(summaries[i]) for i in range(len(configs))]},
                      fh, indent=1)


if __name__ == "__main__":
    main()
