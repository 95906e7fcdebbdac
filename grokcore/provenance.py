"""What a run actually ran with: the code, the library, the device and how its step was run.

Two runs of "the same config" can differ in what produced them: another commit of this code, a
tree with uncommitted edits, another torch, a GPU instead of the CPU, a compiled step instead of
an eager one, more threads, a pack of runs trained as one model (``pack_size``: 1 alone, K in a
pack of K, ``grokcore.pack``). :func:`provenance` names these for one trainer; a run's summary holds
them (``summary["provenance"]``), a sweep tags them on the trial's MLflow run and the trials CSV
carries them (``analysis.trials``), so a table can say when a row mixes them.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

# The provenance fields, in the order a trials CSV lists them. Each is an MLflow tag of the same
# name; ``device`` is also a node tag (it is where the trial runs).
PROVENANCE_FIELDS = ("compiled", "torch_version", "device", "torch_threads", "code_commit",
                     "code_dirty", "pack_size")
UNKNOWN = "unknown"


@functools.cache
def code_version() -> tuple[str, str]:
    """(commit, dirty) of the checkout this package was imported from: the commit's full hash
    and "true"/"false" for uncommitted changes to tracked files; ("unknown", "unknown") when the
    package is not in a git checkout (an installed copy, a Ray worker given the code as files),
    unless whoever copied it there named the commit in GROK_CODE_COMMIT (a copy of a clean
    checkout: results/gpu_runs.sh on a machine the tree is copied to without its .git)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists() and os.environ.get("GROK_CODE_COMMIT"):
        return os.environ["GROK_CODE_COMMIT"], "false"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                  "--untracked-files=no"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN, UNKNOWN
    return commit or UNKNOWN, "true" if changes else "false"


def device_name(device: torch.device) -> str:
    """Where a run trains, for its record: ``cpu`` or e.g. ``cuda:0 NVIDIA H100 80GB HBM3``."""
    import torch

    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def provenance(trainer) -> dict[str, str]:
    """The provenance of ``trainer``'s run, as text (tag values)."""
    import torch

    commit, dirty = code_version()
    return {"compiled": "on" if trainer.compiled else "off",
            "torch_version": torch.__version__,
            "device": device_name(trainer.device),
            "torch_threads": str(torch.get_num_threads()),
            "code_commit": commit,
            "code_dirty": dirty,
            # 1 for a run trained alone; K for a member of a pack (grokcore/pack.py)
            "pack_size": str(getattr(trainer, "pack_size", 1))}


def merged(before: str | None, now: str) -> str:
    """A tag's value after a run (resumed elsewhere, or under other code) ran with ``now``: the
    distinct values in the order seen, joined by "|", so a run that changed is visible."""
    seen = [v for v in (before or "").split("|") if v]
    return "|".join(seen if now in seen else [*seen, now])
