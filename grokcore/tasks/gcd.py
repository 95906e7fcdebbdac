"""GCD as translation (Charton 2023): ``digits(a) SEP digits(b)`` -> ``digits(gcd(a, b))``.

Operands 1..M (M = ``n_max``, default 10,000) are written in base B (``base``), most significant
digit first, no leading zeros; tokens 0..B-1 are digits, then SEP, BOS, EOS, PAD. The target is
``BOS, digits(gcd), EOS``, padded. An encoder-decoder (``grokcore/seq2seq.py``) is trained with
teacher forcing on a fixed training set (the seed's way, not Charton's endless stream), in
minibatches of ``batch_size`` (full batch is possible but a few hundred thousand pairs per step
learn far slower per second on a CPU).

Training pairs (``n_examples``, default 50,000), by ``gcd_sampling``:
* ``uniform``: a, b uniform on 1..M;
* ``loguniform``: a, b log-uniform on 1..M (small numbers, hence large-GCD pairs, are common);
* ``loguniform_gcd``: a GCD k drawn with P(k) proportional to 1/k on 1..100, then a coprime pair
  (a', b') log-uniform on 1..M // k; (a, b) = (k a', k b').
Test set: for each GCD k = 1..100, ``gcd_test_per_gcd`` pairs k * (a', b') with (a', b') coprime
and uniform on 1..M // k, so the GCDs are uniform on 1..100. Test pairs are removed from the
training set.

Metrics (at each evaluation, by greedy decoding of the test set):
* ``test_acc``: exact match (teacher-forced, which equals greedy exact match);
* ``gcd_n_learned``: how many of the GCDs 1..100 are learned, a GCD counting as learned when at
  least 90% (``LEARNED_ACC``) of its test pairs are predicted exactly;
* ``gcd_n_smooth_learned`` / ``gcd_n_smooth``: the same over the GCDs that are products of primes
  dividing B (for B = 10: 1, 2, 4, 5, 8, 10, 16, 20, 25, ...);
* ``gcd_rule_agreement``: share of test pairs whose prediction equals Charton's rule, the largest
  product of primes dividing B that divides both operands, i.e. the B-smooth part of gcd(a, b);
  ``gcd_rule_agreement_wrong``: the same share among the wrongly predicted pairs.
"""

from __future__ import annotations

import math

import sympy
import torch

from grokcore.config import ConfigError, RunConfig
from grokcore.optim import make_loss
from grokcore.tasks.base import Dataset, TaskBase
from grokcore.tasks.numbers import digits, undigits

DEFAULT_N_MAX = 10_000
DEFAULT_EXAMPLES = 50_000
MAX_TEST_GCD = 100
LEARNED_ACC = 0.9


def smooth_part(n: int, base: int) -> int:
    """The largest divisor of n that is a product of primes dividing ``base``."""
    out = 1
    for p in sympy.primefactors(base):
        while n % p == 0:
            n //= p
            out *= p
    return out


def charton_rule(a: int, b: int, base: int) -> int:
    """Charton's prediction: the largest product of primes dividing B that divides a and b."""
    return smooth_part(math.gcd(a, b), base)


class Vocab:
    def __init__(self, base: int):
        self.base = base
        self.sep, self.bos, self.eos, self.pad = base, base + 1, base + 2, base + 3
        self.size = base + 4

    def source(self, a: int, b: int) -> list[int]:
        return [*digits(a, self.base), self.sep, *digits(b, self.base)]

    def target(self, g: int) -> list[int]:
        return [self.bos, *digits(g, self.base), self.eos]

    def read(self, tokens: list[int]) -> int:
        """The number written before the first EOS, or -1 if the output is not one."""
        if self.eos not in tokens:
            return -1
        ds = tokens[:tokens.index(self.eos)]
        if not ds or any(t >= self.base for t in ds):
            return -1
        return undigits(ds, self.base)


def _loguniform(n: int, hi: int, gen: torch.Generator) -> torch.Tensor:
    """Integers on 1..hi with P(x) roughly proportional to 1/x."""
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    return torch.exp(u * math.log(hi + 1)).floor().long().clamp(1, hi)


def _coprime_pairs(count: int, hi: int, gen: torch.Generator, log: bool) -> list[tuple[int, int]]:
    """``count`` coprime pairs on 1..hi, uniform or log-uniform, by rejection."""
    out: list[tuple[int, int]] = []
    while len(out) < count:
        n = 2 * (count - len(out)) + 8
        draw = (lambda: _loguniform(n, hi, gen)) if log else (
            lambda: torch.randint(1, hi + 1, (n,), generator=gen))
        for a, b in zip(draw().tolist(), draw().tolist()):
            if math.gcd(a, b) == 1 and len(out) < count:
                out.append((a, b))
    return out


def sample_train_pairs(cfg: RunConfig, n: int, n_max: int, gen: torch.Generator) -> list[tuple[int, int]]:
    if cfg.gcd_sampling == "uniform":
        a, b = torch.randint(1, n_max + 1, (2, n), generator=gen)
        return list(zip(a.tolist(), b.tolist()))
    if cfg.gcd_sampling == "loguniform":
        return list(zip(_loguniform(n, n_max, gen).tolist(), _loguniform(n, n_max, gen).tolist()))
    weights = 1.0 / torch.arange(1, MAX_TEST_GCD + 1, dtype=torch.float64)
    ks = (torch.multinomial(weights, n, replacement=True, generator=gen) + 1).tolist()
    counts = torch.bincount(torch.tensor(ks), minlength=MAX_TEST_GCD + 1).tolist()
    pairs = []
    for k in range(1, MAX_TEST_GCD + 1):
        pairs += [(k * a, k * b) for a, b in _coprime_pairs(counts[k], n_max // k, gen, log=True)]
    order = torch.randperm(len(pairs), generator=gen).tolist()
    return [pairs[i] for i in order]


def sample_test_pairs(per_gcd: int, n_max: int, gen: torch.Generator) -> list[tuple[int, int]]:
    """``per_gcd`` pairs k * (a', b') for each k = 1..100, (a', b') coprime, uniform on 1..M // k."""
    return [(k * a, k * b) for k in range(1, MAX_TEST_GCD + 1)
            for a, b in _coprime_pairs(per_gcd, n_max // k, gen, log=False)]


def _pad(rows: list[list[int]], pad: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)


class GcdTask(TaskBase):
    """gcd(a, b) as translation of base-B digits; encoder-decoder; GCDs learned, Charton's rule."""

    name = "gcd"
    table_keys = ("base", "gcd_sampling", "n_max")
    table_metrics = ("test_acc", "gcd_n_learned", "gcd_n_smooth_learned", "gcd_rule_agreement")
    defaults = dict(n_layers=2, n_heads=4, d_model=64, d_head=16, d_mlp=256, lr=1e-3,
                    weight_decay=0.01, batch_size=256, epochs=30, eval_every=1, frac_train=0.5,
                    base=10, gcd_sampling="loguniform")

    @staticmethod
    def n_max(cfg: RunConfig) -> int:
        return cfg.n_max or DEFAULT_N_MAX

    def validate(self, cfg: RunConfig) -> None:
        if cfg.base < 2:
            raise ConfigError(f"base={cfg.base} must be at least 2 (--base)")
        if self.n_max(cfg) < 10 * MAX_TEST_GCD:
            raise ConfigError(f"n_max={self.n_max(cfg)} is too small for a test set with GCDs "
                              f"1..{MAX_TEST_GCD}; use at least {10 * MAX_TEST_GCD} (--n-max)")
        if cfg.d_model % cfg.n_heads:
            raise ConfigError(f"d_model={cfg.d_model} is not a multiple of n_heads={cfg.n_heads}; "
                              "the encoder-decoder splits d_model across heads")
        if cfg.gcd_test_per_gcd < 1:
            raise ConfigError(f"gcd_test_per_gcd={cfg.gcd_test_per_gcd}; need at least 1 pair "
                              "per GCD (--gcd-test-per-gcd)")

    def make_model(self, cfg: RunConfig, ds: Dataset):
        from grokcore.seq2seq import Seq2SeqTransformer

        return Seq2SeqTransformer.for_run(cfg, ds)

    def objective(self, cfg: RunConfig, ds: Dataset):
        from grokcore.seq2seq import Seq2SeqObjective

        return Seq2SeqObjective(make_loss(cfg), ds.meta["pad"])

    def build(self, cfg: RunConfig) -> Dataset:
        n_max, vocab = self.n_max(cfg), Vocab(cfg.base)
        gen = torch.Generator().manual_seed(cfg.data_seed)
        test = sample_test_pairs(cfg.gcd_test_per_gcd, n_max, gen)
        test_set = set(test)
        drawn = sample_train_pairs(cfg, cfg.n_examples or DEFAULT_EXAMPLES, n_max, gen)
        train = [pair for pair in drawn if pair not in test_set]
        pairs = train + test
        gcds = [math.gcd(a, b) for a, b in pairs]
        inputs = _pad([vocab.source(a, b) for a, b in pairs], vocab.pad)
        labels = _pad([vocab.target(g) for g in gcds], vocab.pad)
        n_train = len(train)
        train_g = torch.tensor(gcds[:n_train])
        smooth = [k for k in range(1, MAX_TEST_GCD + 1) if smooth_part(k, cfg.base) == k]
        stats = {"n_train": n_train, "n_test": len(test), "n_max": n_max, "base": cfg.base,
                 "gcd_sampling": cfg.gcd_sampling, "train_pairs_dropped_as_test": len(drawn) - n_train,
                 "train_gcd1_share": float((train_g == 1).double().mean()),
                 "train_gcd_le100_distinct": int(train_g[train_g <= MAX_TEST_GCD].unique().numel()),
                 "n_smooth_gcds": len(smooth)}
        meta = {"pad": vocab.pad, "vocab": vocab, "a": torch.tensor([a for a, _ in pairs]),
                "b": torch.tensor([b for _, b in pairs]), "gcd": torch.tensor(gcds),
                "smooth_gcds": smooth}
        return Dataset(inputs=inputs, labels=labels, train_idx=torch.arange(n_train),
                       test_idx=torch.arange(n_train, len(pairs)), d_vocab=vocab.size,
                       d_vocab_out=vocab.size, stats=stats, meta=meta)

    def extra_metrics(self, trainer) -> dict[str, float]:
        report = gcd_report(trainer.model, trainer.dataset, trainer.cfg.base)
        return {k: v for k, v in report.items() if isinstance(v, (int, float))}


@torch.no_grad()
def gcd_report(model, ds: Dataset, base: int) -> dict:
    """Greedy predictions on the test set: per-GCD accuracy, GCDs learned, Charton-rule agreement."""
    vocab: Vocab = ds.meta["vocab"]
    device = next(model.parameters()).device
    idx = ds.test_idx
    was_training = model.training
    model.eval()
    tokens = torch.cat([model.greedy_decode(ds.inputs[idx[s:s + 4096]].to(device), vocab.bos,
                                            ds.labels.shape[1] - 1).cpu()
                        for s in range(0, len(idx), 4096)])
    model.train(was_training)
    preds = torch.tensor([vocab.read(row) for row in tokens.tolist()])
    a, b, g = ds.meta["a"][idx], ds.meta["b"][idx], ds.meta["gcd"][idx]
    rule = torch.tensor([charton_rule(int(x), int(y), base) for x, y in zip(a, b)])
    right = preds == g
    per_gcd = {k: float(right[g == k].double().mean()) for k in range(1, MAX_TEST_GCD + 1)}
    learned = [k for k, acc in per_gcd.items() if acc >= LEARNED_ACC]
    smooth = ds.meta["smooth_gcds"]
    follows = preds == rule
    wrong = ~right
    return {
        "gcd_exact_acc": float(right.double().mean()),
        "gcd_n_learned": len(learned),
        "gcd_n_smooth_learned": len(set(learned) & set(smooth)),
        "gcd_n_smooth": len(smooth),
        "gcd_rule_agreement": float(follows.double().mean()),
        "gcd_rule_agreement_wrong": float(follows[wrong].double().mean()) if wrong.any() else 1.0,
        "learned": learned,
        "per_gcd_acc": per_gcd,
        "predictions": preds,
    }
