"""What the driver writes into a trial's MLflow run besides its metric rows.

* on a node: the node's tags and the provenance it runs with (:func:`node_tags`);
* at the end: the end values as tags (:func:`end_tags`) and, one value per run at step 0 so
  that the UI's charts draw one bar per run, as metrics with the dataset statistics
  (:func:`end_metrics`); the files of the run's record from its final checkpoint as artifacts,
  and the ``figures`` tag, with the figures left to the driver queued to be drawn
  (:func:`log_record`).

:class:`sweeps.tracking.MLflowTrialLogger` decides which run and when; this module, what goes
in. The names come from :mod:`grokcore.records` and :mod:`grokcore.provenance`. Driver side.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from grokcore.provenance import PROVENANCE_FIELDS, merged
from grokcore.records import END_VALUES, OUTCOME_VALUES, record_files, tag_text
from sweeps.figures_after import FIGURES_TAG, figures_tag_at_end, shared_queue

NODE_TAGS = ("node_id", "node_ip", "hostname", "gpu_ids", "device")


def provenance_tags(before: Mapping[str, str], ran_with: Mapping[str, Any]) -> dict[str, str]:
    """The provenance tags (``grokcore.provenance``) of a run that ``ran_with`` these values,
    merged with the ones it had: a run resumed under another commit or torch keeps both."""
    return {name: merged(before.get(name), str(ran_with[name]))
            for name in PROVENANCE_FIELDS if name in ran_with}


def node_tags(before: Mapping[str, str], node: Mapping[str, str]) -> dict[str, str]:
    """The tags of a run (which had the tags ``before``) whose trial starts on ``node``:
    ``node_id``, ``node_ip``, ``hostname``, ``gpu_ids`` (Ray's, or ``none``), ``device`` (where
    the trial runs, or ran last), ``nodes`` (every node id it ran on, in order) and the
    provenance tags."""
    node_id = str(node.get("node_id", ""))
    nodes = [n for n in before.get("nodes", "").split(",") if n]
    tags = {k: str(node[k]) for k in NODE_TAGS if k in node}
    tags["nodes"] = ",".join(nodes if node_id in nodes else [*nodes, node_id])
    tags.update(provenance_tags(before, node))
    return tags


def end_tags(summary: Mapping[str, Any], end: Mapping[str, Any] | None, error: str | None,
             before: Mapping[str, str]) -> dict[str, str]:
    """The tags of an ended trial's run: the end values of ``summary`` (status ``failed`` set
    by the caller), with an ``end`` payload where the trial resumed from and the provenance it
    ran with (merged with the run's tags ``before``), and the end of an ``error``."""
    tags = {name: tag_text(summary.get(name)) for name in END_VALUES}
    if end:
        tags["resumed_from_epoch"] = str(end.get("start_epoch", 0))
        tags.update(provenance_tags(before, summary.get("provenance") or {}))
    if error is not None:
        tags["error"] = error[-4000:]
    return tags


def end_metrics(summary: Mapping[str, Any], stats: Mapping[str, Any]) -> list:
    """The end values and dataset statistics (``stats``) that are numbers, as MLflow metrics at
    step 0: one value per run, which the charts draw as bars."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    phases = tuple(k for k in summary if k.startswith("phase_"))
    for name in ("reached", *OUTCOME_VALUES, "epochs_run", "seconds", *phases):
        value = summary.get(name)
        if value is not None:
            metrics.append(Metric(name, float(value), now, 0))
    for name, value in stats.items():
        if isinstance(value, (bool, int, float)):
            metrics.append(Metric(name, float(value), now, 0))
    return metrics


def log_record(client, run_id: str, checkpoint, figures: str) -> None:
    """The files of the run's record in its final ``checkpoint`` (and the figures, when the
    trial drew them) as artifacts, and the ``figures`` tag; figures left to the driver
    (``figures`` mode ``after``) are queued to :mod:`sweeps.figures_after`."""
    with checkpoint.as_directory() as folder:
        files = record_files(folder)
        for path in files:
            client.log_artifact(run_id, str(path))
        tag = figures_tag_at_end(figures, files)
        client.set_tag(run_id, FIGURES_TAG, tag)
        if tag == "pending":
            shared_queue().submit(run_id, files)
