"""Primality and coprimality: labels, encodings, splits, stats, and balanced accuracy in signals."""

import math

import pytest
import sympy
import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.objectives import balanced_accuracy
from grokcore.tasks import TASKS, build_dataset, config_for, validate
from grokcore.tasks.numbers import digits, undigits, width_for
from grokcore.trainer import Trainer


def _numbers_of(ds, cfg, n_operands):
    """Decode the numbers back from the tokens (before the '=' token)."""
    body = ds.inputs[:, :-1]
    if cfg.encoding == "token":
        return body.tolist()
    width = body.shape[1] // n_operands
    return [[undigits(row[i * width:(i + 1) * width], cfg.base) for i in range(n_operands)]
            for row in body.tolist()]


def _is_prime_brute(n):
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


@pytest.mark.parametrize("encoding,base", [("token", 10), ("digits", 10), ("digits", 2), ("digits", 7)])
def test_primality_labels_and_encoding_round_trip(encoding, base):
    cfg = config_for("primality", n_max=300, encoding=encoding, base=base)
    ds = build_dataset(validate(cfg))
    numbers = [row[0] for row in _numbers_of(ds, cfg, 1)]
    assert numbers == list(range(1, 301))
    assert ds.labels.tolist() == [int(_is_prime_brute(n)) for n in numbers]
    assert ds.labels.tolist() == [int(sympy.isprime(n)) for n in numbers]
    assert (ds.inputs[:, -1] == ds.d_vocab - 1).all(), "every input ends with '='"
    assert int(ds.inputs.max()) < ds.d_vocab
    if encoding == "digits":
        assert ds.inputs.shape[1] == width_for(300, base) + 1
        assert int(ds.inputs[:, :-1].max()) < base


def test_digits_round_trip_and_width():
    for base in (2, 3, 10, 16):
        width = width_for(999, base)
        assert base ** (width - 1) <= 999 < base ** width
        for n in (0, 1, 7, 500, 999):
            assert undigits(digits(n, base, width), base) == n
    with pytest.raises(ValueError):
        digits(1000, 10, 3)


def test_coprimality_labels_against_math_gcd():
    cfg = config_for("coprimality", n_max=40, encoding="digits", base=3)
    ds = build_dataset(validate(cfg))
    pairs = _numbers_of(ds, cfg, 2)
    assert len(pairs) == 40 * 40 and {tuple(p) for p in pairs} == {(a, b) for a in range(1, 41)
                                                                 for b in range(1, 41)}
    assert ds.labels.tolist() == [int(math.gcd(a, b) == 1) for a, b in pairs]
    share = ds.stats["coprime_share_all"]
    assert abs(share - 6 / math.pi ** 2) < 0.05


def test_sequential_split_is_the_seeds_and_stats_report_balance():
    ds = build_dataset(validate(config_for("primality", preset="primality-seed")))
    assert ds.train_idx.tolist() == list(range(700)) and ds.test_idx.tolist() == list(range(700, 1000))
    numbers = ds.inputs[:, 0]
    assert numbers[ds.train_idx].max() == 700 and numbers[ds.test_idx].min() == 701
    assert ds.stats["label_counts"] == [1000 - 168, 168]  # 168 primes below 1000
    n_test_primes = sum(sympy.isprime(n) for n in range(701, 1001))
    assert ds.stats["prime_share_test"] == pytest.approx(n_test_primes / 300)
    assert ds.stats["majority_baseline_test_acc"] == pytest.approx(1 - n_test_primes / 300)


def test_random_split_is_seeded_and_disjoint():
    cfg = config_for("primality", split="random", frac_train=0.5, n_max=200)
    a, b = build_dataset(cfg), build_dataset(cfg)
    assert torch.equal(a.train_idx, b.train_idx)
    assert set(a.train_idx.tolist()).isdisjoint(a.test_idx.tolist())
    assert len(a.train_idx) + len(a.test_idx) == 200
    c = build_dataset(cfg.replace(data_seed=1))
    assert not torch.equal(a.train_idx, c.train_idx)


def test_balanced_accuracy():
    labels = torch.tensor([0] * 8 + [1] * 2)
    assert balanced_accuracy(torch.zeros(10, dtype=torch.long), labels) == 0.5
    assert balanced_accuracy(labels.clone(), labels) == 1.0
    preds = torch.tensor([0] * 6 + [1] * 2 + [1, 0])
    assert balanced_accuracy(preds, labels) == pytest.approx((6 / 8 + 1 / 2) / 2)


def test_grok_signal_reads_balanced_accuracy():
    # Always answering "composite" on 701..1000 gives raw test accuracy ~0.86, balanced 0.5;
    # with grok_acc 0.8 the raw rule would call that grokking, the balanced rule must not.
    cfg = config_for("primality", epochs=60, eval_every=20, grok_acc=0.8, lr=1e-3)
    trainer = Trainer(cfg)
    summary = trainer.run()
    assert TASKS["primality"].signal_metric == "bacc" and summary["signal_metric"] == "bacc"
    for row in trainer.history:
        assert {"train_bacc", "test_bacc", "train_acc", "test_acc"} <= set(row)
        assert 0.0 <= row["test_bacc"] <= 1.0
    last = trainer.history[-1]
    assert last["test_acc"] >= 0.8 > last["test_bacc"], last  # the majority trap, raw vs balanced
    assert summary["reached"] is False


def test_number_task_config_errors():
    with pytest.raises(ConfigError, match="split='pairs' is not a primality split"):
        validate(config_for("primality", split="pairs"))
    with pytest.raises(ConfigError, match="encoding='binary' is not known"):
        validate(config_for("primality", encoding="binary"))
    with pytest.raises(ConfigError, match="base=1 must be at least 2"):
        validate(config_for("coprimality", encoding="digits", base=1))
    with pytest.raises(ConfigError, match="split='random' is not an expmod split"):
        validate(RunConfig(split="random"))
