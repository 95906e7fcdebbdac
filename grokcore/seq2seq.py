"""An encoder-decoder transformer for sequence-to-sequence tasks (GCD), and its objective.

``Seq2SeqTransformer`` wraps PyTorch's ``nn.Transformer`` (``n_layers`` encoder and ``n_layers``
decoder layers, ``n_heads`` heads, feed-forward width ``d_mlp``, no dropout, pre-LayerNorm, which
trains without a warm-up) with a shared token embedding, learned positional embeddings for the
source and the target, and a linear unembedding. The source is padded with a PAD token that
attention ignores. ``greedy_decode`` writes an answer token by token.

``Seq2SeqObjective`` trains with teacher forcing: the labels are the whole target sequence
``BOS, t_1..t_k, EOS, PAD..``; the decoder reads it shifted right and every position up to EOS
carries the loss. Its accuracy is exact match (every target token right). Under teacher forcing
that equals greedy decoding's exact match: if each next-token argmax is right given a right
prefix, greedy decoding reproduces the target, and conversely.
"""

from __future__ import annotations

import torch
from torch import nn

from grokcore.config import RunConfig
from grokcore.objectives import IGNORE, Evaluation, masked_loss
from grokcore.optim import LossFn

EVAL_CHUNK = 8192


class Seq2SeqTransformer(nn.Module):
    def __init__(self, d_vocab: int, d_vocab_out: int, n_ctx_src: int, n_ctx_tgt: int, pad: int,
                 n_layers: int = 2, n_heads: int = 4, d_model: int = 64, d_mlp: int = 256,
                 act: str = "relu", dtype: torch.dtype = torch.float32, seed: int = 0):
        super().__init__()
        self.pad = pad
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(d_vocab, d_model)
            self.pos_src = nn.Parameter(torch.randn(n_ctx_src, d_model) * d_model ** -0.5)
            self.pos_tgt = nn.Parameter(torch.randn(n_ctx_tgt, d_model) * d_model ** -0.5)
            self.transformer = nn.Transformer(
                d_model=d_model, nhead=n_heads, num_encoder_layers=n_layers,
                num_decoder_layers=n_layers, dim_feedforward=d_mlp, dropout=0.0, activation=act,
                batch_first=True, norm_first=True)
            self.unembed = nn.Linear(d_model, d_vocab_out, bias=False)
        self.scale = d_model ** 0.5
        self.to(dtype)

    @classmethod
    def for_run(cls, cfg: RunConfig, ds) -> "Seq2SeqTransformer":
        return cls(ds.d_vocab, ds.d_vocab_out, ds.inputs.shape[1], ds.labels.shape[1],
                   pad=ds.meta["pad"], n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                   d_model=cfg.d_model, d_mlp=cfg.d_mlp, act=cfg.act,
                   dtype=getattr(torch, cfg.dtype), seed=cfg.seed)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad_mask = src == self.pad
        x = self.embed(src) * self.scale + self.pos_src[:src.shape[1]]
        return self.transformer.encoder(x, src_key_padding_mask=pad_mask), pad_mask

    def decode(self, memory: torch.Tensor, pad_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        n = tgt_in.shape[1]
        causal = torch.triu(torch.full((n, n), float("-inf"), dtype=memory.dtype,
                                       device=memory.device), diagonal=1)
        y = self.embed(tgt_in) * self.scale + self.pos_tgt[:n]
        out = self.transformer.decoder(y, memory, tgt_mask=causal, tgt_is_causal=True,
                                       memory_key_padding_mask=pad_mask)
        return self.unembed(out)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits [batch, tgt_len, d_vocab_out] for each next target token (teacher forcing)."""
        memory, pad_mask = self.encode(src)
        return self.decode(memory, pad_mask, tgt_in)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, bos: int, max_len: int) -> torch.Tensor:
        """Tokens [batch, max_len] written greedily after BOS (the BOS itself is left out)."""
        memory, pad_mask = self.encode(src)
        out = torch.full((len(src), 1), bos, dtype=torch.long, device=src.device)
        for _ in range(max_len):
            nxt = self.decode(memory, pad_mask, out)[:, -1].argmax(dim=-1)
            out = torch.cat([out, nxt[:, None]], dim=1)
        return out[:, 1:]

    def sum_sq_weights(self) -> float:
        return float(sum((p.detach().double() ** 2).sum() for p in self.parameters()))

    def unembed_norm(self) -> float:
        return float(self.unembed.weight.detach().double().norm())


class Seq2SeqObjective:
    """Teacher-forced cross-entropy over the target tokens; exact-match accuracy."""

    def __init__(self, loss_fn: LossFn, pad: int):
        self.loss_fn = loss_fn
        self.pad = pad

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        out = labels[:, 1:].clone()
        out[out == self.pad] = IGNORE
        return out

    def loss(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = model(inputs, labels[:, :-1])
        return masked_loss(self.loss_fn, logits, self._targets(labels))

    @torch.no_grad()
    def evaluate(self, model, inputs: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        total, n_tok, n_exact, tok_right, kept = 0.0, 0, 0, 0, []
        for start in range(0, len(inputs), EVAL_CHUNK):
            src, lab = inputs[start:start + EVAL_CHUNK], labels[start:start + EVAL_CHUNK]
            logits = model(src, lab[:, :-1])
            targets = self._targets(lab)
            mask = targets != IGNORE
            right = (logits.argmax(dim=-1) == targets) | ~mask
            total += float(masked_loss(self.loss_fn, logits, targets)) * int(mask.sum())
            n_tok += int(mask.sum())
            tok_right += int((right & mask).sum())
            n_exact += int(right.all(dim=1).sum())
            if start == 0:
                kept.append(logits[mask])
        n = len(inputs)
        return Evaluation(total / max(n_tok, 1), n_exact / max(n, 1), torch.cat(kept),
                          {"token_acc": tok_right / max(n_tok, 1)})
