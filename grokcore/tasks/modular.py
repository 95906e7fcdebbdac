"""Arithmetic in Z_p shared by the expmod task and its progress measures (grokcore/progress.py)."""

from __future__ import annotations

import torch


def power_table(p: int, exponent: int) -> torch.Tensor:
    """x^exponent mod p for x in 0..p-1, computed exactly with Python integers."""
    return torch.tensor([pow(x, exponent, p) for x in range(p)], dtype=torch.long)
