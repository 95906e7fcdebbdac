"""The driver's MLflow metric rows, batched: queued in Tune's loop, written by a thread.

A trial's ``tune.report`` waits for the driver to take its previous result, so a store write per
row in Tune's loop would hold every trial up. ``log_row`` queues a row; a writer thread writes
each run's queued rows in one request every BATCH_SECONDS. Rows are written before a trial's
checkpoint is recorded (a resume skips no row), before its end values, and at the experiment's
end. ``GROK_MLFLOW_BATCH_S=0`` writes each row in Tune's loop, as it comes.
"""

from __future__ import annotations

import threading
from typing import Any

from sweeps import knobs

# Metric rows are written every batch_seconds() by a writer thread (MLflowTrialLogger.flush), at
# most BATCH_METRICS per request; GROK_MLFLOW_BATCH_S=0 writes each row in Tune's loop, as it comes.
BATCH_SECONDS: float | None = None  # set by tests and benchmarks; else GROK_MLFLOW_BATCH_S
BATCH_METRICS = 1000


def batch_seconds() -> float:
    return BATCH_SECONDS if BATCH_SECONDS is not None else knobs.seconds("GROK_MLFLOW_BATCH_S")


class Locked:
    """An MlflowClient whose calls hold a lock (the driver's loop and its row writer share it)."""

    def __init__(self, client, lock) -> None:
        self._inner, self._lock = client, lock

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)

        def locked(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)
        return locked if callable(attr) else attr


class RowBatching:
    """The queue and writer thread of MLflowTrialLogger (which provides ``client``)."""

    def _reset_batching(self) -> None:
        self._pending: dict[str, list[Any]] = {}  # run id -> metrics not yet written
        self._store_lock = threading.RLock()  # every store call, from Tune's loop or the writer
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._write_error: Exception | None = None

    # A trial's tune.report waits for the driver to take its previous result: a store write per
    # row in Tune's loop would hold every trial up. log_row queues; a writer thread writes each
    # run's queued rows in one request every BATCH_SECONDS. Rows are written before a trial's
    # checkpoint is recorded (a resume skips no row), before its end, and at the experiment's end.
    def _store_rows(self, run_id: str, metrics: list) -> None:
        """Queue ``metrics`` (one row) for the writer, or write them now when batching is off."""
        if batch_seconds() > 0:
            self._queue(run_id, metrics)
        else:
            self.client.log_batch(run_id, metrics=metrics)

    def _queue(self, run_id: str, metrics: list) -> None:
        with self._store_lock:
            self._pending.setdefault(run_id, []).extend(metrics)
        if self._writer is None or not self._writer.is_alive():
            self._stop.clear()
            self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                            name="mlflow-row-writer")
            self._writer.start()

    def _write_loop(self) -> None:
        while not self._stop.wait(batch_seconds()):
            try:
                self.flush()
            except Exception as err:  # the rows stay queued; the next flush tries again
                self._write_error = err

    def flush(self, run_id: str | None = None) -> None:
        """Write the queued metric rows (of one run, or of all) now."""
        with self._store_lock:
            for rid in ([run_id] if run_id is not None else list(self._pending)):
                metrics = self._pending.get(rid, [])
                while metrics:  # MLflow takes at most BATCH_METRICS metrics per request
                    self.client.log_batch(rid, metrics=metrics[:BATCH_METRICS])
                    del metrics[:BATCH_METRICS]
                self._pending.pop(rid, None)

    def on_experiment_end(self, trials, **info):
        self._stop.set()
        self.flush()
