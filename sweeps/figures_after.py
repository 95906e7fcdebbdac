"""A sweep's figures, drawn in the driver's machine after each trial has ended (driver side).

Drawing a trial's six figures takes about 1.2 s of CPU at p = 31 (more under load; 1.9 s before
fixed margins: benchmarks/figure_speed.py), a twelfth of a demo trial's training, and in the
trial it holds that trial's CPU, and the next trial, up. So with ``figures="after"`` (a sweep's
default) a trial writes its record without figures and the driver draws them from that record
(:func:`draw_from_record`: the same images, byte for byte) in processes of its own at the lowest
CPU priority (``SCHED_IDLE``): while trials train they get only a few percent of a core (Ray's
workers run at nice 15) and whatever the trials leave idle; once the last trial has ended, every
core.

A run's tag ``figures`` says where its figures are: ``pending`` (to be drawn), ``drawn``,
``in_trial`` (drawn by the trial, ``figures="trial"``), ``none`` (``figures="none"``) or
``failed`` (with ``figures_error``). A driver that dies before drawing them leaves ``pending``:
``--resume`` draws them from the record files in MLflow; the drawing processes end with it.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from grokcore.records import CONFIG_FILE, HISTORY_FILE, SUMMARY_FILE, SWEEP_TAG, WEIGHTS_FILE

HURRY_EVERY_S = 2.0  # wait_all raises late-starting drawing processes at least this often
FIGURES_TAG = "figures"
FIGURES_ERROR_TAG = "figures_error"
FIGURE_MODES = ("after", "trial", "none")
# What a trial's tag says once its end is logged, by the sweep's mode (and "drawn" / "failed"
# once the driver has drawn them).
TAG_AT_END = {"after": "pending", "trial": "in_trial", "none": "none"}
# The record files the figures are drawn from (grokcore.records.load_run_folder).
RECORD_FOR_FIGURES = (CONFIG_FILE, HISTORY_FILE, SUMMARY_FILE, WEIGHTS_FILE)


def check_mode(mode: str) -> str:
    from grokcore.config import ConfigError

    if mode not in FIGURE_MODES:
        raise ConfigError(f"figures must be one of {', '.join(FIGURE_MODES)}, not {mode!r}")
    return mode


def figures_tag_at_end(mode: str, files: Iterable[Path]) -> str:
    """The ``figures`` tag of a run whose record files are ``files``, in a sweep of ``mode``."""
    if any(Path(f).suffix == ".png" for f in files):
        return TAG_AT_END["trial"]  # drawn by the trial (also a sweep started before "after")
    return TAG_AT_END[mode]


def log_drawn(client, run_id: str, drawn: list[Path] | BaseException) -> None:
    """Log a run's drawn figures as its artifacts and tag it ``drawn`` (``failed`` with the
    error when drawing failed: the run's record is complete either way)."""
    from sweeps.console import one_line

    if isinstance(drawn, BaseException):
        client.set_tag(run_id, FIGURES_ERROR_TAG, one_line(drawn)[:4000])
        client.set_tag(run_id, FIGURES_TAG, "failed")
        return
    for path in drawn:
        client.log_artifact(run_id, str(path))
    client.set_tag(run_id, FIGURES_TAG, "drawn")


def draw_pending(client, experiment_id: str, sweep: str, say: Callable[[str], None] = print,
                 every_s: float = 30.0) -> int:
    """After the sweep's trials: wait for the figures still being drawn and draw those of runs
    that an earlier driver left ``pending`` (from their record files in MLflow), logging each;
    returns how many runs got their figures."""
    queue = shared_queue()
    left = client.search_runs([experiment_id], f"tags.{SWEEP_TAG} = '{sweep}' and "
                              f"tags.{FIGURES_TAG} = 'pending'")
    for run in left:
        run_id = run.info.run_id
        if run_id not in queue:
            folder = Path(tempfile.mkdtemp(prefix="grok_record_"))
            try:
                files = [Path(client.download_artifacts(run_id, name, str(folder)))
                         for name in RECORD_FOR_FIGURES]
                queue.submit(run_id, files)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    if len(queue):
        say(f"figures: drawing those of {len(queue)} runs")
    return queue.wait_all(lambda run_id, drawn: log_drawn(client, run_id, drawn), say, every_s)


PIDS = "pids"  # the drawing processes' pids, one empty file each, in the queue's folder


def _pool_process(folder: str) -> None:
    """Pool initializer: end with the driver, and run only on cycles nothing else wants, on one
    thread."""
    _end_with_parent(folder)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(19)
    # Its pid where the queue finds it (hurry): the pool has no public list of its processes.
    # Written after lowering itself, so that a hurry() that finds the pid always comes after
    # the lowering and is never undone by it.
    (Path(folder) / PIDS).mkdir(exist_ok=True)
    (Path(folder) / PIDS / str(os.getpid())).touch()
    import torch

    torch.set_num_threads(1)
    # matplotlib, torch and TransformerLens imported once per process, here (a task's own
    # figure module is imported at its first figure)
    import grokcore.figures  # noqa: F401
    import grokcore.tasks  # noqa: F401

    # What was imported lives as long as the process: kept out of the garbage collector's
    # full passes, which matplotlib's many small objects set off (a tenth of a run's figures).
    gc.collect()
    gc.freeze()


def _end_with_parent(folder: str, every_s: float = 2.0) -> None:
    """A driver killed outright (SIGKILL, the OOM killer) cannot shut its pool down, and the
    pool's processes never see their queue close (each holds both ends of it): they would live
    on, half a GB each. So a thread ends this process, and removes the queue's ``folder`` of
    record copies, once the process that started it is gone."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(0)

    threading.Thread(target=watch, name="end-with-driver", daemon=True).start()


def draw_from_record(folder: str | Path) -> list[Path]:
    """The figures of a run whose record (``grokcore.records.write_run_folder`` without
    figures) is in ``folder``, written beside it: the images the run would have drawn."""
    import torch

    from grokcore.figures import write_run_figures
    from grokcore.records import load_run_folder
    from grokcore.tasks import TASKS

    cfg, history, summary, model, dataset = load_run_folder(folder)
    with torch.no_grad():
        return write_run_figures(cfg, history, summary, model, dataset, folder,
                                 task=TASKS[cfg.task])


def _draw(folder: str) -> list[str]:  # in a pool process
    return [str(p) for p in draw_from_record(folder)]


class FigureQueue:
    """Figures to draw: copies of the runs' record files in a folder of its own, drawn by a pool
    of ``processes`` lowest-priority processes (started at the first run, "spawn": the driver has
    threads), handed back by :meth:`drawn` as they finish."""

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes or max(1, min(4, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._folder: Path | None = None
        self._futures: dict[str, Future] = {}  # run id -> its drawing

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._futures

    def __len__(self) -> int:
        return len(self._futures)

    def submit(self, run_id: str, files: Iterable[Path]) -> None:
        """Draw the figures of ``run_id`` from these record files (copied now: a trial's folder
        may be gone by the time they are drawn)."""
        import multiprocessing

        if self._pool is None:
            self._folder = Path(tempfile.mkdtemp(prefix="grok_figures_"))
            self._pool = ProcessPoolExecutor(self.processes, multiprocessing.get_context("spawn"),
                                             initializer=_pool_process,
                                             initargs=(str(self._folder),))
        folder = self._folder / run_id
        folder.mkdir(parents=True, exist_ok=True)
        for path in files:
            if Path(path).name in RECORD_FOR_FIGURES:
                shutil.copy2(path, folder / Path(path).name)
        self._futures[run_id] = self._pool.submit(_draw, str(folder))

    def drawn(self) -> list[tuple[str, list[Path] | BaseException]]:
        """Runs whose drawing has ended, without waiting: ``(run_id, figure paths)``, or
        ``(run_id, the error)``. The caller logs the files, then calls :meth:`forget`."""
        ended = []
        for run_id, future in list(self._futures.items()):
            if future.done():
                del self._futures[run_id]
                error = future.exception()
                ended.append((run_id, error if error is not None
                              else [Path(p) for p in future.result()]))
        return ended

    def forget(self, run_id: str) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder / run_id, ignore_errors=True)

    def pids(self) -> list[int]:
        """The drawing processes' pids (each leaves one in the queue's folder as it starts)."""
        folder = self._folder / PIDS if self._folder is not None else None
        return [int(p.name) for p in folder.iterdir()] if folder and folder.is_dir() else []

    def hurry(self) -> None:
        """The trials have ended: give the drawing processes a normal priority, so that other
        work on the machine cannot starve them. Needs the right to raise a priority (root,
        CAP_SYS_NICE or RLIMIT_NICE); without it they keep the cycles nobody else wants."""
        for pid in self.pids():
            try:
                os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
            except (AttributeError, OSError):
                pass

    def wait_all(self, log: Callable[[str, list[Path] | BaseException], None],
                 say: Callable[[str], None] = print, every_s: float = 30.0) -> int:
        """Wait for every drawing (at normal priority: :meth:`hurry`), logging each as it ends
        (``log``) and a progress line every ``every_s`` seconds; returns how many were drawn."""
        from concurrent.futures import FIRST_COMPLETED, wait

        total, count, last = len(self._futures), 0, time.monotonic()
        while self._futures:
            # again at every wake-up: a process still starting when this began lowers itself
            # afterwards, and at SCHED_IDLE on a busy machine it would wait for ever
            self.hurry()
            wait(list(self._futures.values()), timeout=min(max(every_s, 1.0), HURRY_EVERY_S),
                 return_when=FIRST_COMPLETED)
            for run_id, result in self.drawn():
                log(run_id, result)
                self.forget(run_id)
                count += 1
            if self._futures and time.monotonic() - last >= every_s:
                say(f"figures: {count} of {total} runs drawn")
                last = time.monotonic()
        return count

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._futures.clear()


# One queue per driver process: Tune restores a resumed sweep's logger from its own pickled
# state, so the sweep reaches the queue here rather than through the logger it created.
_QUEUE: FigureQueue | None = None


def shared_queue() -> FigureQueue:
    global _QUEUE
    if _QUEUE is None:
        _QUEUE = FigureQueue()
    return _QUEUE


def close_shared_queue() -> None:
    global _QUEUE
    if _QUEUE is not None:
        _QUEUE.close()
        _QUEUE = None
