"""How many members a pack can hold, and how many help: memory and a timed choice.

* :func:`member_bytes`: an estimate of what one more member adds to a pack's memory: its
  parameters four times (weights, gradients, AdamW's two moments) in the stack and once more in
  its own trainer, its data, and the stacked step's activations on its training examples. On
  cuda :func:`measured_member_bytes` measures it instead (peak memory of a step of 1 and of 2
  members).
* :func:`check_fits`: a one-line ConfigError naming the memory figures when K members do not fit.
* :func:`best_pack_size`: on a GPU, the stacked step's member-epochs per second for K = 1, 2, 4,
  ... (as memory allows), and the largest K whose doubling still gained at least HELPS (10%).
  Measured, not guessed: the point where a GPU stops gaining depends on the chip and the model.
"""

from __future__ import annotations

import math
import os
import time
from typing import Sequence

from grokcore.config import ConfigError, RunConfig

HELPS = 1.10  # a doubling of K must raise member-epochs per second by this factor to count
MEMORY_SHARE = 0.8  # of the free memory a pack may plan to use (the rest: allocator, evaluation)
GIB = 2 ** 30


def _member_parts(cfg: RunConfig) -> tuple[int, int, int]:
    """(parameters, training examples, bytes of a number) of a run."""
    from grokcore.tasks import TASKS, build_dataset

    dataset = build_dataset(cfg)
    model = TASKS[cfg.task].make_model(cfg, dataset)
    size = 8 if cfg.dtype == "float64" else 4
    return sum(p.numel() for p in model.parameters()), len(dataset.train_labels), size


def member_bytes(cfg: RunConfig) -> int:
    """Estimated bytes one member adds to a pack (see the module doc)."""
    params, n_train, size = _member_parts(cfg)
    loss_size = 8 if cfg.loss_dtype == "float64" else 4
    # Saved for backward at the last position and the keys/values of every position: the MLP's
    # pre/post activations, the residual stream, attention, logits (and their loss-dtype copy).
    per_example = (3 * cfg.d_mlp + 8 * cfg.d_model + 6 * cfg.n_heads * cfg.d_head) * size \
        + 3 * 128 * loss_size  # logits, log-softmax and gradient, at up to 128 classes
    return 5 * params * size + n_train * per_example


def measured_member_bytes(cfg: RunConfig) -> tuple[int, int]:
    """(bytes per member, bytes of the rest) on cuda, from the peak memory of a stacked step of
    one member and of two."""
    import torch

    from grokcore.trainer import Trainer

    peaks = []
    for k in (1, 2):
        steps = _stacked(cfg, k, Trainer)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        steps.step()
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated())
        del steps
        torch.cuda.empty_cache()
    per_member = max(peaks[1] - peaks[0], 1)
    return per_member, max(peaks[0] - per_member, 0)


def available_bytes(device) -> int:
    """Free memory of a cuda device, or the CPU's available memory."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def check_fits(cfg: RunConfig, members: int, device, per_member: int | None = None,
               rest: int = 0) -> None:
    """ConfigError (one line, with the figures) when ``members`` runs like ``cfg`` do not fit."""
    per_member = per_member if per_member is not None else member_bytes(cfg)
    need, free = rest + members * per_member, available_bytes(device)
    if need > MEMORY_SHARE * free:
        fit = max(int((MEMORY_SHARE * free - rest) // per_member), 0)
        raise ConfigError(
            f"a pack of {members} members needs about {need / GIB:.1f} GiB ({per_member / 2**20:.1f}"
            f" MiB each), more than {MEMORY_SHARE:.0%} of the {free / GIB:.1f} GiB free on "
            f"{device}; use packs of at most {fit} (or --pack auto)")


def _stacked(cfg: RunConfig, k: int, trainer_cls):
    from grokcore.stacked import StackedSteps

    return StackedSteps([trainer_cls(cfg.replace(seed=cfg.seed + i, data_seed=cfg.data_seed + i))
                         for i in range(k)])


def member_rate(cfg: RunConfig, k: int, steps: int = 10) -> float:
    """Member-epochs per second of a stacked step of ``k`` members like ``cfg``."""
    import torch

    from grokcore.trainer import Trainer

    stack = _stacked(cfg, k, Trainer)
    sync = torch.cuda.synchronize if stack.train_x.device.type == "cuda" else (lambda: None)
    for _ in range(2):  # warm-up: kernels chosen, memory allocated
        stack.step()
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        stack.step()
    sync()
    return k * steps / (time.perf_counter() - started)


def best_pack_size(cfg: RunConfig, most: int, device) -> tuple[int, list[tuple[int, float]]]:
    """The largest K (a power of two, at most ``most``, fitting the device's memory) whose
    doubling still raised member-epochs per second by HELPS, and the rates measured."""
    per_member, rest = (measured_member_bytes(cfg) if device.type == "cuda"
                        else (member_bytes(cfg), 0))
    limit = max(int((MEMORY_SHARE * available_bytes(device) - rest) // per_member), 1)
    rates: list[tuple[int, float]] = []
    best, k = 1, 1
    while k <= min(most, limit):
        rates.append((k, member_rate(cfg, k)))
        if len(rates) > 1:
            if rates[-1][1] < HELPS * rates[-2][1]:
                break
            best = k
        k *= 2
    return best, rates


def balanced_chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    """``indices`` cut into ceil(n / size) consecutive chunks whose sizes differ by at most 1,
    the larger first."""
    n = len(indices)
    if n == 0:
        return []
    count = math.ceil(n / max(size, 1))
    bounds = [-(-i * n // count) for i in range(count + 1)]
    return [list(indices[a:b]) for a, b in zip(bounds, bounds[1:])]
