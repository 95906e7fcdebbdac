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
  labelled position right.
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


def balanced_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over the classes present in ``labels`` of the share of that class predicted right.

    A constant guess of the majority class scores 1 / (number of classes present), not the
    majority share: 0.5 for a binary task however imbalanced it is.
    """
    classes = labels.unique()
    recalls = [(preds[labels == c] == c).double().mean() for c in classes]
    return float(torch.stack(recalls).mean()) if recalls else float("nan")


class NextTokens:
    def __init__(self, loss_fn: LossFn):
        self.loss_fn = loss_fn

    def _logits(self, model, inputs, labels):
        mask = labels != IGNORE
        logits = model(inputs)[mask]  # [n_labelled, vocab_out]
        return logits, labels[mask], mask

    def loss(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, targets, _ = self._logits(model, inputs, labels)
        return self.loss_fn(logits, targets)

    def evaluate(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        logits, targets, mask = self._logits(model, inputs, labels)
        right = torch.ones_like(labels, dtype=torch.bool)
        right[mask] = logits.argmax(dim=-1) == targets
        seq_acc = float(right.all(dim=1).double().mean())
        acc = float(right[mask].double().mean())
        return Evaluation(float(self.loss_fn(logits, targets)), acc, logits,
                          {"seq_acc": seq_acc})


def masked_loss(loss_fn: LossFn, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean loss over positions whose label is not IGNORE; logits [..., vocab]."""
    keep = labels != IGNORE
    return loss_fn(logits[keep], labels[keep])
