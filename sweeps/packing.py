"""Which runs of a grid train together as one pack (``--pack K|auto|off``), driver side.

A pack is one Tune trial (``sweeps.pack_trial``); its members are the grid's runs, each its own
MLflow run with its own trial key. Runs go to the same pack only when ``grokcore.pack`` allows
it: the same settings but for PACK_FREE_FIELDS, and on cuda (where packs train as one stacked
model) the same number of training examples: runs whose shapes differ (the classes split,
another frac) go to different packs; nothing is padded. Within a group, runs keep their grid
order and are cut into packs whose sizes differ by at most one.

``auto``:
* on cuda, the pack size measured on a GPU (``grokcore.pack_size.best_pack_size``: the largest
  K whose doubling still raised member-epochs per second by 10%, within the GPU's memory), in a
  Ray task that holds a whole GPU before the trials start;
* on CPUs, off. A stacked step gains nothing per model there (the step is compute-bound), and
  sharing what a trial costs beside training did not pay either: 40 demo runs on 2 cores took
  355.0 s in packs of 10 against 364.2 s unpacked with figures, 325.6 s against 319.3 s without
  (``benchmarks/sweep_overhead.py``, 2026-12-04, docs/results/benchmarks.md), while a pack's
  members end together and lose the finer resume of single trials. ``--pack K`` still packs on
  CPUs when asked.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable, Sequence

from grokcore.config import ConfigError, RunConfig
from grokcore.pack import pack_groups

CUDA_MOST = 256


def pack_option(text: str) -> str | int:
    """--pack: ``off``, ``auto`` or a number of members >= 1 (1 is off)."""
    if text in ("off", "auto"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not off, auto or a number of runs >= 1")
    return value if value > 1 else "off"


def trains_on_cuda(configs: Sequence[RunConfig], gpus_per_trial: float) -> bool:
    return bool(gpus_per_trial) and all(c.device != "cpu" for c in configs)


def plan_packs(configs: Sequence[RunConfig], pack: str | int, slots: int, on_cuda: bool,
               gpu_plan: Callable[[list[RunConfig], int | None], list[int]] | None = None,
               ) -> list[list[int]] | None:
    """The packs (lists of grid indices) for ``--pack``; None when the sweep runs unpacked.

    ``gpu_plan(first configs of the groups, K or None)`` (cuda only) returns each group's pack
    size measured on a GPU, raising ConfigError when a given K does not fit its memory.
    """
    from grokcore.pack_size import balanced_chunks

    if pack == "off" or (pack == "auto" and not on_cuda):
        return None
    groups = pack_groups(configs, stacked=on_cuda)
    if on_cuda:
        if gpu_plan is None:
            raise ConfigError("packs on cuda need a GPU to measure them on")
        sizes = gpu_plan([configs[g[0]] for g in groups], None if pack == "auto" else int(pack))
    else:
        sizes = [int(pack)] * len(groups)
        check_cpu_memory(configs, groups, sizes, slots)
    packs = [chunk for group, size in zip(groups, sizes) for chunk in balanced_chunks(group, size)]
    if pack == "auto" and all(len(p) == 1 for p in packs):
        return None  # nothing to share
    return packs


def check_cpu_memory(configs: Sequence[RunConfig], groups: Sequence[Sequence[int]],
                     sizes: Sequence[int], slots: int) -> None:
    """ConfigError (one line, with the figures) when the largest packs, as many at once as
    trials run, would not fit this machine's memory (``grokcore.pack_size``)."""
    import torch

    from grokcore.pack_size import check_fits

    for group, size in zip(groups, sizes):
        members = min(size, len(group)) * min(slots, math.ceil(len(group) / size))
        check_fits(configs[group[0]], members, torch.device("cpu"))


def measure_on_gpu(firsts: list[RunConfig], members: int | None) -> list[int]:
    """In a Ray task holding a whole GPU: each group's pack size (``members`` checked against
    the GPU's memory, or ``auto`` measured)."""
    import ray

    @ray.remote(num_gpus=1, num_cpus=1)
    def measure(firsts: list[RunConfig], members: int | None) -> list[Any]:
        import torch

        from grokcore.pack_size import best_pack_size, check_fits, measured_member_bytes

        device = torch.device("cuda")
        sizes = []
        for cfg in firsts:
            cfg = cfg.replace(device="cuda")
            if members is None:
                sizes.append(best_pack_size(cfg, CUDA_MOST, device)[0])
                continue
            per_member, rest = measured_member_bytes(cfg)
            try:
                check_fits(cfg, members, device, per_member, rest)
            except ConfigError as err:
                return [str(err)]
            sizes.append(members)
        return sizes

    sizes = ray.get(measure.remote(firsts, members))
    if sizes and isinstance(sizes[0], str):
        raise ConfigError(sizes[0])
    return sizes


def describe_packs(packs: Sequence[Sequence[int]] | None, n_runs: int) -> str:
    if packs is None:
        return f"{n_runs} runs, one trial each"
    sizes = sorted({len(p) for p in packs})
    shown = "-".join(str(s) for s in (sizes[0], sizes[-1])) if len(sizes) > 1 else str(sizes[0])
    return (f"{n_runs} runs in {len(packs)} pack{'s' if len(packs) != 1 else ''} of {shown}, "
            "one trial a pack")


PACKS_FILE = "packs.json"  # in the sweep's folder: the packs it was started with


def write_packs(path: str, packs: Sequence[Sequence[int]]) -> None:
    """Keep the packs beside Tune's state (local storage), so that a resume can name the runs
    of packs that never started."""
    import json
    from pathlib import Path

    if "://" in path:
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    (Path(path) / PACKS_FILE).write_text(json.dumps([list(p) for p in packs]))


def read_packs(path: str) -> list[list[int]] | None:
    import json
    from pathlib import Path

    found = Path(path) / PACKS_FILE
    return json.loads(found.read_text()) if "://" not in path and found.exists() else None


def sweep_packs(configs: Sequence[RunConfig], pack: str | int, resources, searching: bool,
                resume: bool, path: str) -> list[list[int]] | None:
    """A sweep's packs, once Ray is up: planned (:func:`plan_packs`, with the trials that fit
    at once; ConfigError before anything is written), or on resume the ones it started with.
    ``resources``: the runner's settled Resources."""
    import ray

    if resume:
        return read_packs(path)
    if searching:
        if pack != "off":
            raise ConfigError("--pack takes a grid; a search chooses its trials one at a time")
        return None
    cluster = ray.cluster_resources()
    slots = int(cluster.get("CPU", 1) // resources.cpus_per_trial)
    if resources.gpus_per_trial:
        slots = min(slots, int(cluster.get("GPU", 0) // resources.gpus_per_trial))
    if resources.max_concurrent:
        slots = min(slots, resources.max_concurrent)
    return plan_packs(configs, pack, max(slots, 1),
                      trains_on_cuda(configs, resources.gpus_per_trial or 0.0), measure_on_gpu)
