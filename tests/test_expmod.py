import math

import pytest
import torch

from grokcore.config import ConfigError, RunConfig
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


def _recount_unseen(cfg):
    """Test accuracy on the examples whose (x^a, y^b) has no training example, recounted by hand."""
    from grokcore.trainer import Trainer

    trainer = Trainer(cfg)
    row = trainer.evaluate()
    ds, p = trainer.dataset, cfg.p
    train_classes = {(pow(int(x), cfg.a, p), pow(int(y), cfg.b, p)) for x, y, _ in ds.train_inputs}
    preds = trainer.model.forward_last(ds.test_inputs).argmax(dim=-1)
    unseen_right, unseen, seen = 0, 0, 0
    for (x, y, _), label, pred in zip(ds.test_inputs.tolist(), ds.test_labels.tolist(), preds.tolist()):
        if (pow(x, cfg.a, p), pow(y, cfg.b, p)) in train_classes:
            seen += 1
        else:
            unseen += 1
            unseen_right += pred == label
    return row, ds.stats, unseen, seen, (unseen_right / unseen if unseen else None)


@pytest.mark.parametrize("a,b,split", [(2, 3, "pairs"), (1, 1, "pairs"), (2, 2, "classes")])
def test_unseen_class_accuracy_matches_a_recount(a, b, split):
    cfg = RunConfig(p=13, a=a, b=b, split=split, frac_train=0.4, epochs=1)
    row, stats, unseen, seen, acc = _recount_unseen(cfg)
    assert stats["n_test_unseen"] == unseen
    assert stats["leakage"] == pytest.approx(seen / (seen + unseen))
    assert row["test_acc_unseen"] == (pytest.approx(acc) if acc is not None else None)
    if seen == 0:  # a bijection split by pairs, or the classes split: nothing leaks
        assert row["test_acc_seen"] is None and row["test_acc_unseen"] == pytest.approx(row["test_acc"])
    else:
        assert 0 < unseen < seen  # (2, 3): most test pairs have a training twin


def test_grok_on_unseen_reads_the_unseen_classes_and_needs_some():
    from grokcore.tasks import validate
    from grokcore.trainer import Trainer

    cfg = RunConfig(p=13, a=2, b=3, frac_train=0.4, epochs=1, grok_on="unseen")
    assert Trainer(cfg).task.signal_keys(cfg) == ("train_acc", "test_acc_unseen")
    with pytest.raises(ConfigError, match="every test example's class"):
        Trainer(RunConfig(p=13, a=6, b=6, frac_train=0.9, epochs=1, grok_on="unseen"))
    with pytest.raises(ConfigError, match="no such test subset"):
        validate(RunConfig(task="sorting", grok_on="unseen"))
