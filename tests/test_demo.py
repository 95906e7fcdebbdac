"""The README's first command, the demo (`sweeps/expmod_grid.py --demo`), run as a new user runs
it: what it prints answers the question, and "grokked" means the outcome grokked everywhere.

After the demo the parent's per-outcome counts equal the trials' outcomes; no trial whose outcome
is not grokked is called grokked in the output, its tags or its metrics; the closing table is
sorted by (p, a, b); and the commands it prints last work when pasted into a plain shell.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from services import checkout_env

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("grokked", "no_delay", "lookup", "not_generalized", "diverged")


def test_the_demo_answers_the_question_in_one_vocabulary(tmp_path):
    from mlflow.tracking import MlflowClient

    done = subprocess.run([sys.executable, str(ROOT / "sweeps" / "expmod_grid.py"), "--demo"],
                          cwd=tmp_path, env=checkout_env(), capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout.splitlines()

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("expmod_demo")
    runs = client.search_runs([exp.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("run_kind") == "sweep"]
    trials = [r for r in runs if r is not parent]
    assert len(trials) == 9
    outcomes = {r.info.run_name.split()[0]: r.data.tags["outcome"] for r in trials}
    # the parent's counts, one per outcome, are the trials' outcomes
    counts = Counter(outcomes.values())
    for word in (*OUTCOMES, "failed", "unfinished"):
        assert parent.data.metrics[f"n_{word}"] == counts.get(word, 0), word
    # no tag or metric of a trial calls it grokked unless its outcome is grokked
    for run in trials:
        assert "grokked" not in run.data.tags and "grokked" not in run.data.metrics
        called = [k for k, v in run.data.tags.items() if v == "grokked"]
        assert called == (["outcome"] if run.data.tags["outcome"] == "grokked" else []), called
    # the output: a trial's lines say "grokked" only if its outcome is grokked
    for line in out:
        named = re.search(r"\ba(\d)b(\d) p31\b", line)
        if named and "grokked" in line:
            assert outcomes[f"a{named[1]}b{named[2]}"] == "grokked", line
    # the closing table: sorted by (p, a, b), the outcome of each trial, a legend below
    head = next(i for i, line in enumerate(out) if line.split()[:4] == ["a", "b", "p", "outcome"])
    rows = [line.split() for line in out[head + 1:head + 10]]
    assert [(int(r[0]), int(r[1])) for r in rows] == sorted((int(r[0]), int(r[1])) for r in rows)
    assert {f"a{r[0]}b{r[1]}": r[3] for r in rows} == outcomes
    assert out[head + 10].startswith("grokked: test acc reached 0.99")
    assert "unseen acc" in out[head] and "leakage" in out[head]
    # the commands printed last, pasted into a plain shell in the demo's folder
    commands = [line.strip() for line in out[out.index(
        "Go further (paste a command into a shell in this folder):") + 1:]
        if line.startswith("    ")]
    assert len(commands) == 3 and " ui --backend-store-uri sqlite:///mlflow.db" in commands[0]
    plain = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
             "PYTHONPATH": str(ROOT)}
    for command in commands[1:]:
        ran = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=plain,
                             capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, (command, ran.stderr[-2000:])
    figures = next(tmp_path.glob("figures_*"))
    assert {"curves.png", "history.csv", "summary.json"} <= {p.name for p in figures.iterdir()}
