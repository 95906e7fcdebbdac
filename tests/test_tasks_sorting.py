"""Sorting: the data, the loss positions, training to a sorted output, and the copying score."""

import pytest
import torch

from grokcore.config import ConfigError
from grokcore.objectives import IGNORE
from grokcore.tasks import build_dataset, config_for, validate
from grokcore.tasks.sorting import attention_figure, copying_scores
from grokcore.trainer import Trainer

# Small enough to train in the suite: lists of 5 values out of 12.
SMALL = dict(list_len=5, n_max=12, n_examples=1000, lr=1e-2, weight_decay=0.1, eval_every=50)


def _decode(ds, i):
    v = ds.d_vocab_out
    row = ds.inputs[i].tolist()
    mid = row.index(v + 1)
    return row, row[1:mid], row[mid + 1:2 * mid]


@pytest.mark.parametrize("variable_len,repeats", [(False, False), (True, False), (False, True),
                                                   (True, True)])
def test_sequences_and_labels_against_sorted(variable_len, repeats):
    cfg = validate(config_for("sorting", list_len=8, n_max=10, n_examples=300,
                             variable_len=variable_len, repeats=repeats))
    ds = build_dataset(cfg)
    v = ds.d_vocab_out
    assert ds.d_vocab == v + 3 and ds.inputs.shape == (300, 2 * 8 + 2)
    lengths = set()
    for i in range(len(ds.inputs)):
        row, xs, sorted_part = _decode(ds, i)
        assert row[0] == v and sorted_part == sorted(xs)
        lengths.add(len(xs))
        if not repeats:
            assert len(set(xs)) == len(xs)
        assert all(t == v + 2 for t in row[2 * len(xs) + 2:]), "padding after the sorted list"
        # labels: the logit at MID and at s_1..s_{L-1} predicts the next sorted value; no others
        labelled = [j for j, y in enumerate(ds.labels[i].tolist()) if y != IGNORE]
        assert labelled == list(range(len(xs) + 1, 2 * len(xs) + 1))
        assert [ds.labels[i, j].item() for j in labelled] == [row[j + 1] for j in labelled]
    assert (len(lengths) > 3) == variable_len and max(lengths) <= 8 and min(lengths) >= 2
    if repeats:
        assert any(len(set(_decode(ds, i)[1])) < len(_decode(ds, i)[1]) for i in range(300))


def test_sorting_config_errors():
    with pytest.raises(ConfigError, match="list_len=20 distinct values do not fit"):
        validate(config_for("sorting", list_len=20, n_max=10))
    validate(config_for("sorting", list_len=20, n_max=10, repeats=True))
    with pytest.raises(ConfigError, match="list_len=1 is too short"):
        validate(config_for("sorting", list_len=1))


def test_training_sorts_and_copying_score_discriminates(tmp_path):
    cfg = config_for("sorting", epochs=1500, stop_after_grok=2, grok_acc=0.99, **SMALL)
    trainer = Trainer(cfg)
    untrained = copying_scores(trainer.model, trainer.dataset.d_vocab_out)
    first = trainer.history  # filled by run()
    summary = trainer.run()
    row0, last = first[0], trainer.history[-1]
    assert abs(untrained[0]) < 0.3 and abs(row0["copying_score"] - untrained[0]) < 1e-9
    assert last["test_seq_acc"] >= 0.95, last
    assert last["copying_score"] > 0.5 and last["copying_score_h0"] == last["copying_score"]
    assert summary["reached"]
    path = attention_figure(trainer.model, trainer.dataset, tmp_path / "attn.png")
    assert path.stat().st_size > 5000


def test_copying_score_of_known_matrices():
    cfg = config_for("sorting", list_len=4, n_max=8, n_heads=2, d_model=8, d_head=8)
    model = Trainer(cfg).model
    attn = model.blocks[0].attn
    with torch.no_grad():
        model.W_E.zero_()
        model.W_E[:8] = torch.eye(8)
        model.W_U.copy_(torch.eye(8))
        attn.W_V[0] = torch.eye(8)
        attn.W_O[0] = torch.eye(8)  # head 0 copies: OV = identity, score 1
        attn.W_V[1] = torch.eye(8)
        attn.W_O[1] = -torch.eye(8)  # head 1 anti-copies: score -1
    assert copying_scores(model, 8) == pytest.approx([1.0, -1.0])


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_length_groups_equal_the_whole_padded_batch(dtype, tol):
    """Cutting the trailing padding and running rows in length groups changes no number."""
    from grokcore.objectives import length_groups

    cfg = config_for("sorting", list_len=12, variable_len=True, n_examples=300,
                             dtype=dtype, epochs=1)
    trainer = Trainer(cfg)
    model, objective = trainer.model, trainer.objective
    x, y = trainer.train_x, trainer.train_y
    groups = length_groups(y, objective.n_groups)
    assert len(groups) > 1 and min(w for _, w in groups) < x.shape[1] / 2  # the grouping acts
    assert sorted(torch.cat([rows for rows, _ in groups]).tolist()) == list(range(len(x)))
    # The reference: the whole padded batch, every position, as the plain forward gives it.
    params = [p for p in model.parameters() if p.requires_grad]
    keep = y != IGNORE
    logits = model(x)
    ref_loss = objective.loss_fn(logits[keep], y[keep])
    ref_grads = torch.autograd.grad(ref_loss, params)
    loss = objective.loss(model, x, y)
    grads = torch.autograd.grad(loss, params)
    assert abs(float(loss - ref_loss)) < tol
    for g, ref in zip(grads, ref_grads):
        assert torch.allclose(g, ref, atol=tol, rtol=tol)
    with torch.no_grad():
        right = (logits.argmax(dim=-1) == y) | ~keep
        ev = objective.evaluate(model, x, y)
    assert ev.acc == float(right[keep].double().mean())
    assert ev.extra["seq_acc"] == float(right.all(dim=1).double().mean())
