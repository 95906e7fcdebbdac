"""GCD: the digit encoding, the samplers, the GCD-uniform test set, Charton's rule, training."""

import math
from collections import Counter

import pytest
import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.tasks import build_dataset
from grokcore.tasks.gcd import Vocab, charton_rule, from_digits, gcd_report, smooth_part, to_digits
from grokcore.trainer import Trainer


def _decode_source(vocab, row):
    row = [t for t in row if t != vocab.pad]
    cut = row.index(vocab.sep)
    return from_digits(row[:cut], vocab.base), from_digits(row[cut + 1:], vocab.base)


@pytest.mark.parametrize("sampling", ["uniform", "loguniform", "loguniform_gcd"])
def test_examples_round_trip_and_labels_are_gcds(sampling):
    cfg = RunConfig.for_task("gcd", base=7, n_max=5000, n_examples=3000, gcd_test_per_gcd=4,
                             gcd_sampling=sampling).validate()
    ds = build_dataset(cfg)
    vocab = ds.meta["vocab"]
    for i in range(0, len(ds.inputs), 7):
        a, b = _decode_source(vocab, ds.inputs[i].tolist())
        assert 1 <= a <= 5000 and 1 <= b <= 5000
        assert (a, b) == (int(ds.meta["a"][i]), int(ds.meta["b"][i]))
        assert vocab.read(ds.labels[i, 1:].tolist()) == math.gcd(a, b) == int(ds.meta["gcd"][i])
        assert ds.labels[i, 0] == vocab.bos
    train = {(int(a), int(b)) for a, b in zip(ds.meta["a"][ds.train_idx], ds.meta["b"][ds.train_idx])}
    test = {(int(a), int(b)) for a, b in zip(ds.meta["a"][ds.test_idx], ds.meta["b"][ds.test_idx])}
    assert not train & test, "no test pair is trained on"


def test_test_set_is_uniform_over_gcds_1_to_100():
    cfg = RunConfig.for_task("gcd", n_max=20_000, n_examples=100, gcd_test_per_gcd=12).validate()
    ds = build_dataset(cfg)
    counts = Counter(ds.meta["gcd"][ds.test_idx].tolist())
    assert counts == {k: 12 for k in range(1, 101)}


def test_samplers_differ_as_documented():
    def gcds(sampling):
        cfg = RunConfig.for_task("gcd", n_max=100_000, n_examples=20_000, gcd_test_per_gcd=1,
                                 gcd_sampling=sampling)
        ds = build_dataset(cfg)
        return ds.meta["a"][ds.train_idx].double(), ds.meta["gcd"][ds.train_idx]

    a_uni, g_uni = gcds("uniform")
    a_log, g_log = gcds("loguniform")
    _, g_lg = gcds("loguniform_gcd")
    assert a_uni.median() > 30_000 and a_log.median() < 1_000  # log-uniform: median near sqrt(n_max)
    share1 = [float((g == 1).double().mean()) for g in (g_uni, g_lg)]
    assert abs(share1[0] - 6 / math.pi ** 2) < 0.02
    assert share1[1] < 0.3 and (g_lg <= 100).all()  # P(gcd = 1) = 1 / H_100 ~ 0.19
    assert g_lg.unique().numel() == 100


def test_digits_and_charton_rule():
    for base in (2, 10, 30, 1000):
        for n in (1, 9, 10, 999_999):
            assert from_digits(to_digits(n, base), base) == n
    vocab = Vocab(10)
    assert vocab.read([3, 0, vocab.eos, vocab.pad]) == 30 and vocab.read([3, 0]) == -1
    assert smooth_part(360, 10) == 40 and smooth_part(7 * 9, 10) == 1 and smooth_part(12, 6) == 12
    assert charton_rule(2 * 3 * 5 * 7, 2 * 3 * 5 * 11, 10) == 10
    assert charton_rule(2 * 3 * 5 * 7, 2 * 3 * 5 * 11, 6) == 6
    assert charton_rule(2 ** 5 * 3, 2 ** 3 * 7 * 3, 10) == 8


def test_gcd_config_errors():
    with pytest.raises(ConfigError, match="n_max=500 is too small"):
        RunConfig.for_task("gcd", n_max=500).validate()
    with pytest.raises(ConfigError, match="not a multiple of n_heads"):
        RunConfig.for_task("gcd", d_model=30, n_heads=4).validate()
    with pytest.raises(ConfigError, match="gcd_sampling='normal' is not known"):
        RunConfig.for_task("gcd", gcd_sampling="normal").validate()


# Base 10, operands below 10^4, log-uniform GCDs, a 1+1-layer encoder-decoder. Measured on a
# loaded 2-core CPU: after 4 epochs of 10k pairs GCD 1 is at ~70% and 2, 4 at ~20%; after 8 epochs
# of 20k pairs {1, 10, 100} are learned (>= 90%) and 2, 5 are at ~40%. Charton's order: the GCDs
# that are products of the base's primes come first. A brief run checks that order, not the
# full set (which takes longer than a test should).
QUICK_GCD = dict(base=10, n_max=9999, n_examples=10_000, n_layers=1, d_model=64, n_heads=4,
                 d_mlp=128, lr=3e-3, batch_size=128, gcd_test_per_gcd=10, epochs=4, eval_every=2,
                 gcd_sampling="loguniform_gcd")


def test_brief_training_learns_the_gcds_that_are_products_of_the_base_primes_first():
    cfg = RunConfig.for_task("gcd", **QUICK_GCD)
    trainer = Trainer(cfg)
    trainer.run()
    report = gcd_report(trainer.model, trainer.dataset, cfg.base)
    smooth = trainer.dataset.meta["smooth_gcds"]
    assert smooth == [1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 40, 50, 64, 80, 100]
    acc = report["per_gcd_acc"]
    assert acc[1] >= 0.5 and acc[1] == max(acc.values()), acc
    other = [k for k in acc if k not in smooth]
    mean_smooth = sum(acc[k] for k in smooth) / len(smooth)
    mean_other = sum(acc[k] for k in other) / len(other)
    assert mean_smooth > 2 * mean_other + 0.02, (mean_smooth, mean_other)
    assert set(report["learned"]) <= set(smooth), report["learned"]
    first, last = trainer.history[0], trainer.history[-1]
    assert last["gcd_n_learned"] == len(report["learned"]) == last["gcd_n_smooth_learned"]
    # The predictions follow Charton's rule (the 10-smooth part of the GCD) far more often than
    # the untrained model's, and more often than they are right.
    assert first["gcd_rule_agreement"] < 0.1
    assert last["gcd_rule_agreement"] > max(0.3, last["test_acc"] + 0.1)
    assert last["test_acc"] == pytest.approx(report["gcd_exact_acc"], abs=0.01)
    print(f"rule agreement {last['gcd_rule_agreement']:.3f} (among wrong: "
          f"{last['gcd_rule_agreement_wrong']:.3f}), learned {report['learned']}")
