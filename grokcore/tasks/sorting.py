"""Sorting: ``START, x_1..x_L, MID, s_1..s_L`` with s the sorted list; predict each next token.

Values are 0..V-1 (V = ``n_max``, default 50); START = V, MID = V + 1, PAD = V + 2, so the
vocabulary has V + 3 tokens and the model predicts one of V values. The loss covers the sorted
part: the logits at MID and at s_1..s_{L-1} predict s_1..s_L; other positions carry no loss.
Options: ``list_len`` (L, the longest when ``variable_len``: each list then has a length drawn
uniformly in 2..L and is padded after its sorted part, which causal attention never reads),
``repeats`` (values drawn with replacement; without, L distinct values), ``pos_embed``,
``n_heads``. The default model is the seed's: 1 layer, attention only, 1 head.

Metrics: ``acc`` per sorted token, ``seq_acc`` the share of lists sorted entirely right, and the
OV copying score of each head (``copying_score_h<i>``, and their mean ``copying_score``):
``sum(Re(lambda)) / sum(|lambda|)`` over the eigenvalues of ``W_E W_V W_O W_U`` restricted to the
value tokens. A head that copies its attended token to the output has positive real eigenvalues
(score near 1); a random matrix scores near 0. The eigenvalues come from TransformerLens's
``FactoredMatrix`` (the product has rank <= d_head, and it computes only the nonzero ones).
"""

from __future__ import annotations

from pathlib import Path

import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.objectives import IGNORE, NextTokens
from grokcore.optim import make_loss
from grokcore.tasks.base import Dataset, TaskBase, split_indices

DEFAULT_VALUES = 50
DEFAULT_EXAMPLES = 10_000


class SortingTask(TaskBase):
    """Sort a list: START, list, MID, sorted list; 1-layer attention-only, copying score per head."""

    name = "sorting"
    table_keys = ("list_len", "n_max", "variable_len", "repeats", "pos_embed", "n_heads")
    table_metrics = ("test_acc", "test_seq_acc", "copying_score")
    defaults = dict(n_layers=1, attn_only=True, n_heads=1, d_model=64, d_head=64, lr=1e-2,
                    weight_decay=0.1, frac_train=0.8, split="random", epochs=1000, eval_every=50)

    @staticmethod
    def n_values(cfg: RunConfig) -> int:
        return cfg.n_max or DEFAULT_VALUES

    def validate(self, cfg: RunConfig) -> None:
        v = self.n_values(cfg)
        if cfg.split != "random":
            raise ConfigError(f"split={cfg.split!r} is not a sorting split; use random (--split)")
        if v < 2:
            raise ConfigError(f"n_max={cfg.n_max}: sorting needs at least 2 values (--n-max)")
        if cfg.list_len < 2:
            raise ConfigError(f"list_len={cfg.list_len} is too short; use 2 or more (--list-len)")
        if not cfg.repeats and cfg.list_len > v:
            raise ConfigError(f"list_len={cfg.list_len} distinct values do not fit in n_max={v} "
                              "values; raise --n-max, shorten --list-len or pass --repeats")

    def objective(self, cfg: RunConfig, ds: Dataset):
        return NextTokens(make_loss(cfg))

    def build(self, cfg: RunConfig) -> Dataset:
        v, length = self.n_values(cfg), cfg.list_len
        start, mid, pad = v, v + 1, v + 2
        n = cfg.n_examples or DEFAULT_EXAMPLES
        gen = torch.Generator().manual_seed(cfg.data_seed)
        if cfg.repeats:
            lists = torch.randint(v, (n, length), generator=gen)
        else:
            lists = torch.rand(n, v, generator=gen).argsort(dim=1)[:, :length]
        if cfg.variable_len:
            lengths = torch.randint(2, length + 1, (n,), generator=gen)
        else:
            lengths = torch.full((n,), length)
        n_ctx = 2 * length + 2
        inputs = torch.full((n, n_ctx), pad, dtype=torch.long)
        labels = torch.full((n, n_ctx), IGNORE, dtype=torch.long)
        for i, (row, ell) in enumerate(zip(lists.tolist(), lengths.tolist())):
            xs = row[:ell]
            seq = [start, *xs, mid, *sorted(xs)]
            inputs[i, :len(seq)] = torch.tensor(seq)
            labels[i, ell + 1:2 * ell + 1] = torch.tensor(seq[ell + 2:2 * ell + 2])
        train_idx, test_idx = split_indices(n, cfg.frac_train, cfg.data_seed)
        train_rows = {tuple(r) for r in inputs[train_idx].tolist()}
        leaked = sum(tuple(r) in train_rows for r in inputs[test_idx].tolist())
        stats = {"n_train": len(train_idx), "n_test": len(test_idx), "n_values": v,
                 "list_len": length, "mean_len": float(lengths.double().mean()),
                 "variable_len": cfg.variable_len, "repeats": cfg.repeats,
                 "test_lists_in_train": leaked}
        return Dataset(inputs=inputs, labels=labels, train_idx=train_idx, test_idx=test_idx,
                       d_vocab=v + 3, d_vocab_out=v, stats=stats)

    def draw_figures(self, cfg: RunConfig, history, summary, model, dataset: Dataset,
                     folder: Path) -> list[Path]:
        """Its one head's pattern is the mechanism (where each output looks): ``attention.png``."""
        return [attention_figure(model, dataset, Path(folder) / "attention.png")]

    def extra_metrics(self, trainer) -> dict[str, float]:
        scores = copying_scores(trainer.model, trainer.dataset.d_vocab_out)
        out = {f"copying_score_h{h}": s for h, s in enumerate(scores)}
        out["copying_score"] = sum(scores) / len(scores)
        return out


@torch.no_grad()
def copying_scores(model, n_values: int, layer: int = 0) -> list[float]:
    """OV copying score of each head: sum Re(eig) / sum |eig| of W_E W_V W_O W_U on value tokens."""
    from transformer_lens import FactoredMatrix

    attn = model.blocks[layer].attn
    w_e = model.W_E[:n_values].double()
    w_u = model.W_U[:, :n_values].double()
    scores = []
    for h in range(attn.W_V.shape[0]):
        ov = FactoredMatrix(w_e @ attn.W_V[h].double(), attn.W_O[h].double() @ w_u)
        eig = ov.eigenvalues
        scores.append(float(eig.real.sum() / eig.abs().sum()))
    return scores


def attention_figure(model, dataset: Dataset, path: str | Path, example: int | None = None,
                     layer: int = 0) -> Path:
    """Save a heat map of each head's attention pattern on one test list (rows: query tokens)."""
    import matplotlib.pyplot as plt

    from grokcore.figures import save_figure, set_margins  # Agg; matplotlib only when drawing

    idx = int(dataset.test_idx[0] if example is None else example)
    tokens = dataset.inputs[idx:idx + 1].to(next(model.parameters()).device)
    v = dataset.d_vocab_out
    names = {v: "S", v + 1: "M", v + 2: "_"}
    labels = [names.get(t, str(t)) for t in tokens[0].tolist()]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0].float().cpu()  # [head, q, k]
    n_heads = pattern.shape[0]
    fig, axes = plt.subplots(1, n_heads, figsize=(5.5 * n_heads, 5), squeeze=False)
    for h, ax in enumerate(axes[0]):
        ax.imshow(pattern[h].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, fontsize=5, rotation=90)
        ax.set_yticks(range(len(labels)), labels, fontsize=5)
        ax.set_xlabel("key (attended) token")
        ax.set_ylabel("query token")
        ax.set_title(f"layer {layer} head {h}")
    fig.suptitle("sorting: attention pattern on one test list")
    # fixed margins (room for the rotated token labels and the two titles): one draw saves it
    set_margins(fig, left=0.75, right=0.15, bottom=0.8, top=0.75, wspace=0.25)
    return save_figure(fig, path, dpi=130, tight=False)
