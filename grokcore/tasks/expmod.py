"""Exponentiated modular addition: z = (x1^a + x2^b + ... + xk^b) mod p, tokens [x1, ..., xk, =].

With k = 2 (the default) this is the seed paper's (x^a + y^b) mod p. The '=' token is p, so the
vocabulary has p + 1 tokens and the model predicts one of p residues.

Number theory that the statistics report: x -> x^a is a bijection of Z_p iff gcd(a, p - 1) = 1.
When it is not, many inputs share a class u = x^a, and a test pair (x, y) whose class pair (u, v)
also occurs in train can be answered by lookup. ``split='classes'`` splits on (u, v) instead, so
no test class is ever seen in training (zero leakage).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from grokcore.config import MAX_EXAMPLES, ConfigError, RunConfig, is_prime
from grokcore.tasks.base import (Dataset, TableColumn, TaskBase, label_distribution_stats,
                                 split_indices)
from grokcore.tasks.modular import power_table


def exponents_of(cfg: RunConfig) -> list[int]:
    """The exponent of each operand: a for the first, b for every later one."""
    return [cfg.a] + [cfg.b] * (cfg.n_operands - 1)


class ExpModTask(TaskBase):
    name = "expmod"
    table_keys = ("a", "b", "p")
    table_metrics = ()  # its table has the dataset statistics and the paper's figure instead
    has_progress_measures = True
    splits = ("pairs", "classes")
    test_groups = ("seen", "unseen")  # test examples whose class tuple does / does not train
    trial_stats = ("label_entropy", "label_chi2_pvalue", "leakage", "n_test_unseen",
                   "bijective_a", "bijective_b")
    # The grok table's own columns: lookup is not generalization, so each row shows how its
    # runs did on the test classes no training example shares (unseen) and how many test pairs
    # could be looked up (leakage), beside the statistics of the labels and of x^a, y^b.
    table_columns = (
        TableColumn("test_acc_median", "test acc", "{:.3f}"),
        TableColumn("unseen_acc", "unseen", "{:.3f}", source="final_test_acc_unseen"),
        TableColumn("n_test_unseen", "n unseen", "int", source="n_test_unseen", brief=False),
        TableColumn("leakage", "leakage", "{:.2f}", source="leakage", how="mean"),
        TableColumn("label_entropy", "label entropy", "{:.4f}", source="label_entropy",
                    brief=False),
        TableColumn("label_chi2_pvalue", "chi2 p", "{:.3g}", source="label_chi2_pvalue",
                    brief=False),
        TableColumn("bijective_a", "x^a bij.", "yes", source="bijective_a", how="first",
                    brief=False),
        TableColumn("bijective_b", "y^b bij.", "yes", source="bijective_b", how="first",
                    brief=False))
    paper_figures = "seed_table1.csv"  # the seed paper's Table 1, split by pairs
    paper_split = "pairs"
    view_metrics = ("test_acc_unseen", "leakage")
    view_charts = ("test_acc_unseen",)

    def validate(self, cfg: RunConfig) -> None:
        if not is_prime(cfg.p):
            raise ConfigError(f"p={cfg.p} is not prime; choose a prime such as 97, 101, 103 or 113 "
                              "(--p)")
        for name in ("a", "b"):
            value = getattr(cfg, name)
            if not 1 <= value <= cfg.p - 1:  # x^(e + p - 1) = x^e: larger exponents repeat these
                raise ConfigError(f"{name}={value} is out of range; exponents are integers in "
                                  f"1..p-1 = 1..{cfg.p - 1} at p={cfg.p} (--{name})")
        if cfg.split not in self.splits:
            raise ConfigError(f"split={cfg.split!r} is not an expmod split; use pairs or classes (--split)")
        if cfg.n_operands < 2:
            raise ConfigError(f"n_operands={cfg.n_operands}; need at least 2 operands")
        if cfg.p ** cfg.n_operands > MAX_EXAMPLES:
            raise ConfigError(f"p^n_operands = {cfg.p}^{cfg.n_operands} = "
                              f"{cfg.p ** cfg.n_operands} examples is more than {MAX_EXAMPLES}; "
                              "use a smaller p or fewer operands")
        if cfg.measure_every and cfg.n_operands != 2:
            raise ConfigError("progress measures (--measure-every) need the expmod task with 2 "
                              "operands; set --measure-every 0")
        if cfg.measure_every and cfg.attn_only:
            raise ConfigError("progress measures (--measure-every) need an MLP; drop --attn-only or "
                              "set --measure-every 0")

    def validate_dataset(self, cfg: RunConfig, ds: Dataset) -> None:
        if cfg.grok_on == "unseen" and ds.stats["n_test_unseen"] == 0:
            raise ConfigError("grok_on='unseen' but every test example's class (x^a, y^b) has a "
                              "training example; use --split classes or --grok-on test")

    def run_name_parts(self, cfg: RunConfig) -> list[str]:
        """``a3b4 p113``: the exponents and the modulus as the seed paper writes them."""
        return [f"a{cfg.a}b{cfg.b}", f"p{cfg.p}"]

    def progress_measures(self, cfg: RunConfig, ds: Dataset):
        from grokcore.progress import ProgressMeasures

        return ProgressMeasures(cfg, ds)

    def progress_measures_apply(self, cfg: RunConfig) -> bool:
        from grokcore.progress import measurable

        return measurable(cfg)

    def draw_figures(self, cfg: RunConfig, history, summary, model, dataset: Dataset,
                     folder: Path) -> list[Path]:
        """Where the progress measures apply: the measures over training and the views of the
        final weights (``grokcore.tasks.expmod_figures``)."""
        if not self.progress_measures_apply(cfg):
            return []
        from grokcore.tasks.expmod_figures import draw_run_figures

        return draw_run_figures(cfg, history, summary, model, dataset, folder)

    def build(self, cfg: RunConfig) -> Dataset:
        p, k = cfg.p, cfg.n_operands
        # Every operand tuple, x1-major: row index = x1 * p^(k-1) + x2 * p^(k-2) + ... + xk.
        operands = torch.cartesian_prod(*[torch.arange(p)] * k).reshape(-1, k)
        tables = [power_table(p, e) for e in exponents_of(cfg)]
        classes = torch.stack([tables[i][operands[:, i]] for i in range(k)], dim=1)  # (u, v, ...)
        labels = classes.sum(dim=1) % p
        equals = torch.full((operands.shape[0], 1), p, dtype=torch.long)
        inputs = torch.cat([operands, equals], dim=1)

        class_id = (classes * (p ** torch.arange(k - 1, -1, -1))).sum(dim=1)
        if cfg.split == "pairs":
            train_idx, test_idx = split_indices(len(labels), cfg.frac_train, cfg.data_seed)
        else:
            train_idx, test_idx = _split_by_class(class_id, cfg.frac_train, cfg.data_seed)

        stats = label_distribution_stats(labels, p)
        for name, exponent in (("a", cfg.a), ("b", cfg.b)):
            image = len(set(power_table(p, exponent).tolist()))
            stats[f"image_size_{name}"] = image
            stats[f"bijective_{name}"] = image == p
            stats[f"gcd_{name}_pminus1"] = math.gcd(exponent, p - 1)
        seen = torch.isin(class_id[test_idx], class_id[train_idx])
        stats["leakage"] = float(seen.double().mean()) if len(test_idx) else 0.0
        stats["n_train"] = len(train_idx)
        stats["n_test"] = len(test_idx)
        stats["n_test_unseen"] = int((~seen).sum())
        return Dataset(inputs=inputs, labels=labels, train_idx=train_idx, test_idx=test_idx,
                       d_vocab=p + 1, d_vocab_out=p, stats=stats,
                       test_groups={"seen": seen, "unseen": ~seen})


def _split_by_class(class_id: torch.Tensor, frac: float, seed: int):
    """Put a random int(frac * n_classes) of the classes, with all their examples, in train."""
    distinct = torch.unique(class_id)
    train_cls, _ = split_indices(len(distinct), frac, seed)
    in_train = torch.isin(class_id, distinct[train_cls])
    return in_train.nonzero().squeeze(1), (~in_train).nonzero().squeeze(1)

