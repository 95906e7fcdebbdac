"""How a sweep looks in the MLflow UI (3.x): the saved view its landing URL opens, a colour per trial.

What MLflow 3.17 offers for this (read in its source, ``mlflow/server/js``; checked in headless
Chromium by ``tests/test_ui.py``):

* A *shared view*: the experiment tag ``mlflow.sharedViewState.<key>`` (JSON), opened by the URL
  parameter ``viewStateShareKey=<key>``, sets the runs table's columns (``selectedColumns``,
  ``columnOrder``, ``columnWidths``), its sort (``orderByKey``, ``orderByAsc``) and the chart
  view (``compareRunCharts``, ``compareRunSections``, ``isAccordionReordered``,
  ``runsHiddenMode``). It leaves out which rows are expanded (``runsExpanded``): nested under a
  collapsed parent, the trials would start hidden. Sorted by anything but the start time, the
  table lists child runs as rows of their own (mlflow/mlflow issue 15802); sorted by run name
  (``a1b1 p31 ...``), the trials come in the order of their settings, the sweep's run after them.
* A run's tag ``mlflow.runColor`` is its colour in the table and in every chart.
* A chart card of type IMAGE shows the images a run logged under a key (``log_image``); a section
  of the chart view has its own number of columns and card height.
"""

from __future__ import annotations

import json
from typing import Any

from grokcore.records import TRIALS_FIGURE

VIEW_KEY = "grok"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
RUN_COLOR_TAG = "mlflow.runColor"
# Twenty colours that are told apart at a glance (matplotlib's tab10, then tab20's light ones):
# trial i of a grid gets colour i (mod 20) in the table, in MLflow's charts and in the sweep's
# comparison figure.
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
              "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")
SWEEP_COLOR = "#404040"  # the sweep's own run: dark grey, no trial's colour


def charted(task: str) -> list[tuple[str, str]]:
    """The metrics charted first, for every trial, with their y-axis scale: test accuracy, the
    task's own (its ``view_charts``: expmod's unseen-class accuracy), training loss."""
    from grokcore.tasks import TASKS  # imports torch: the driver has it by then

    own = TASKS[task].view_charts if task in TASKS else ()
    return [("test_acc", "linear"), *((m, "linear") for m in own), ("train_loss", "log")]


def run_color(index: int | None) -> str | None:
    return None if index is None else RUN_COLORS[index % len(RUN_COLORS)]


def view_columns(task: str) -> dict[str, int]:
    """The runs table's columns, in order, with their widths in pixels (all of them fit at 1600
    pixels beside MLflow's own run name, created and duration columns): the outcome, the
    settings that name a row of the grok table, the threshold epoch, the task's own metrics (its
    ``view_metrics``: expmod's unseen-class accuracy and leakage), the memorization epoch."""
    from grokcore.tasks import TASKS  # imports torch: the driver has it by then

    spec = TASKS.get(task)
    columns = {"attributes.`Run Name`": 210, "tags.`outcome`": 120}
    for key in spec.table_keys if spec else ():
        columns[f"params.`{key}`"] = max(44, 9 * len(key) + 30)
    columns["metrics.`threshold_epoch`"] = 120
    for metric in spec.view_metrics if spec else ():  # shown whole: 0.9875259875259875
        columns[f"metrics.`{metric}`"] = 156
    columns["metrics.`memorization_epoch`"] = 148
    return columns


def _line_chart(uuid: str, section: str, metric: str, scale: str) -> dict[str, Any]:
    return {"uuid": uuid, "type": "LINE", "metricSectionId": section, "metricKey": metric,
            "selectedMetricKeys": [metric], "runsCountToCompare": 1000, "deleted": False,
            "isGenerated": False, "xAxisKey": "step", "xAxisScaleType": "log",
            "scaleType": scale, "lineSmoothness": 0, "useGlobalXaxisKey": False,
            "useGlobalLineSmoothing": False}


def _section(uuid: str, name: str, columns: int, height: int) -> dict[str, Any]:
    return {"uuid": uuid, "name": name, "display": True, "isReordered": True, "deleted": False,
            "isGenerated": False, "columns": columns, "cardHeight": height}


def view_state(task: str) -> dict[str, Any]:
    """The saved view of :data:`VIEW_KEY`: the columns of :func:`view_columns`, rows sorted by
    run name (so the trials are rows of their own), and a chart view that opens on the trials'
    metrics of :func:`charted` against epoch (log scale: test accuracy, expmod's unseen-class
    accuracy, training loss), then the
    sweep's comparison figure (a thumbnail that a click opens whole); MLflow's own charts of
    the other metrics follow."""
    columns = view_columns(task)
    charts = [_line_chart(f"grok-{metric}", "grok-trials", metric, scale)
              for metric, scale in charted(task)]
    charts.append({"uuid": "grok-compared", "type": "IMAGE", "metricSectionId": "grok-trials",
                   "imageKeys": [TRIALS_FIGURE], "step": 0, "runsCountToCompare": 1000,
                   "showRunParams": False, "deleted": False, "isGenerated": False})
    return {"selectedColumns": list(columns)[1:], "columnOrder": list(columns),
            "columnWidths": columns, "orderByKey": "tags.`mlflow.runName`", "orderByAsc": True,
            "runsHiddenMode": "SHOW_ALL", "hideEmptyCharts": True, "isAccordionReordered": True,
            "compareRunSections": [_section("grok-trials", "Every trial against epoch", 3, 380)],
            "compareRunCharts": charts}


def store_view(client, experiment_id: str, task: str) -> None:
    """Write the saved view (replacing one a sweep of an older version stored)."""
    client.set_experiment_tag(experiment_id, VIEW_TAG, json.dumps(view_state(task)))
