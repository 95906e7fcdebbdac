"""Primality of numbers 1..N and coprimality of pairs in 1..N, as binary classification.

Labels come from sympy (``isprime``, ``igcd``). Inputs end with an '=' token, where the model
classifies, as in expmod:

* ``encoding='token'``: one token per number (the seed paper's way). Each number is then an
  arbitrary symbol: nothing in the input relates 7 to 17, so there is nothing to generalize from
  and test accuracy can at best match the class prior.
* ``encoding='digits'``: each number written with a fixed width in base ``base`` (most significant
  digit first, leading zeros), so numbers share digit tokens and divisibility by the base's prime
  factors can be read off the last digits.

Splits: ``random`` (a seeded permutation, the first frac train) or ``sequential`` (the first frac
of the numbers in order train, the rest test: the seed's 1..700 / 701..1000 for N = 1000 and
frac 0.7; for pairs, a-major order). About 83% of the numbers 1..1000 are composite, so the
grok and memorization signals read balanced accuracy (``signal_metric = "bacc"``): a model that
always says "composite" scores 0.83 raw but 0.5 balanced. The statistics report the class
balance of each split and the majority-class baseline of the test set.
"""

from __future__ import annotations

import math

import sympy
import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.tasks.base import Dataset, TaskBase, split_indices

MAX_TOKEN_VOCAB = 100_000
MAX_PAIRS = 2_000_000

# The seed paper's primality model and optimiser: 1 layer, 32 heads of width 4 over d_model 128,
# lr 1e-4, wd 1e-4, numbers 1..1000 as single tokens, sequential split at 700.
_SEED_MODEL = dict(n_layers=1, n_heads=32, d_model=128, d_head=4, d_mlp=512, lr=1e-4,
                   weight_decay=1e-4)


def digits(n: int, base: int, width: int | None = None) -> list[int]:
    """``n`` >= 0 in base ``base``, most significant digit first: left-padded with zeros to
    ``width``, or with ``width`` None as few digits as it takes ([0] for 0). The numbers tasks
    and the GCD task (grokcore/tasks/gcd.py) write numbers with it."""
    out, rest = [], n
    while rest or (width is None and not out) or (width is not None and len(out) < width):
        if width is not None and len(out) == width:
            raise ValueError(f"{n} does not fit in {width} base-{base} digits")
        rest, d = divmod(rest, base)
        out.append(d)
    return out[::-1]


def undigits(ds: list[int], base: int) -> int:
    """The number whose base-``base`` digits, most significant first, are ``ds``."""
    value = 0
    for d in ds:
        value = value * base + int(d)
    return value


def width_for(n_max: int, base: int) -> int:
    """Digits needed to write every number 0..n_max in base ``base``."""
    width = 1
    while base ** width <= n_max:
        width += 1
    return width


def encode_numbers(numbers: torch.Tensor, cfg: RunConfig, n_max: int) -> tuple[torch.Tensor, int]:
    """Token rows for numbers [n, k] (k operands), plus '='; returns (tokens, vocabulary size)."""
    if cfg.encoding == "token":
        eq = n_max + 1
        body = numbers
    else:
        eq = cfg.base
        width = width_for(n_max, cfg.base)
        body = torch.tensor([[d for x in row for d in digits(int(x), cfg.base, width)]
                             for row in numbers.tolist()], dtype=torch.long)
    tokens = torch.cat([body, torch.full((len(numbers), 1), eq, dtype=torch.long)], dim=1)
    return tokens, eq + 1


def binary_stats(labels: torch.Tensor, train_idx: torch.Tensor, test_idx: torch.Tensor,
                 positive: str) -> dict:
    """Class balance overall and per split, and the test accuracy of always guessing the majority."""
    stats = {"n_train": len(train_idx), "n_test": len(test_idx),
             "label_counts": torch.bincount(labels, minlength=2).tolist()}
    for name, idx in (("all", torch.arange(len(labels))), ("train", train_idx), ("test", test_idx)):
        share = float(labels[idx].double().mean()) if len(idx) else float("nan")
        stats[f"{positive}_share_{name}"] = share
    train_majority = int(stats[f"{positive}_share_train"] >= 0.5)
    stats["majority_class"] = train_majority
    stats["majority_baseline_test_acc"] = float((labels[test_idx] == train_majority).double().mean())
    stats["majority_baseline_test_bacc"] = 0.5
    return stats


class _NumberTask(TaskBase):
    signal_metric = "bacc"
    table_keys = ("n_max", "encoding", "base", "split")
    table_metrics = ("test_bacc", "test_acc")
    default_n_max = 1000
    splits = ("random", "sequential")

    def n_max(self, cfg: RunConfig) -> int:
        return cfg.n_max or self.default_n_max

    def validate(self, cfg: RunConfig) -> None:
        n = self.n_max(cfg)
        if cfg.split not in self.splits:
            raise ConfigError(f"split={cfg.split!r} is not a {self.name} split; use random or "
                              "sequential (--split)")
        if n < 10:
            raise ConfigError(f"n_max={n} is too small for {self.name}; use at least 10 (--n-max)")
        if cfg.encoding == "digits" and cfg.base < 2:
            raise ConfigError(f"base={cfg.base} must be at least 2 for digit encoding (--base)")
        if cfg.encoding == "token" and n + 2 > MAX_TOKEN_VOCAB:
            raise ConfigError(f"n_max={n} gives a vocabulary above {MAX_TOKEN_VOCAB} tokens; use "
                              "--encoding digits or a smaller --n-max")

    def _split(self, n: int, cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
        if cfg.split == "sequential":
            cut = int(cfg.frac_train * n)
            return torch.arange(cut), torch.arange(cut, n)
        return split_indices(n, cfg.frac_train, cfg.data_seed)


class PrimalityTask(_NumberTask):
    """Is n prime? numbers 1..n_max, one token each or base-B digits; binary, balanced accuracy."""

    name = "primality"
    defaults = dict(split="sequential", frac_train=0.7, encoding="token", **_SEED_MODEL)

    def build(self, cfg: RunConfig) -> Dataset:
        n_max = self.n_max(cfg)
        numbers = torch.arange(1, n_max + 1)
        labels = torch.tensor([int(sympy.isprime(int(x))) for x in numbers], dtype=torch.long)
        inputs, vocab = encode_numbers(numbers[:, None], cfg, n_max)
        train_idx, test_idx = self._split(len(labels), cfg)
        stats = binary_stats(labels, train_idx, test_idx, "prime")
        stats.update(n_max=n_max, encoding=cfg.encoding, n_ctx=inputs.shape[1])
        return Dataset(inputs=inputs, labels=labels, train_idx=train_idx, test_idx=test_idx,
                       d_vocab=vocab, d_vocab_out=2, stats=stats)


class CoprimalityTask(_NumberTask):
    """Is gcd(a, b) = 1? all pairs in 1..n_max, tokens or base-B digits; balanced accuracy."""

    name = "coprimality"
    default_n_max = 100
    defaults = dict(split="random", frac_train=0.5, encoding="token", **_SEED_MODEL)

    def validate(self, cfg: RunConfig) -> None:
        super().validate(cfg)
        if self.n_max(cfg) ** 2 > MAX_PAIRS:
            raise ConfigError(f"n_max={self.n_max(cfg)} gives more than {MAX_PAIRS} pairs; use a "
                              "smaller --n-max")

    def build(self, cfg: RunConfig) -> Dataset:
        n_max = self.n_max(cfg)
        pairs = torch.cartesian_prod(torch.arange(1, n_max + 1), torch.arange(1, n_max + 1))
        labels = torch.tensor([int(sympy.igcd(int(a), int(b)) == 1) for a, b in pairs.tolist()],
                              dtype=torch.long)
        inputs, vocab = encode_numbers(pairs, cfg, n_max)
        train_idx, test_idx = self._split(len(labels), cfg)
        stats = binary_stats(labels, train_idx, test_idx, "coprime")
        stats.update(n_max=n_max, encoding=cfg.encoding, n_ctx=inputs.shape[1],
                     coprime_share_theory=6 / math.pi ** 2)
        return Dataset(inputs=inputs, labels=labels, train_idx=train_idx, test_idx=test_idx,
                       d_vocab=vocab, d_vocab_out=2, stats=stats)
