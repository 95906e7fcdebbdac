"""Timing two ways of doing the same step side by side, so that machine noise hits both alike."""

from __future__ import annotations

import statistics
from typing import Callable, Iterable

import torch
from torch.utils import benchmark


def ms_per_step(step: Callable[[], None], steps: int) -> float:
    """Mean milliseconds a call of ``step`` takes over ``steps`` calls, by
    ``torch.utils.benchmark.Timer`` (it synchronizes cuda around the timed calls), at the
    caller's number of torch threads (the Timer's own default would be one)."""
    timer = benchmark.Timer(stmt="step()", globals={"step": step},
                            num_threads=torch.get_num_threads())
    return timer.timeit(steps).mean * 1000


def side_by_side(baseline: Callable[[], None], candidate: Callable[[], None], steps: int,
                 rounds: int, warmup: int = 1) -> tuple[float, float]:
    """Median ms per step of (baseline, candidate), timed in alternating rounds after a warm-up."""
    for step in (candidate, baseline):  # warm up the allocator and the kernels
        ms_per_step(step, warmup)
    baseline_ms, candidate_ms = [], []
    for _ in range(rounds):
        candidate_ms.append(ms_per_step(candidate, steps))
        baseline_ms.append(ms_per_step(baseline, steps))
    return statistics.median(baseline_ms), statistics.median(candidate_ms)


def print_comparison(cases: Iterable[tuple[str, Callable[[], tuple[float, float]]]],
                     baseline: str, candidate: str,
                     note: Callable[[float, float], str] = lambda base, cand: "") -> None:
    """Measure each case (a callable giving baseline and candidate ms/step), one line each, then
    the lines ``speedup <case>: X.XX`` (baseline time / candidate time) that the README quotes."""
    speedups = {}
    for name, measure in cases:
        base, cand = measure()
        speedups[name] = base / cand
        print(f"{name}: {baseline} {base:7.1f} ms/step   {candidate} {cand:7.1f} ms/step"
              f"{note(base, cand)}", flush=True)
    for name, speedup in speedups.items():
        print(f"speedup {name}: {speedup:.2f}")
