"""What every task hands the trainer: a Dataset of token sequences, labels and statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from grokcore.config import RunConfig
from grokcore.optim import make_loss


@dataclass
class Dataset:
    """All examples of a task in a fixed canonical order, and which of them train and test.

    ``inputs`` are token ids [n_examples, n_ctx]; the model predicts ``labels`` at the last position.
    Keeping the canonical order (for expmod: x-major over the p^k grid) lets analysis code reshape
    logits into a grid for Fourier transforms without re-deriving the data.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    train_idx: torch.Tensor
    test_idx: torch.Tensor
    d_vocab: int
    d_vocab_out: int
    stats: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # task data for metrics (not logged)
    # Named subsets of the test examples (boolean masks over test_idx), each measured apart at
    # every evaluation as test_acc_<name> / test_loss_<name> (expmod: "seen" / "unseen" classes).
    test_groups: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_ctx(self) -> int:
        return self.inputs.shape[1]

    @property
    def train_inputs(self) -> torch.Tensor:
        return self.inputs[self.train_idx]

    @property
    def train_labels(self) -> torch.Tensor:
        return self.labels[self.train_idx]

    @property
    def test_inputs(self) -> torch.Tensor:
        return self.inputs[self.test_idx]

    @property
    def test_labels(self) -> torch.Tensor:
        return self.labels[self.test_idx]


@dataclass(frozen=True)
class TableColumn:
    """A column of a task's own in the grok table (``analysis.table``): ``name`` in the table,
    made from the trial column ``source`` over a row's runs by ``how`` (``median``, ``mean`` or
    ``first``: the first known value; ``source`` None: a column every row has, that this task
    shows); shown under ``header`` as ``fmt`` (a format such as ``{:.3f}``, ``int`` or ``yes``)
    in every format of the table, or with ``brief`` False in the full ones (not the terminal's).
    """

    name: str
    header: str
    fmt: str
    source: str | None = None
    how: str = "median"
    brief: bool = True


class Task(Protocol):
    name: str

    def validate(self, cfg: RunConfig) -> None:
        """Raise ConfigError for settings this task cannot take."""

    def build(self, cfg: RunConfig) -> Dataset:
        """Make the examples, the split and the dataset statistics."""


class TaskBase:
    """Defaults every task inherits; a task overrides what it does differently.

    * ``defaults``: RunConfig values that ``grokcore.tasks.config_for`` (and the command line's
      ``--task``) apply before the user's own settings.
    * ``signal_metric``: which accuracy the memorization/grok signals read: ``"acc"`` (raw) or
      ``"bacc"`` (balanced; for imbalanced classes, where raw accuracy rewards the majority guess).
    * ``make_model``: the decoder ``Transformer`` unless the task needs another model.
    * ``objective``: classification at the last position (the trainer's fast path) unless the
      task's loss spans several positions or a decoder.
    * ``extra_metrics``: task measures added to each history row (numeric values reach MLflow).
    * ``test_groups``: names of the test subsets its datasets measure apart (``grok_on`` may
      name one); ``signal_keys``: the history keys the signals read.
    * ``progress_measures``: with ``has_progress_measures`` and ``measure_every`` > 0, an object
      whose ``on_eval(trainer, row, checkpoint, final)`` adds the task's progress measures to the
      evaluation rows at that cadence, before any callback sees the row (expmod: Nanda et al.).
      ``progress_measures_apply(cfg)``: whether they are defined for this config (expmod: two
      operands and an MLP); what draws their figures and ``analysis.inspect`` ask it.
    * ``draw_figures``: the task's own figures of a finished run, written into the run's folder
      beside the curves every run has (``grokcore.figures.write_run_figures`` asks for them;
      sorting: its attention pattern; expmod, where the progress measures apply: the measures
      and the Fourier views); none by default.
    * ``table_keys``: the RunConfig fields that name a configuration in the grok table (beside
      task, dtype and frac_train; seeds are aggregated); ``table_metrics``: the end values of the
      history the table shows for this task (median over a configuration's runs).
    * ``table_columns``: the grok table's columns of the task's own (``TableColumn``s, in the
      table's order; expmod: unseen-class accuracy, leakage, dataset statistics);
      ``trial_stats``: the dataset statistics (``Dataset.stats``, logged as metrics) that a
      trial line carries for them.
    * ``paper_figures``: the file in ``analysis/data`` holding the seed paper's single-run
      threshold epochs of this task (columns: the ``table_keys``, ``grokked``, ``grok_epoch``),
      which the grok table tests each row's runs against; None: the paper has none.
      ``paper_split``: how the paper split the data (a row split otherwise has no paper figure).
    * ``run_name_parts(cfg)``: how a sweep's run names spell the task's table keys (expmod:
      ``a3b4 p113``); None: the task's name, then each key (``sweeps.run_names``).
    * ``view_metrics``: metrics of the task's own that a sweep's MLflow runs table shows;
      ``view_charts``: those charted against epoch beside test accuracy and training loss.
    """

    name = "base"
    defaults: dict[str, Any] = {}
    signal_metric = "acc"
    table_keys: tuple[str, ...] = ()
    table_metrics: tuple[str, ...] = ("test_acc",)
    table_columns: tuple[TableColumn, ...] = ()
    trial_stats: tuple[str, ...] = ()
    paper_figures: str | None = None
    paper_split = "random"
    view_metrics: tuple[str, ...] = ()
    view_charts: tuple[str, ...] = ()
    has_progress_measures = False
    test_groups: tuple[str, ...] = ()  # the Dataset.test_groups its datasets carry
    splits: tuple[str, ...] = ("random",)  # the values of RunConfig.split it accepts

    def make_model(self, cfg: RunConfig, ds: Dataset):
        from grokcore.model import Transformer

        return Transformer.for_run(cfg, ds)

    def objective(self, cfg: RunConfig, ds: Dataset):
        from grokcore.objectives import LastPosition

        return LastPosition(make_loss(cfg), balanced=self.signal_metric == "bacc")

    def extra_metrics(self, trainer) -> dict[str, float]:
        return {}

    def validate_dataset(self, cfg: RunConfig, ds: Dataset) -> None:
        """Raise ConfigError for settings this dataset cannot serve (checked once it is built)."""

    def signal_keys(self, cfg: RunConfig) -> tuple[str, str]:
        """The history keys the memorization and grok signals read (train, test)."""
        if cfg.grok_on != "test":
            return f"train_{self.signal_metric}", f"test_acc_{cfg.grok_on}"
        return f"train_{self.signal_metric}", f"test_{self.signal_metric}"

    def run_name_parts(self, cfg: RunConfig) -> list[str] | None:
        """How a run's name spells the task's table keys; None: the plain spelling."""
        return None

    def progress_measures(self, cfg: RunConfig, ds: Dataset):
        return None

    def progress_measures_apply(self, cfg: RunConfig) -> bool:
        """Whether the task's progress measures are defined for ``cfg``."""
        return self.has_progress_measures

    def draw_figures(self, cfg: RunConfig, history, summary, model, dataset: Dataset,
                     folder: Path) -> list[Path]:
        """Write the task's own figures of a finished run (``model`` on the CPU, ``history`` its
        rows, ``summary`` its end values and phases) into ``folder``; return their paths."""
        return []


def label_distribution_stats(labels: torch.Tensor, n_classes: int) -> dict[str, Any]:
    """Counts per class, entropy normalised to [0, 1], and the chi-square p-value against uniform."""
    counts = torch.bincount(labels, minlength=n_classes).double()
    probs = counts / counts.sum()
    nonzero = probs[probs > 0]
    entropy = float(-(nonzero * nonzero.log()).sum() / math.log(n_classes))
    expected = counts.sum() / n_classes
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = n_classes - 1
    # The chi-square survival function is the regularised upper incomplete gamma function.
    p_value = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                            torch.tensor(chi2 / 2, dtype=torch.float64)))
    return {
        "label_counts": [int(c) for c in counts.tolist()],
        "n_distinct_labels": int((counts > 0).sum()),
        "label_entropy": entropy,
        "label_chi2": chi2,
        "label_chi2_pvalue": p_value,
    }


def split_indices(n: int, frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random permutation; the first int(frac * n) go to train (the seed paper's rule)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = int(frac * n)
    return perm[:n_train].sort().values, perm[n_train:].sort().values
