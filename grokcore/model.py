"""The decoder-only transformer of the seed paper, as a TransformerLens HookedRootModule.

Two forward paths compute the same logits at the last position:

* ``forward(tokens)`` -- the plain full-sequence path, every position, every hook point, so
  ``run_with_cache`` and ``run_with_hooks`` work as in TransformerLens. Analysis uses this path.
* ``forward_last(tokens)`` -- the exact fast path used in training. Only the last position feeds
  the loss, so the last block needs keys and values at every position but its query, MLP and
  unembedding only at the last. And in the first block the residual stream at position i is
  ``W_E[token] + W_pos[i]``, a function of the token alone: its projections (queries, keys, values)
  are computed once per vocabulary entry and gathered, instead of once per example. Hooks do not
  fire on this path.
* ``forward_from(tokens, first)`` -- the same idea for losses on a later stretch of positions
  (sorting, from MID on): the last block computes queries, MLP and unembedding only there.

Hook point names follow TransformerLens: ``hook_embed``, ``hook_pos_embed``,
``blocks.0.hook_resid_pre``, ``blocks.0.attn.hook_q/k/v``, ``blocks.0.attn.hook_attn_scores``,
``blocks.0.attn.hook_pattern``, ``blocks.0.attn.hook_z``, ``blocks.0.hook_attn_out``,
``blocks.0.hook_resid_mid``, ``blocks.0.mlp.hook_pre``, ``blocks.0.mlp.hook_post``,
``blocks.0.hook_mlp_out``, ``blocks.0.hook_resid_post``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from grokcore.config import RunConfig


@dataclass
class ModelConfig:
    d_vocab: int
    d_vocab_out: int
    n_ctx: int
    n_layers: int = 1
    n_heads: int = 4
    d_model: int = 128
    d_head: int = 32
    d_mlp: int = 512
    act: str = "relu"
    use_bias: bool = False
    attn_only: bool = False
    pos_embed: bool = True
    dtype: torch.dtype = torch.float32

    @classmethod
    def from_run(cls, cfg: RunConfig, d_vocab: int, d_vocab_out: int, n_ctx: int) -> "ModelConfig":
        return cls(d_vocab=d_vocab, d_vocab_out=d_vocab_out, n_ctx=n_ctx, n_layers=cfg.n_layers,
                   n_heads=cfg.n_heads, d_model=cfg.d_model, d_head=cfg.d_head, d_mlp=cfg.d_mlp,
                   act=cfg.act, use_bias=cfg.use_bias, attn_only=cfg.attn_only,
                   pos_embed=cfg.pos_embed, dtype=getattr(torch, cfg.dtype))


def _param(*shape: int, scale: float, dtype: torch.dtype, gen: torch.Generator) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape, generator=gen, dtype=dtype) * scale)


def _bias(*shape: int, dtype: torch.dtype, learn: bool) -> nn.Parameter:
    # Without biases the parameter stays at zero and frozen, as in the seed, so state dicts and
    # analysis code have the same names either way.
    return nn.Parameter(torch.zeros(*shape, dtype=dtype), requires_grad=learn)


def _add_bias(x: torch.Tensor, bias: nn.Parameter) -> torch.Tensor:
    # Frozen biases are zero: skipping the add changes no value and saves a pass over x.
    return x + bias if bias.requires_grad else x


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, gen: torch.Generator):
        super().__init__()
        h, d, e, dt = cfg.n_heads, cfg.d_model, cfg.d_head, cfg.dtype
        self.cfg = cfg
        self.W_Q = _param(h, d, e, scale=d ** -0.5, dtype=dt, gen=gen)
        self.W_K = _param(h, d, e, scale=d ** -0.5, dtype=dt, gen=gen)
        self.W_V = _param(h, d, e, scale=d ** -0.5, dtype=dt, gen=gen)
        self.W_O = _param(h, e, d, scale=d ** -0.5, dtype=dt, gen=gen)
        self.b_Q = _bias(h, e, dtype=dt, learn=cfg.use_bias)
        self.b_K = _bias(h, e, dtype=dt, learn=cfg.use_bias)
        self.b_V = _bias(h, e, dtype=dt, learn=cfg.use_bias)
        self.b_O = _bias(d, dtype=dt, learn=cfg.use_bias)
        mask = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_attn_scores, self.hook_pattern, self.hook_z = HookPoint(), HookPoint(), HookPoint()

    def project(self, resid: torch.Tensor, which: str) -> torch.Tensor:
        """Queries, keys or values [..., head, d_head] of residual vectors [..., d_model]."""
        # One [d_model, head * d_head] matmul: an einsum over the head axis runs as a batched
        # matmul with a batch of one, several times slower on a CPU for long inputs.
        weight = getattr(self, f"W_{which}")
        heads, d_model, d_head = weight.shape
        out = resid @ weight.transpose(0, 1).reshape(d_model, heads * d_head)
        return _add_bias(out.unflatten(-1, (heads, d_head)), getattr(self, f"b_{which}"))

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention of queries [b, q, h, e] over keys/values [b, k, h, e] -> [b, q, d_model].

        When no hook watches the scores or the pattern (training), PyTorch's fused attention
        computes the same values without materialising them, about twice as fast on long
        sequences (sorting); with a hook (``run_with_cache``, analysis) they are computed
        explicitly so the hook sees them. ``tests/test_model.py`` checks the two agree.
        """
        if self.pattern_is_watched():
            z = self.explicit_attention(q, k, v)
        elif q.shape[1] == k.shape[1]:
            z = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                               v.transpose(1, 2), is_causal=True).transpose(1, 2)
        else:  # the queries are the last positions (forward_from): the mask's last rows
            z = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                               v.transpose(1, 2),
                                               attn_mask=self.mask_for(q, k)).transpose(1, 2)
        z = self.hook_z(z)
        return _add_bias(z.flatten(-2) @ self.W_O.flatten(0, 1), self.b_O)

    def pattern_is_watched(self) -> bool:
        """Whether a TransformerLens hook sits on the scores or the pattern.

        Asks the HookPoints themselves (``HookPoint.has_hooks``, forward and backward,
        permanent ones included): every TransformerLens way of hooking -- ``run_with_cache``,
        ``run_with_hooks``, ``hooks()``, ``add_hook``, ``add_perma_hook`` -- registers through
        ``HookPoint.add_hook`` and is counted there until it is removed.
        """
        return self.hook_attn_scores.has_hooks() or self.hook_pattern.has_hooks()

    def explicit_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """z [b, q, h, e] through the hook points of the scores and the pattern."""
        scores = self.hook_attn_scores(torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(self.cfg.d_head))
        scores = scores.masked_fill(~self.mask_for(q, k), float("-inf"))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        return torch.einsum("bhqk,bkhe->bqhe", pattern, v)

    def mask_for(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """[q, k] causal mask (True: may attend) for queries at the last q of k positions."""
        n_q, n_k = q.shape[1], k.shape[1]
        return self.causal_mask[n_k - n_q:n_k, :n_k]

    def mix_last(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``mix`` for a single query per example that sees every key: q [b, h, e] -> [b, d_model].

        Written with elementwise products instead of batched matmuls: with 3 keys per example a
        batched matmul is thousands of tiny products, several times slower on a CPU.
        """
        scores = (q[:, None] * k).sum(dim=-1) / math.sqrt(self.cfg.d_head)  # [b, k, h]
        pattern = scores.softmax(dim=1)
        z = (pattern[..., None] * v).sum(dim=1)  # [b, h, e]
        return _add_bias(z.flatten(1) @ self.W_O.flatten(0, 1), self.b_O)

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        q = self.hook_q(self.project(resid, "Q"))
        k = self.hook_k(self.project(resid, "K"))
        v = self.hook_v(self.project(resid, "V"))
        return self.mix(q, k, v)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig, gen: torch.Generator):
        super().__init__()
        d, m, dt = cfg.d_model, cfg.d_mlp, cfg.dtype
        self.W_in = _param(d, m, scale=d ** -0.5, dtype=dt, gen=gen)
        self.W_out = _param(m, d, scale=d ** -0.5, dtype=dt, gen=gen)
        self.b_in = _bias(m, dtype=dt, learn=cfg.use_bias)
        self.b_out = _bias(d, dtype=dt, learn=cfg.use_bias)
        self.act = F.relu if cfg.act == "relu" else F.gelu
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        post = self.hook_post(self.act(self.hook_pre(_add_bias(resid @ self.W_in, self.b_in))))
        return _add_bias(post @ self.W_out, self.b_out)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, gen: torch.Generator):
        super().__init__()
        self.cfg = cfg
        self.attn = Attention(cfg, gen)
        self.mlp = None if cfg.attn_only else MLP(cfg, gen)
        self.hook_resid_pre, self.hook_attn_out = HookPoint(), HookPoint()
        self.hook_resid_mid, self.hook_mlp_out = HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        resid = self.hook_resid_mid(resid + self.hook_attn_out(self.attn(resid)))
        return self.hook_resid_post(self.finish(resid))

    def finish(self, resid_mid: torch.Tensor) -> torch.Tensor:
        """The MLP half of the block (hooks fire only on the full path)."""
        if self.mlp is None:
            return resid_mid
        return resid_mid + self.hook_mlp_out(self.mlp(resid_mid))


class Transformer(HookedRootModule):
    def __init__(self, cfg: ModelConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed)
        d, dt = cfg.d_model, cfg.dtype
        self.W_E = _param(cfg.d_vocab, d, scale=d ** -0.5, dtype=dt, gen=gen)
        self.W_pos = nn.Parameter(torch.randn(cfg.n_ctx, d, generator=gen, dtype=dt) * d ** -0.5,
                                  requires_grad=cfg.pos_embed)
        if not cfg.pos_embed:
            self.W_pos.data.zero_()
        self.blocks = nn.ModuleList(Block(cfg, gen) for _ in range(cfg.n_layers))
        self.W_U = _param(d, cfg.d_vocab_out, scale=cfg.d_vocab_out ** -0.5, dtype=dt, gen=gen)
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()
        self.setup()  # names the hook points for run_with_cache / run_with_hooks

    @classmethod
    def for_run(cls, cfg: RunConfig, dataset) -> "Transformer":
        mcfg = ModelConfig.from_run(cfg, dataset.d_vocab, dataset.d_vocab_out, dataset.n_ctx)
        return cls(mcfg, seed=cfg.seed)

    # ---- the plain full-sequence path --------------------------------------------------------
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [batch, pos, d_vocab_out] at every position, with every hook point."""
        n = tokens.shape[1]
        resid = self.hook_embed(self.W_E[tokens]) + self.hook_pos_embed(self.W_pos[:n])
        for block in self.blocks:
            resid = block(resid)
        return resid @ self.W_U

    # ---- the exact fast path ------------------------------------------------------------------
    def forward_last(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [batch, d_vocab_out] at the last position only; equal to forward(tokens)[:, -1]."""
        n = tokens.shape[1]
        first = self.blocks[0].attn
        if self.cfg.n_layers == 1:
            last = tokens[:, -1:]
            q = self._first_block_lookup(last, start=n - 1, which="Q")[:, 0]
            k = self._first_block_lookup(tokens, start=0, which="K")
            v = self._first_block_lookup(tokens, start=0, which="V")
            resid_last = self._first_block_lookup(last, start=n - 1, which="resid")[:, 0]
            return self.blocks[0].finish(resid_last + first.mix_last(q, k, v)) @ self.W_U
        resid, k, v = self._into_last_block(tokens)
        last = self.blocks[-1]
        q = last.attn.project(resid[:, -1], "Q")
        # The last query may look at every position, so no mask is needed.
        resid_mid = resid[:, -1] + last.attn.mix_last(q, k, v)
        return last.finish(resid_mid) @ self.W_U

    def forward_from(self, tokens: torch.Tensor, first: int) -> torch.Tensor:
        """Logits [batch, n - first, d_vocab_out] at positions first, first + 1, ... only; equal
        to forward(tokens)[:, first:] (a test checks it).

        The last block's queries, MLP and unembedding skip the earlier positions, which only
        serve as keys and values there (sorting's loss starts at MID, halfway). No hook fires
        except the attention's.
        """
        resid, k, v = self._into_last_block(tokens)
        last = self.blocks[-1]
        q = last.attn.project(resid[:, first:], "Q")
        resid_mid = resid[:, first:] + last.attn.mix(q, k, v)
        return last.finish(resid_mid) @ self.W_U

    def _into_last_block(self, tokens: torch.Tensor,
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The residual stream entering the last block, and its keys and values there."""
        resid = self.W_E[tokens] + self.W_pos[:tokens.shape[1]]
        for block in self.blocks[:-1]:
            resid = block(resid)
        attn = self.blocks[-1].attn
        return resid, attn.project(resid, "K"), attn.project(resid, "V")

    def _first_block_lookup(self, tokens: torch.Tensor, start: int, which: str) -> torch.Tensor:
        """First-block residuals or projections for tokens at positions start, start + 1, ...

        For position i a table holds ``W_E[t] + W_pos[i]`` (which="resid"), or its query, key or
        value (which="Q", "K", "V"), for every token t; rows are then gathered by token. The work
        scales with the vocabulary, not with the batch. Returns [batch, n_pos, ...].
        """
        n_pos = tokens.shape[1]
        table = self.W_E[None] + self.W_pos[start:start + n_pos, None]  # [pos, vocab, d_model]
        if which != "resid":
            table = self.blocks[0].attn.project(table, which)  # [pos, vocab, head, d_head]
        offsets = torch.arange(n_pos, device=tokens.device) * self.cfg.d_vocab
        rows = F.embedding(tokens + offsets, table.reshape(n_pos * self.cfg.d_vocab, -1))
        return rows.reshape(*tokens.shape, *table.shape[2:])

    # ---- small helpers for signals and analysis -------------------------------------------------
    def sum_sq_weights(self) -> float:
        return float(sum((p.detach().double() ** 2).sum() for p in self.parameters()))

    def unembed_norm(self) -> float:
        return float(self.W_U.detach().double().norm())
