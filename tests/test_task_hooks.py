"""What is task-specific lives behind the task's hooks (``grokcore.tasks.base.TaskBase``): the
grok table's own columns and the paper's figures (``analysis.table``, ``analysis.table_render``),
run names (``sweeps.run_names``) and the MLflow view (``sweeps.mlflow_view``) follow what a task
declares, never its name.

Three tasks show it: ``twin``, expmod's declarations under another name (registered here), gets
every expmod column; gcd gets none; expmod with its declarations taken away gets none either.
"""

import pandas as pd
import pytest

from analysis.table import build_table
from analysis.table_render import render
from grokcore.config import RunConfig
from grokcore.tasks import TASKS
from grokcore.tasks.expmod import ExpModTask
from sweeps.mlflow_view import view_columns, view_state
from sweeps.run_names import run_name

# Three runs of one row: threshold epochs 1000, 2000, 4000; unseen-class accuracy 0.2, 0.5, 0.9
# (median 0.5); leakage 0.0, 0.3, 0.3 (mean 0.2); x -> x^1 a bijection (first known value).
RUNS = [dict(threshold_epoch=t, final_test_acc_unseen=u, leakage=k, bijective_a=bij)
        for t, u, k, bij in [(1000, 0.2, 0.0, None), (2000, 0.5, 0.3, 1.0), (4000, 0.9, 0.3, 1.0)]]
EXPMOD_COLUMNS = {"unseen_acc", "n_test_unseen", "leakage", "label_entropy", "label_chi2_pvalue",
                  "bijective_a", "bijective_b", "paper_grok_epoch", "paper_vs_runs"}
EXPMOD_HEADERS = ("unseen", "leakage", "paper")


class TwinTask(ExpModTask):
    name = "twin"


@pytest.fixture
def twin(monkeypatch):
    monkeypatch.setitem(TASKS, "twin", TwinTask())
    return "twin"


def _trials(task: str, **values) -> pd.DataFrame:
    """The three RUNS as trial lines of ``task`` with ``values`` (its keys, end values)."""
    return pd.DataFrame([dict(task=task, **values, dtype="float32", frac_train=0.3, seed=i,
                              status="reached", outcome="grokked", epochs_run=r["threshold_epoch"]
                              + 100, final_test_acc=1.0, **r) for i, r in enumerate(RUNS)])


def _headers(table: pd.DataFrame) -> list[str]:
    """The text table's header cells (its second line: the first names the shared settings)."""
    return render(table, "text").splitlines()[1].split()


def test_a_task_declaring_expmods_hooks_gets_its_columns_under_any_name(twin):
    table = build_table(_trials(twin, a=1, b=1, p=113, split="pairs"))
    row = table.iloc[0]
    assert EXPMOD_COLUMNS <= set(table.columns)
    assert row.unseen_acc == pytest.approx(0.5) and row.leakage == pytest.approx(0.2)
    assert bool(row.bijective_a)
    assert row.paper_grok_epoch == "18100"  # the seed paper's Table 1: (1, 1, 113) at 18100
    assert [h for h in EXPMOD_HEADERS if h not in _headers(table)] == []
    # split by classes, the paper's figure (split by pairs) is not this row's
    classes = build_table(_trials(twin, a=1, b=1, p=113, split="classes")).iloc[0]
    assert classes.paper_grok_epoch == ""
    cfg = RunConfig(task=twin, p=31, a=3, b=4, frac_train=0.5, dtype="float64", seed=2)
    assert run_name(cfg) == "a3b4 p31 frac0.5 fp64 s2"
    assert {"metrics.`test_acc_unseen`", "metrics.`leakage`"} <= set(view_columns(twin))
    charts = [c.get("metricKey") for c in view_state(twin)["compareRunCharts"]]
    assert charts[:3] == ["test_acc", "test_acc_unseen", "train_loss"]


def _without_expmod_columns(task: str, table: pd.DataFrame) -> None:
    assert not EXPMOD_COLUMNS & set(table.columns), task
    assert not set(EXPMOD_HEADERS) & set(_headers(table)), task
    columns = view_columns(task)
    assert "metrics.`test_acc_unseen`" not in columns and "metrics.`leakage`" not in columns
    charts = [c.get("metricKey") for c in view_state(task)["compareRunCharts"]]
    assert charts[:2] == ["test_acc", "train_loss"]


def test_gcd_gets_none_of_expmods_columns():
    table = build_table(_trials("gcd", base=10, gcd_sampling="uniform", n_max=100,
                                gcd_rule_agreement=0.75))
    _without_expmod_columns("gcd", table)
    # its own table_metrics instead, the end value's median
    assert table.iloc[0].final_gcd_rule_agreement == pytest.approx(0.75)
    assert run_name(RunConfig(task="gcd", base=10, n_max=100, gcd_sampling="uniform",
                              frac_train=0.5, seed=2)).startswith("gcd B10 uniform n100 frac0.5")


def test_expmod_without_its_declarations_is_a_task_like_any_other(monkeypatch):
    expmod = TASKS["expmod"]
    for name in ("table_columns", "view_metrics", "view_charts"):
        monkeypatch.setattr(expmod, name, ())
    monkeypatch.setattr(expmod, "paper_figures", None)
    monkeypatch.setattr(expmod, "run_name_parts", lambda cfg: None)
    _without_expmod_columns("expmod", build_table(_trials("expmod", a=1, b=1, p=113,
                                                          split="pairs")))
    cfg = RunConfig(p=31, a=3, b=4, frac_train=0.5, dtype="float64", seed=2)
    assert run_name(cfg) == "expmod a=3 b=4 p=31 frac0.5 fp64 s2"
