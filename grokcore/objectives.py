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
import torch.nn.functional as F

from grokcore.optim import cross_entropy

IGNORE = -1  # label of a position that carries no loss


@dataclass
class Evaluation:
    loss: float
    acc: float
    logits: torch.Tensor  # [n, classes] of the labelled predictions, for softmax collapse
    extra: dict[str, float] = field(default_factory=dict)


class LastPosition:
    def __init__(self, loss_dtype: torch.dtype, balanced: bool = False):
        self.loss_dtype = loss_dtype
        self.balanced = balanced

    def loss(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy(model.forward_last(inputs), labels, self.loss_dtype)

    def evaluate(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        logits = model.forward_last(inputs)
        preds = logits.argmax(dim=-1)
        extra = {"bacc": balanced_accuracy(preds, labels)} if self.balanced else {}
        return Evaluation(float(cross_entropy(logits, labels, self.loss_dtype)),
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
    def __init__(self, loss_dtype: torch.dtype):
        self.loss_dtype = loss_dtype

    def _logits(self, model, inputs, labels):
        mask = labels != IGNORE
        logits = model(inputs)[mask]  # [n_labelled, vocab_out]
        return logits, labels[mask], mask

    def loss(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, targets, _ = self._logits(model, inputs, labels)
        return cross_entropy(logits, targets, self.loss_dtype)

    def evaluate(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        logits, targets, mask = self._logits(model, inputs, labels)
        right = torch.ones_like(labels, dtype=torch.bool)
        right[mask] = logits.argmax(dim=-1) == targets
        seq_acc = float(right.all(dim=1).double().mean())
        acc = float(right[mask].double().mean())
        return Evaluation(float(cross_entropy(logits, targets, self.loss_dtype)), acc, logits,
                          {"seq_acc": seq_acc})


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, loss_dtype: torch.dtype) -> torch.Tensor:
    """Mean cross-entropy over positions whose label is not IGNORE; logits [..., vocab]."""
    return F.cross_entropy(logits.to(loss_dtype).flatten(0, -2), labels.flatten(), ignore_index=IGNORE)
