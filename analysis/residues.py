"""How uniform are the residues z = (x^a + y^b) mod p, and does uniformity go with grokking?

    python -m analysis.residues --p 113 [--max-exp 9] [--frac 0.3] [--data-seed 598]
                                [--split pairs|classes] [--plot FILE]
                                [--experiment NAME [--tracking-uri URI]]

For every (a, b) in 1..max-exp it prints the distinct labels, the normalised label entropy, the
chi-square p-value against uniform labels, whether x -> x^a and y -> y^b are bijections, and the
leakage of the split; all of them are the statistics of ``grokcore.tasks.expmod`` (the dataset
is built exactly as training builds it), nothing is recomputed here.

With ``--experiment`` it tests the seed paper's hypothesis (grokking needs uniform residues)
against a sweep: for each (a, b) at this p, the share of its runs that reached the threshold and
their median threshold epoch, beside the label entropy, and Spearman rank correlations of entropy
with both, with a permutation p-value (10,000 seeded shuffles).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from analysis.runs import AnalysisError, client_for, fail, load_runs
from analysis.text_table import format_table
from analysis.trials import with_current_names
from grokcore.records import DEFAULT_TRACKING_URI, REACHED
from grokcore.values import number


def residue_table(p: int, max_exp: int, frac: float = 0.3, data_seed: int = 598,
                  split: str = "pairs") -> pd.DataFrame:
    from grokcore.config import ConfigError, RunConfig
    from grokcore.tasks import build_dataset, validate

    rows = []
    for a in range(1, max_exp + 1):
        for b in range(1, max_exp + 1):
            try:
                cfg = validate(RunConfig(p=p, a=a, b=b, frac_train=frac, data_seed=data_seed,
                                split=split))
            except ConfigError as err:
                raise AnalysisError(str(err)) from None
            s = build_dataset(cfg).stats
            rows.append({"a": a, "b": b, "distinct": s["n_distinct_labels"],
                         "entropy": s["label_entropy"], "chi2_pvalue": s["label_chi2_pvalue"],
                         "leakage": s["leakage"], "bijective_a": s["bijective_a"],
                         "bijective_b": s["bijective_b"]})
    return pd.DataFrame(rows)


def _yes(flag) -> str:
    return "yes" if flag else "no"


def format_residues(table: pd.DataFrame) -> str:
    rows = [[r.a, r.b, r.distinct, f"{r.entropy:.4f}", f"{r.chi2_pvalue:.3g}", f"{r.leakage:.3f}",
             _yes(r.bijective_a), _yes(r.bijective_b)] for r in table.itertuples(index=False)]
    return format_table(["a", "b", "distinct", "entropy", "chi2 p", "leakage", "x^a bij",
                         "y^b bij"], rows, sep=" ", widths=(2, 2, 8, 8, 10, 8, 7, 7))


def spearman(x: Sequence[float], y: Sequence[float], shuffles: int = 9_999,
             seed: int = 0) -> tuple[float, float]:
    """Spearman's rho (scipy.stats.spearmanr: average ranks for ties) and a two-sided
    permutation p-value (scipy.stats.permutation_test over pairings, ``shuffles`` resamples);
    (nan, nan) with fewer than 3 pairs or a constant side."""
    import numpy as np
    from scipy import stats as scipy_stats

    xs, ys = pd.Series(list(x), dtype=float), pd.Series(list(y), dtype=float)
    keep = xs.notna() & ys.notna()
    xs, ys = xs[keep].to_numpy(), ys[keep].to_numpy()
    if len(xs) < 3 or len(np.unique(xs)) < 2 or len(np.unique(ys)) < 2:
        return float("nan"), float("nan")

    def rho(a, b):
        return scipy_stats.spearmanr(a, b).statistic

    test = scipy_stats.permutation_test((xs, ys), rho, permutation_type="pairings",
                                        n_resamples=shuffles, alternative="two-sided",
                                        rng=np.random.default_rng(seed))
    return float(test.statistic), float(test.pvalue)


def relate_to_sweep(table: pd.DataFrame, runs: pd.DataFrame, p: int) -> tuple[pd.DataFrame, str]:
    """Per (a, b) at this p: runs, the share that reached the threshold (reach rate), the median
    threshold epoch, beside the residue statistics."""
    if runs.empty:
        raise AnalysisError("the experiment has no trial runs")
    runs = with_current_names(runs)
    frame = pd.DataFrame({
        "task": runs.get("params.task"),
        "p": runs.get("params.p").map(number),
        "a": runs.get("params.a").map(number),
        "b": runs.get("params.b").map(number),
        "status": runs.get("tags.status", pd.Series(["failed"] * len(runs))).fillna("failed"),
        "held": runs.get("tags.threshold_epoch", pd.Series([None] * len(runs))).map(number),
    })
    frame = frame[(frame.task == "expmod") & (frame.p == p)]
    if frame.empty:
        raise AnalysisError(f"the experiment has no expmod runs with p={p}")
    frame = frame[frame.status != "failed"]  # a failed run says nothing about grokking
    agg = frame.groupby(["a", "b"]).agg(
        runs=("status", "size"),
        reach_rate=("status", lambda s: float((s == REACHED).mean())),
        held=("held", lambda s: s.dropna().median() if s.notna().any() else float("nan")),
    ).reset_index()
    agg[["a", "b"]] = agg[["a", "b"]].astype(int)
    merged = agg.merge(table, on=["a", "b"], how="left")
    rho_rate, p_rate = spearman(merged.entropy, merged.reach_rate)
    rho_epoch, p_epoch = spearman(merged.entropy, merged.held)
    rows = [[r.a, r.b, r.runs, f"{r.reach_rate:.3f}", "-" if pd.isna(r.held) else int(r.held),
             f"{r.entropy:.4f}", f"{r.chi2_pvalue:.3g}", _yes(r.bijective_a and r.bijective_b)]
            for r in merged.sort_values("entropy").itertuples(index=False)]
    lines = [format_table(["a", "b", "runs", "reach rate", "threshold epoch", "entropy", "chi2 p",
                           "bijective"], rows, sep=" ", widths=(2, 2, 4, 10, 15, 8, 10, 9))]
    lines.append(f"Spearman rho(entropy, reach rate)      = {rho_rate:.3f} "
                 f"(permutation p = {p_rate:.3g}, {len(merged)} configurations)")
    lines.append(f"Spearman rho(entropy, threshold epoch) = {rho_epoch:.3f} "
                 f"(permutation p = {p_epoch:.3g}, configurations that reached it only)")
    lines.append("(reach rate: the share of runs whose test accuracy held the threshold to the "
                 "end, lookup included; the grok table's 'shows' says which rows grokked)")
    return merged, "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.residues",
                                     description="Uniformity of z = (x^a + y^b) mod p for every "
                                                 "(a, b), and its relation to grokking in a sweep.")
    parser.add_argument("--p", type=int, default=113, help="prime modulus (default: 113)")
    parser.add_argument("--max-exp", type=int, default=9, help="exponents 1..this (default: 9)")
    parser.add_argument("--frac", type=float, default=0.3, help="train share, for the leakage")
    parser.add_argument("--data-seed", type=int, default=598, help="split seed, for the leakage")
    parser.add_argument("--split", default="pairs", help="pairs or classes, for the leakage")
    parser.add_argument("--plot", type=Path, default=None,
                        help="write the distributions of z (the seed's Figure 2) to this PNG")
    parser.add_argument("--experiment", default=None, help="relate to this MLflow experiment")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"MLflow tracking URI (default: {DEFAULT_TRACKING_URI})")
    args = parser.parse_args(argv)
    try:
        if not 1 <= args.max_exp <= args.p - 1:  # as the task's exponents
            raise AnalysisError(f"--max-exp {args.max_exp} is outside 1..p-1 = 1..{args.p - 1}")
        table = residue_table(args.p, args.max_exp, args.frac, args.data_seed, args.split)
        related = None
        if args.experiment:
            runs = load_runs(client_for(args.tracking_uri), args.experiment)
            _, related = relate_to_sweep(table, runs, args.p)
    except AnalysisError as err:
        return fail(str(err))
    print(format_residues(table))
    if related:
        print()
        print(f"against experiment {args.experiment!r} (p = {args.p}; failed runs left out):")
        print(related)
    if args.plot:
        from analysis.figures_progress import plot_residue_distribution

        n = args.max_exp
        pairs = [(a, a) for a in range(1, n + 1)]
        plot_residue_distribution(args.p, pairs, args.plot)
        print(f"figure: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
