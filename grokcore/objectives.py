"""What the trainer minimises and measures, per task: the loss and the evaluation of one split.

An objective takes the model, token inputs and labels and returns the training loss, or an
``Evaluation`` (loss, accuracy, logits for the softmax-collapse signal, and extra metrics that the
trainer writes as ``train_<name>`` / ``test_<name>``). The trainer calls only these two methods,
so a task with another kind of output (several positions, a decoder) brings its own objective.

* ``LastPosition``: classify at the last position with ``model.forward_last`` (expmod, primality,
  coprimality). This is the trainer's original fast path, computation for computation; with
  ``balanced=True`` it also reports balanced accuracy ``bacc`` (mean recall over the classes
  present), which the signals use for imbalanced binary tasks.
* ``NextTokens``: predict the next token at every position whose label is not ``IGNORE`` (sorting),
  with the full-sequence path; ``acc`` is per token, ``seq_acc`` the share of examples with every
  labelled position right. Rows of a padded batch are cut after their last labelled position
  and run in groups of similar length (see ``length_groups``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grokcore.optim import LossFn

IGNORE = -1  # label of a position that carries no loss


@dataclass
class Evaluation:
    loss: float
    acc: float
    logits: torch.Tensor  # [n, classes] of the labelled predictions, for softmax collapse
    extra: dict[str, float] = field(default_factory=dict)


class LastPosition:
    def __init__(self, loss_fn: LossFn, balanced: bool = False):
        self.loss_fn = loss_fn  # grokcore.optim.make_loss: softmax or StableMax, in the loss dtype
        self.balanced = balanced

    def loss(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(model.forward_last(inputs), labels)

    def evaluate(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        logits = model.forward_last(inputs)
        preds = logits.argmax(dim=-1)
        extra = {"bacc": balanced_accuracy(preds, labels)} if self.balanced else {}
        return Evaluation(float(self.loss_fn(logits, labels)),
                          float((preds == labels).double().mean()), logits, extra)

    def subset(self, evaluation: Evaluation, labels: torch.Tensor,
               mask: torch.Tensor) -> tuple[float | None, float | None]:
        """(loss, accuracy) of the examples ``mask`` selects from an evaluation; None, None
        when it selects none."""
        if not bool(mask.any()):
            return None, None
        logits, labels = evaluation.logits[mask], labels[mask]
        return (float(self.loss_fn(logits, labels)),
                float((logits.argmax(dim=-1) == labels).double().mean()))


def balanced_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over the classes present in ``labels`` of the share of that class predicted right.

    A constant guess of the majority class scores 1 / (number of classes present), not the
    majority share: 0.5 for a binary task however imbalanced it is.
    """
    classes = labels.unique()
    recalls = [(preds[labels == c] == c).double().mean() for c in classes]
    return float(torch.stack(recalls).mean()) if recalls else float("nan")


class NextTokens:
    """Next-token loss and accuracy at the labelled positions, run in groups of similar length.

    Padding follows the labelled positions of a row, and attention is causal, so the logits at
    the labelled positions do not depend on the padding: cutting it off is exact (a test checks
    loss and gradients against the whole padded batch). With variable-length lists this skips
    most of the padding's work; with fixed-length lists there is a single group. Positions
    before a group's first label are computed only as far as they serve as keys and values,
    so the model must offer ``forward_from`` (``grokcore.model.Transformer`` does).
    """

    def __init__(self, loss_fn: LossFn, n_groups: int = 8):
        self.loss_fn = loss_fn
        self.n_groups = n_groups

    def _parts(self, model, inputs, labels):
        """Per group: (logits, targets at the labelled positions, labelled mask [rows, cols]).

        A group's columns run from its first labelled position to its last; the model computes
        logits only there (``forward_from``), over the inputs up to the last.
        """
        parts = []
        for rows, width in length_groups(labels, self.n_groups):
            x, y = (inputs, labels) if rows is None else (inputs[rows], labels[rows])
            labelled = (y[:, :width] != IGNORE).any(dim=0)
            first = int(labelled.int().argmax()) if bool(labelled.any()) else 0
            keep = y[:, first:width] != IGNORE
            logits = model.forward_from(x[:, :width], first)
            parts.append((logits[keep], y[:, first:width][keep], keep))
        return parts

    def loss(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        parts = self._parts(model, inputs, labels)
        return self.loss_fn(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))

    def evaluate(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        parts = self._parts(model, inputs, labels)
        logits, targets = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        hits = logits.argmax(dim=-1) == targets
        per_group = hits.split([len(group_targets) for _, group_targets, _ in parts])
        rows_right = []
        for (_, _, keep), group_hits in zip(parts, per_group):
            right = torch.ones_like(keep)
            right[keep] = group_hits
            rows_right.append(right.all(dim=1))
        seq_acc = float(torch.cat(rows_right).double().mean())
        acc = float(hits.double().mean())
        return Evaluation(float(self.loss_fn(logits, targets)), acc, logits,
                          {"seq_acc": seq_acc})


def length_groups(labels: torch.Tensor, n_groups: int) -> list[tuple[torch.Tensor | None, int]]:
    """Rows grouped by the width they need (last labelled position + 1): ``(rows, width)`` pairs.

    ``rows`` is None when every row needs the same width (one group, the batch as it is);
    otherwise rows are sorted by width and cut into at most ``n_groups`` groups of equal size,
    each run at its widest row's width.
    """
    positions = torch.arange(1, labels.shape[1] + 1, device=labels.device)
    width = torch.where(labels != IGNORE, positions, 1).amax(dim=1)
    if len(width) == 0 or bool(width.min() == width.max()):
        return [(None, int(width.max()) if len(width) else labels.shape[1])]
    groups = width.argsort().chunk(n_groups)
    return [(rows, int(width[rows].max())) for rows in groups]


def masked_loss(loss_fn: LossFn, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean loss over positions whose label is not IGNORE; logits [..., vocab]."""
    keep = labels != IGNORE
    return loss_fn(logits[keep], labels[keep])
