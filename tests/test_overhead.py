"""The driver's batched MLflow writes lose no row and log the same histories as writing each row
at once; a trial reports where its time went. No Ray here: the logger's Tune hooks are called as
Tune calls them, with stand-in trials, on a real SQLite store."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from grokcore.config import RunConfig
from sweeps import row_writer, tracking
from sweeps.trial import TuneReporter, trial_key

METRICS = ("train_loss", "test_loss", "train_acc", "test_acc")


def _trial(i: int, sweep: str) -> SimpleNamespace:
    cfg = RunConfig(p=31, seed=i, epochs=400, eval_every=10)
    config = {"trial": {"index": i, "key": trial_key(sweep, cfg.to_json()), "run": cfg.to_dict()}}
    return SimpleNamespace(config=config, trial_id=f"t{i}", last_result={}, checkpoint=None)


def _end(epochs: int) -> dict:
    summary = {"status": "not_reached", "outcome": "not_generalized", "reached": False,
               "threshold_epoch": None, "memorization_epoch": None, "threshold_delay": None,
               "n_spikes": 0, "epochs_run": epochs, "seconds": 1.0}
    return {"summary": summary, "dataset_stats": {"n_train": 480}, "start_epoch": 0}


def _drive(logger, n_trials: int, epochs: int, crash_after: int | None = None) -> None:
    """Interleaved results of several trials, a checkpoint every 100 epochs, then their ends.
    With ``crash_after``, stop after that many results without ending (a driver crash)."""
    trials = [_trial(i, logger.sweep) for i in range(n_trials)]
    for t in trials:
        logger.on_trial_start(0, trials, t)
    rng = random.Random(0)
    events = [(t, epoch) for epoch in range(0, epochs + 1, 10) for t in trials]
    rng.shuffle(events)
    events.sort(key=lambda e: e[1])  # each trial in order, trials interleaved
    for n, (t, epoch) in enumerate(events):
        if crash_after is not None and n == crash_after:
            return
        row = {"epoch": epoch, **{m: epoch / 1000 + int(t.trial_id[1:]) for m in METRICS}}
        logger.on_trial_result(0, trials, t, {"row": row})
        if epoch % 100 == 0 and epoch:
            logger.on_checkpoint(0, trials, t, checkpoint=object())
    for t in trials:
        logger.on_trial_result(0, trials, t, {"end": _end(epochs)})
        logger._checkpoints.pop(logger._key(t), None)  # stand-in checkpoints hold no files
        logger.on_trial_complete(0, trials, t)
    logger.on_experiment_end(trials)


def _histories(uri: str, sweep: str) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("e")
    out = {}
    for run in client.search_runs([exp.experiment_id], f"tags.sweep = '{sweep}'"):
        out[run.data.tags["grid_index"]] = {
            m: sorted((h.step, h.value) for h in client.get_metric_history(run.info.run_id, m))
            for m in METRICS}
        assert run.info.status == "FINISHED"
    return out


def test_batched_writes_lose_no_row_and_match_unbatched(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(row_writer, "BATCH_SECONDS", 0.0)
    _drive(tracking.MLflowTrialLogger(uri, "e", "plain"), n_trials=4, epochs=400)
    monkeypatch.setattr(row_writer, "BATCH_SECONDS", 3600.0)  # only the flush points write
    batched = tracking.MLflowTrialLogger(uri, "e", "batched")
    writes = []
    real = batched.client.log_batch
    monkeypatch.setattr(batched.client, "log_batch",
                        lambda run_id, **kw: (writes.append(len(kw.get("metrics") or [])),
                                              real(run_id, **kw))[1])
    _drive(batched, n_trials=4, epochs=400)
    plain, got = _histories(uri, "plain"), _histories(uri, "batched")
    assert set(got) == {"0", "1", "2", "3"}
    assert got == plain
    assert all(len(h) == 41 for run in got.values() for h in run.values())  # epochs 0..400 by 10
    # Batched: far fewer writes than the 4 x 41 rows (a write per checkpoint and end).
    row_writes = [n for n in writes if n and n % len(METRICS) == 0]
    assert len(row_writes) < 4 * 41 / 4


def test_rows_written_before_each_checkpoint_survive_a_driver_crash(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(row_writer, "BATCH_SECONDS", 3600.0)
    # 4 trials x 26 results: each trial reached epoch 250, checkpointed at 100 and 200.
    logger = tracking.MLflowTrialLogger(uri, "e", "crash")
    _drive(logger, n_trials=4, epochs=400, crash_after=4 * 26)
    assert sum(map(len, logger._pending.values())) == 4 * 5 * len(METRICS)  # 210..250 queued
    logger._stop.set()  # the writer thread of the "crashed" driver
    for run in _histories_unfinished(uri, "crash").values():
        assert [s for s, _ in run] == list(range(0, 201, 10))  # nothing after is promised


def _histories_unfinished(uri: str, sweep: str) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("e")
    return {run.data.tags["grid_index"]: sorted(
                (h.step, h.value) for h in client.get_metric_history(run.info.run_id, "train_loss"))
            for run in client.search_runs([exp.experiment_id], f"tags.sweep = '{sweep}'")}


def test_a_trial_reports_where_its_time_went(monkeypatch):
    import sys

    reported = []
    fake_tune = SimpleNamespace(report=lambda result, checkpoint=None: reported.append(result),
                                Checkpoint=SimpleNamespace(from_directory=lambda d: d))
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(tune=fake_tune))
    monkeypatch.setitem(sys.modules, "ray.tune", fake_tune)
    from grokcore.trainer import Trainer

    import time

    clock = {"entered": 1.0, "imported": 2.0, "built": 3.0, "cpu_built": time.process_time()}
    trainer = Trainer(RunConfig(p=5, d_model=16, d_head=4, n_heads=2, d_mlp=32, frac_train=0.5,
                                epochs=20, eval_every=10, device="cpu"))
    trainer.callbacks = [TuneReporter(clock=clock)]
    trainer.run()
    timing = reported[-1]["trial_timing"]
    assert {"entered", "imported", "built", "first_eval", "end_started", "record_written",
            "loop_seconds", "report_seconds", "cpu_built", "cpu_end_started",
            "report_cpu_seconds"} <= set(timing)
    assert 0 <= timing["report_cpu_seconds"] <= timing["cpu_end_started"] - timing["cpu_built"]
    assert timing["first_eval"] <= timing["end_started"] <= timing["record_written"]
    assert 0 <= timing["report_seconds"] <= timing["loop_seconds"]
    assert abs(timing["loop_seconds"] - trainer.seconds) < 1e-3



def test_rows_gathered_between_reports_are_each_logged_once(tmp_path, monkeypatch):
    """A trial reports its evaluations in groups (at most every REPORT_EVERY_S, always with a
    checkpoint and at the end); the driver logs every row of every group, once, in order."""
    import sys

    from sweeps import trial as trial_module
    from sweeps.trial import rows_of

    reported = []
    fake_tune = SimpleNamespace(report=lambda result, checkpoint=None: reported.append(result),
                                Checkpoint=SimpleNamespace(from_directory=lambda d: d))
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(tune=fake_tune))
    monkeypatch.setitem(sys.modules, "ray.tune", fake_tune)
    monkeypatch.setattr(trial_module, "REPORT_EVERY_S", 3600.0)  # only checkpoints report
    from grokcore.trainer import Trainer

    cfg = RunConfig(p=5, d_model=16, d_head=4, n_heads=2, d_mlp=32, frac_train=0.5, epochs=100,
                    eval_every=10, checkpoint_every=50, device="cpu")
    trainer = Trainer(cfg, callbacks=[TuneReporter(figures_in_trial=False)])
    trainer.run()
    evals = [r for r in reported if "end" not in r]
    assert [r["timesteps_total"] for r in evals] == [0, 50, 100]  # one report per checkpoint
    assert [len(rows_of(r)) for r in evals] == [1, 5, 5]
    assert [row for r in reported for row in rows_of(r)] == trainer.history

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logger = tracking.MLflowTrialLogger(uri, "e", "gathered")
    stand_in = SimpleNamespace(config={"trial": {"index": 0, "key": "k", "run": cfg.to_dict()}},
                               trial_id="t0", last_result={}, checkpoint=None)
    logger.on_trial_start(0, [stand_in], stand_in)
    for result in reported:
        logger.on_trial_result(0, [stand_in], stand_in, result)
    logger.on_trial_complete(0, [stand_in], stand_in)
    logger.on_experiment_end([stand_in])
    client = logger.client
    (run,) = client.search_runs([logger._experiment_id], "tags.sweep = 'gathered'")
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")]
    assert steps == list(range(0, 101, 10))

# ---- figures drawn after the trial, by the driver ------------------------------------------------
def _finished_record(tmp_path, figures: bool):
    from grokcore import records
    from grokcore.trainer import Trainer

    cfg = RunConfig(p=23, frac_train=0.5, lr=3e-3, weight_decay=3.0, epochs=100, eval_every=20,
                    measure_every=100)
    trainer = Trainer(cfg)
    summary = trainer.run()
    folder = tmp_path / ("with_figures" if figures else "record")
    records.write_run_folder(trainer, summary, folder, figures=figures)
    return trainer, folder


def test_figures_drawn_from_the_record_are_the_trials_own(tmp_path):
    """The driver's figures (drawn later from the record files) are byte for byte those the
    trial would have drawn, and the history read back is the trainer's."""
    from grokcore.records import HISTORY_FILE, read_history_csv
    from sweeps.figures_after import draw_from_record

    trainer, drawn_in_run = _finished_record(tmp_path, figures=True)
    _, record = _finished_record(tmp_path, figures=False)
    assert not list(record.glob("*.png"))
    history = read_history_csv(record / HISTORY_FILE)
    # what the CSV cannot tell apart comes back absent: None (no seen-class test set here), ""
    assert [{k: v for k, v in row.items() if v not in (None, "")}
            for row in trainer.history] == history
    pngs = sorted(p.name for p in drawn_in_run.glob("*.png"))
    assert {"curves.png", "progress_measures.png", "attention.png"} <= set(pngs)
    assert sorted(p.name for p in draw_from_record(record)) == pngs
    for name in pngs:
        assert (record / name).read_bytes() == (drawn_in_run / name).read_bytes(), name


def test_pending_figures_are_drawn_from_mlflow_and_logged(tmp_path):
    """A run whose driver died before drawing its figures (tag figures=pending, record files
    logged) gets them from the next driver: drawn by the low-priority pool from the files in
    MLflow, logged, tagged drawn. A record that cannot be drawn is tagged failed, with why."""
    from mlflow.tracking import MlflowClient

    from grokcore.records import record_files
    from sweeps.figures_after import FIGURES_ERROR_TAG, FIGURES_TAG, close_shared_queue, draw_pending

    _, record = _finished_record(tmp_path, figures=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = tracking.ensure_experiment(uri, "e")
    runs = {}
    for name in ("ok", "broken"):
        run_id = client.create_run(exp, tags={"sweep": "s", FIGURES_TAG: "pending"}).info.run_id
        for path in record_files(record):
            if not (name == "broken" and path.name == "model.pt"):
                client.log_artifact(run_id, str(path))
        if name == "broken":
            client.log_artifact(run_id, str(_empty(tmp_path / "model.pt")))
        client.set_terminated(run_id)
        runs[name] = run_id
    said = []
    try:
        assert draw_pending(client, exp, "s", say=said.append) == 2
    finally:
        close_shared_queue()
    ok, broken = (client.get_run(runs[n]) for n in ("ok", "broken"))
    assert ok.data.tags[FIGURES_TAG] == "drawn"
    logged = {a.path for a in client.list_artifacts(runs["ok"])}
    assert {"curves.png", "progress_measures.png", "neuron_fourier.png"} <= logged
    assert broken.data.tags[FIGURES_TAG] == "failed" and broken.data.tags[FIGURES_ERROR_TAG]
    assert not any(a.path.endswith(".png") for a in client.list_artifacts(runs["broken"]))
    assert said and "2 runs" in said[0]
    # nothing left pending: a second pass draws nothing
    assert draw_pending(client, exp, "s", say=said.append) == 0


def _empty(path):
    path.write_bytes(b"")
    return path


def test_hurry_raises_the_drawing_processes_from_idle_priority():
    """The figure queue's processes draw at SCHED_IDLE; once the trials have ended, hurry()
    gives them SCHED_OTHER (found through the pid files they leave, not the pool's internals)."""
    import os
    import time

    from sweeps.figures_after import FigureQueue

    queue = FigureQueue(processes=1)
    try:
        queue.submit("not-a-run", [])  # starts the pool; drawing an empty folder fails
        # Wait for the process to start and lower itself, not for its drawing: at SCHED_IDLE
        # the drawing's imports get no CPU while anything else runs (42 s here beside a sweep).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pids = queue.pids()
            if pids and os.sched_getscheduler(pids[0]) == os.SCHED_IDLE:
                break
            time.sleep(0.1)
        assert len(pids) == 1
        assert os.sched_getscheduler(pids[0]) == os.SCHED_IDLE
        queue.hurry()
        assert os.sched_getscheduler(pids[0]) == os.SCHED_OTHER
    finally:
        queue.close()


def test_wait_all_raises_a_drawing_process_that_lowered_itself_late(tmp_path):
    """A drawing process that lowers itself to SCHED_IDLE after wait_all's first hurry (it was
    still starting) is raised again while wait_all waits: at SCHED_IDLE on a busy machine it
    could wait for ever (a sweep's end hung 300 s so). The drawing is held on a named pipe, so
    wait_all is surely waiting while the process is lowered again."""
    import os
    import threading
    import time

    from sweeps.figures_after import FigureQueue

    def wait_for(condition, seconds=120.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return False

    queue = FigureQueue(processes=1)
    held = tmp_path / "unused"
    try:
        queue.submit("warm-up", [])  # starts the process; drawing an empty folder fails
        assert wait_for(lambda: queue.pids() and queue.drawn())
        pid = queue.pids()[0]
        held = queue._folder / "held"  # the record the next drawing reads: a pipe, no writer yet
        held.mkdir()
        os.mkfifo(held / "config.json")
        queue.submit("held", [])
        waiting = threading.Thread(target=queue.wait_all,
                                   kwargs={"log": lambda *a: None, "say": lambda *a: None})
        waiting.start()
        assert wait_for(lambda: os.sched_getscheduler(pid) == os.SCHED_OTHER)  # the first hurry
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))  # lowered late
        assert wait_for(lambda: os.sched_getscheduler(pid) == os.SCHED_OTHER, seconds=30)
        assert waiting.is_alive()  # still held: it was wait_all that raised it
        release(held / "config.json")
        waiting.join(timeout=120)
        assert not waiting.is_alive()
    finally:
        if held.exists():
            release(held / "config.json")
        queue.close()


def release(pipe) -> None:
    """Let a drawing held on a named pipe end (it fails: no JSON), if it is reading the pipe."""
    import errno
    import os

    try:
        fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno == errno.ENXIO:  # nobody reads it (any more)
            return
        raise
    os.write(fd, b"not a record")
    os.close(fd)


@pytest.mark.parametrize("name,value", [("GROK_REPORT_EVERY_S", "abc"),
                                        ("GROK_MLFLOW_BATCH_S", "-1"),
                                        ("GROK_MLFLOW_BATCH_S", "nan")])
def test_a_bad_knob_is_one_line_before_the_sweep_starts(name, value, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "sweeps" / "expmod_grid.py"
    done = subprocess.run([sys.executable, str(script), "--tracking-uri",
                           f"sqlite:///{tmp_path / 'mlflow.db'}"], cwd=tmp_path,
                          env={**os.environ, name: value}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: {name}={value!r} is not a number of seconds >= 0; unset it (default 1) or give "
        "one such as 0.5"]
    assert not (tmp_path / "mlflow.db").exists()
