import math

import pytest
import torch

from grokcore.config import RunConfig
from grokcore.tasks import build_dataset
from grokcore.tasks.expmod import power_table


@pytest.mark.parametrize("p,a,b", [(113, 1, 1), (113, 3, 4), (101, 7, 7), (23, 9, 2)])
def test_labels_match_brute_force(p, a, b):
    ds = build_dataset(RunConfig(p=p, a=a, b=b))
    for row, label in zip(ds.inputs.tolist(), ds.labels.tolist()):
        x, y, eq = row
        assert eq == p
        assert label == (x ** a + y ** b) % p


def test_three_operands_brute_force():
    ds = build_dataset(RunConfig(p=13, a=2, b=3, n_operands=3))
    assert ds.inputs.shape == (13 ** 3, 4)
    expected = [(x ** 2 + y ** 3 + z ** 3) % 13 for x, y, z, _ in ds.inputs.tolist()]
    assert ds.labels.tolist() == expected


def test_bijective_exponents_for_113():
    bijective = [e for e in range(1, 10) if build_dataset(RunConfig(p=113, a=e)).stats["bijective_a"]]
    assert bijective == [1, 3, 5, 9]
    assert [e for e in range(1, 10) if math.gcd(e, 112) == 1] == bijective


@pytest.mark.parametrize("exponent,size", [(2, 57), (4, 29), (7, 17), (8, 15)])
def test_image_sizes_for_113(exponent, size):
    assert len(set(power_table(113, exponent).tolist())) == size
    assert build_dataset(RunConfig(p=113, a=exponent)).stats["image_size_a"] == size


def test_canonical_split_size():
    ds = build_dataset(RunConfig(p=113, frac_train=0.3))
    assert (ds.stats["n_train"], ds.stats["n_test"]) == (3830, 12769 - 3830)
    assert len(set(ds.train_idx.tolist()) & set(ds.test_idx.tolist())) == 0


def test_class_split_has_zero_leakage_where_pair_split_leaks():
    pairs = build_dataset(RunConfig(p=113, a=8, b=8, split="pairs"))
    classes = build_dataset(RunConfig(p=113, a=8, b=8, split="classes"))
    assert pairs.stats["leakage"] > 0.5
    assert classes.stats["leakage"] == 0.0
    # recompute the leakage by hand: no test (u, v) occurs among the train (u, v)
    u = power_table(113, 8)
    train = {(int(u[x]), int(u[y])) for x, y, _ in classes.train_inputs.tolist()}
    test = {(int(u[x]), int(u[y])) for x, y, _ in classes.test_inputs.tolist()}
    assert not train & test
    assert 0.2 < classes.stats["n_train"] / 113 ** 2 < 0.4


def test_label_statistics():
    uniform = build_dataset(RunConfig(p=113, a=3, b=3)).stats
    assert uniform["label_entropy"] == pytest.approx(1.0)
    assert uniform["label_chi2_pvalue"] == pytest.approx(1.0)
    assert sum(uniform["label_counts"]) == 113 ** 2
    skewed = build_dataset(RunConfig(p=113, a=7, b=7)).stats
    assert skewed["label_entropy"] < 0.95
    assert skewed["label_chi2_pvalue"] < 1e-6
    counts = torch.bincount(build_dataset(RunConfig(p=113, a=7, b=7)).labels, minlength=113)
    assert skewed["label_counts"] == counts.tolist()


def test_split_is_seeded():
    a = build_dataset(RunConfig(p=31, data_seed=1)).train_idx
    b = build_dataset(RunConfig(p=31, data_seed=1)).train_idx
    c = build_dataset(RunConfig(p=31, data_seed=2)).train_idx
    assert torch.equal(a, b) and not torch.equal(a, c)
