"""analysis.stats (Kaplan-Meier medians, log-rank, Holm) and analysis.figures_km, checked
against arithmetic done by hand (written out in the comments)."""

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.figures_km import plot_km
from analysis.stats import (TABLE_COLUMNS, holm, km_curve, km_median, logrank_p,
                            pairwise_logrank, survival_table)

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal

# Six runs: grokked at 100, 200, 300; censored (never grokked) at 250, 400, 400.
SIX_TIMES = [100, 200, 300, 250, 400, 400]
SIX_GROKKED = [True, True, True, False, False, False]


def test_km_six_runs_by_hand():
    # Sorted: 100 event, 200 event, 250 censored, 300 event, 400 censored x2.
    #   t    at risk n  events d  S(t)                   Greenwood sum d/(n(n-d))
    #   100  6          1         5/6          = 0.8333  1/(6*5) = 1/30          = 0.03333
    #   200  5          1         5/6*4/5=2/3  = 0.6667  + 1/(5*4) = 1/12 total  = 0.08333
    #   250  4          0         2/3                    (unchanged)
    #   300  3          1         2/3*2/3=4/9  = 0.4444  + 1/(3*2) = 1/4 total   = 0.25
    #   400  2          0         4/9                    (unchanged)
    # Median: the first t with S(t) <= 0.5 is 300.
    #
    # Log-log band: se of log(-log S) = sqrt(Greenwood) / |log S|;
    #   bounds = exp(-exp(log(-log S) +/- z se)), "+" giving the lower bound.
    #   t=100: log S = -0.182322, log(-log S) = -1.701983, se = 0.182574/0.182322 = 1.001383,
    #          z se = 1.962675 -> lower = exp(-exp(0.260692))  = exp(-1.297836) = 0.27312,
    #                             upper = exp(-exp(-3.664658)) = exp(-0.025607) = 0.97471
    #   t=200: log S = -0.405465, log(-log S) = -0.902723, se = 0.288675/0.405465 = 0.711961,
    #          z se = 1.395417 -> lower = exp(-exp(0.492694))  = exp(-1.636706) = 0.19462,
    #                             upper = exp(-exp(-2.298140)) = exp(-0.100443) = 0.90443
    #   t=300: log S = -0.810930, log(-log S) = -0.209573, se = 0.5/0.810930 = 0.616576,
    #          z se = 1.208466 -> lower = exp(-exp(0.998893))  = exp(-2.715272) = 0.06620,
    #                             upper = exp(-exp(-1.418039)) = exp(-0.242180) = 0.78491
    # Median interval: lower bound <= 0.5 first at t=100 -> ci_low = 100; the upper bound
    # stays above 0.5 (0.785 at the last event) -> ci_high None (unbounded above).
    data = stats.CensoredData(uncensored=[100, 200, 300], right=[250, 400, 400])
    sf = stats.ecdf(data).sf
    np.testing.assert_allclose(sf.probabilities, [5 / 6, 2 / 3, 2 / 3, 4 / 9, 4 / 9])
    ci = sf.confidence_interval(0.95, method="log-log")
    at = [100, 200, 300]
    np.testing.assert_allclose(ci.low.evaluate(at), [0.27312, 0.19462, 0.06620], atol=2e-5)
    np.testing.assert_allclose(ci.high.evaluate(at), [0.97471, 0.90443, 0.78491], atol=2e-5)

    km = km_median(SIX_TIMES, SIX_GROKKED)
    assert (km.n, km.k) == (6, 3)
    assert km.median == 300
    assert km.ci_low == 100
    assert km.ci_high is None


def test_km_ten_uncensored_bounded_interval():
    # Ten runs grokking at 10, 20, ..., 100, none censored: at the j-th event n = 11 - j,
    # S = (10 - j)/10, Greenwood sum = sum_{i<=j} 1/(n_i (n_i - 1)). Written out below with
    # plain floats (no scipy), giving
    #   t   S    lower  upper
    #   10  0.9  0.473  0.985   <- first lower <= 0.5: ci_low = 10
    #   50  0.5  0.184  0.753   <- S = 0.5 exactly (up to rounding): median = 50
    #   70  0.3  0.071  0.578
    #   80  0.2  0.031  0.475   <- first upper <= 0.5: ci_high = 80
    lower, upper, s, greenwood = [], [], 1.0, 0.0
    for j in range(1, 10):  # S = 0 at j = 10, where the band is undefined
        n = 11 - j
        s *= (n - 1) / n
        greenwood += 1 / (n * (n - 1))
        se = math.sqrt(greenwood) / abs(math.log(s))
        centre = math.log(-math.log(s))
        lower.append(math.exp(-math.exp(centre + Z95 * se)))
        upper.append(math.exp(-math.exp(centre - Z95 * se)))
    assert lower[0] == pytest.approx(0.473, abs=5e-4)
    assert upper[7] == pytest.approx(0.475, abs=5e-4) and upper[6] > 0.5
    first = lambda vals: 10 * (1 + next(i for i, v in enumerate(vals) if v <= 0.5))  # noqa: E731

    km = km_median(range(10, 101, 10), [True] * 10)
    assert (km.n, km.k, km.median) == (10, 10, 50)
    assert km.ci_low == first(lower) == 10
    assert km.ci_high == first(upper) == 80


def test_km_degenerate_cases():
    empty = km_median([], [])
    assert (empty.n, empty.k, empty.median, empty.ci_low, empty.ci_high) == (0, 0, None,
                                                                            None, None)
    none = km_median([500, 500, 300], [False, False, False])
    assert (none.n, none.k, none.median, none.ci_low, none.ci_high) == (3, 0, None, None, None)
    # One of four grokked: S = 3/4 never reaches 0.5 -> median not reached, upper unbounded.
    few = km_median([50, 500, 500, 500], [True, False, False, False])
    assert few.median is None and few.ci_high is None
    # All grokked, the last at S = 0 (band undefined there): the median is still read off.
    three = km_median([1, 2, 3], [True, True, True])
    assert three.median == 2 and three.ci_low == 1 and three.ci_high is None
    with pytest.raises(ValueError):
        km_median([1, float("nan")], [True, False])
    with pytest.raises(ValueError):
        km_median([1, 2], [True])


def test_km_curve_censoring_marks():
    curve = km_curve(SIX_TIMES, SIX_GROKKED)
    np.testing.assert_allclose(curve.times, [100, 200, 250, 300, 400])
    np.testing.assert_allclose(curve.survival, [5 / 6, 2 / 3, 2 / 3, 4 / 9, 4 / 9])
    np.testing.assert_allclose(curve.censored_times, [250, 400, 400])
    np.testing.assert_allclose(curve.censored_survival, [2 / 3, 4 / 9, 4 / 9])


def test_logrank_by_hand():
    # Group A grokked at 10, 20, 30; group B grokked at 20 and 40, censored at 35.
    # At each event time: E_A = n_A d / n, V = n_A n_B d (n - d) / (n^2 (n - 1)).
    #   t   n_A n_B n  d   E_A            V
    #   10  3   3   6  1   3/6  = 1/2     3*3*1*5/(36*5)  = 1/4
    #   20  2   3   5  2   2*2/5 = 4/5    2*3*2*3/(25*4)  = 9/25   (one event in each group)
    #   30  1   2   3  1   1/3            1*2*1*2/(9*2)   = 2/9
    #   40  0   1   1  1   0              0               (B censored at 35 before)
    # O_A = 3, E_A = 1/2 + 4/5 + 1/3 = 49/30, O - E = 41/30
    # V = 1/4 + 9/25 + 2/9 = (225 + 324 + 200)/900 = 749/900
    # chi2 = (41/30)^2 / (749/900) = 1681/749 = 2.244326; p = P(chi2_1 > 2.244326)
    #      = erfc(sqrt(chi2 / 2)) = 0.13411
    e_a = Fraction(1, 2) + Fraction(4, 5) + Fraction(1, 3)
    v = Fraction(1, 4) + Fraction(9, 25) + Fraction(2, 9)
    chi2 = (3 - e_a) ** 2 / v
    assert chi2 == Fraction(1681, 749)
    p_hand = math.erfc(math.sqrt(float(chi2) / 2))
    assert p_hand == pytest.approx(0.13411, abs=1e-5)

    p = logrank_p([10, 20, 30], [True] * 3, [20, 40, 35], [True, True, False])
    assert p == pytest.approx(p_hand, rel=1e-10)
    # symmetric in the groups
    assert logrank_p([20, 40, 35], [True, True, False], [10, 20, 30], [True] * 3) == \
        pytest.approx(p_hand, rel=1e-10)


def test_logrank_degenerate_is_none():
    assert logrank_p([], [], [1, 2], [True, True]) is None
    assert logrank_p([5, 6], [False, False], [3], [False]) is None  # no events at all
    assert logrank_p([2], [True], [2], [True]) is None  # all events at one shared epoch
    assert logrank_p([1], [False], [5, 6], [True, True]) is None  # A gone before any event


def test_holm_by_hand():
    # m = 4 present p-values; sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1:
    #   0.02, 0.03, 0.06, 0.04 -> running maximum 0.02, 0.03, 0.06, 0.06
    out = holm([0.01, 0.04, 0.03, None, 0.005])
    assert out[3] is None
    np.testing.assert_allclose([out[i] for i in (0, 1, 2, 4)], [0.03, 0.06, 0.06, 0.02])
    # clip at 1: 0.5*2 = 1.0, 0.6*1 = 0.6 -> max(1.0, 0.6) = 1.0
    assert holm([0.6, 0.5]) == [1.0, 1.0]
    assert holm([]) == [] and holm([None]) == [None]
    assert math.isnan(holm([float("nan"), 0.2])[0]) and holm([float("nan"), 0.2])[1] == 0.2


def _trials() -> pd.DataFrame:
    rows = []
    # reference (lr=0.001): the six runs above, plus a diverged and a failed run whose epochs
    # must not count (a diverged "threshold_epoch" of 5 would change the minimum if it did).
    for t, g in zip(SIX_TIMES, SIX_GROKKED):
        rows.append(dict(lr=0.001, wd=1.0, status="reached" if g else "not_reached",
                         threshold_epoch=t if g else None, epochs_run=t))
    rows.append(dict(lr=0.001, wd=1.0, status="diverged", threshold_epoch=5, epochs_run=5))
    rows.append(dict(lr=0.001, wd=1.0, status="failed", threshold_epoch=None, epochs_run=None))
    # lr=0.003: ten runs grokking at 10..100 and one unfinished
    for t in range(10, 101, 10):
        rows.append(dict(lr=0.003, wd=1.0, status="reached", threshold_epoch=t, epochs_run=t + 20))
    rows.append(dict(lr=0.003, wd=1.0, status="unfinished", threshold_epoch=None, epochs_run=3))
    # lr=0.01: one of four grokked -> median not reached
    rows.append(dict(lr=0.01, wd=1.0, status="reached", threshold_epoch=50, epochs_run=70))
    for _ in range(3):
        rows.append(dict(lr=0.01, wd=1.0, status="not_reached", threshold_epoch=None,
                         epochs_run=500))
    return pd.DataFrame(rows)


def test_survival_table():
    trials = _trials()
    table = survival_table(trials, ["lr", "wd"])
    assert list(table.columns) == ["lr", "wd", *TABLE_COLUMNS]
    assert list(TABLE_COLUMNS) == ["runs", "reached", "censored", "diverged", "failed",
                                   "unfinished", "threshold_km_median", "threshold_km_ci_low",
                                   "threshold_km_ci_high", "threshold_min", "threshold_max",
                                   "logrank_p", "logrank_p_holm"]
    ref, fast, slow = (table.iloc[i] for i in range(3))
    assert (ref.lr, fast.lr, slow.lr) == (0.001, 0.003, 0.01)
    assert (ref.runs, ref.reached, ref.censored, ref.diverged, ref.failed, ref.unfinished) == \
        (8, 3, 3, 1, 1, 0)
    assert (ref.threshold_km_median, ref.threshold_km_ci_low, ref.threshold_min, ref.threshold_max) == \
        (300, 100, 100, 300)
    assert math.isnan(ref.threshold_km_ci_high)
    assert math.isnan(ref.logrank_p) and math.isnan(ref.logrank_p_holm)

    assert (fast.runs, fast.reached, fast.censored, fast.unfinished) == (11, 10, 0, 1)
    assert (fast.threshold_km_median, fast.threshold_km_ci_low, fast.threshold_km_ci_high) == (50, 10, 80)

    assert (slow.runs, slow.reached, slow.censored) == (4, 1, 3)
    assert math.isnan(slow.threshold_km_median) and math.isnan(slow.threshold_km_ci_high)
    assert (slow.threshold_min, slow.threshold_max) == (50, 50)

    six = (SIX_TIMES, SIX_GROKKED)
    p_fast = logrank_p(range(10, 101, 10), [True] * 10, *six)
    p_slow = logrank_p([50, 500, 500, 500], [True, False, False, False], *six)
    assert fast.logrank_p == pytest.approx(p_fast) and slow.logrank_p == pytest.approx(p_slow)
    expected = holm([p_fast, p_slow])
    assert [fast.logrank_p_holm, slow.logrank_p_holm] == pytest.approx(expected)

    # another reference row; one key column given as a scalar
    other = survival_table(trials, ["lr", "wd"], reference=(0.003, 1.0))
    assert math.isnan(other.iloc[1].logrank_p)
    assert other.iloc[0].logrank_p == pytest.approx(p_fast)
    single = survival_table(trials, ["lr"], reference=0.01)
    assert list(single.columns) == ["lr", *TABLE_COLUMNS]
    assert math.isnan(single.iloc[2].logrank_p) and not math.isnan(single.iloc[0].logrank_p)
    with pytest.raises(ValueError):
        survival_table(trials, ["lr"], reference=0.5)
    with pytest.raises(ValueError):
        survival_table(trials.assign(status="weird"), ["lr"])


def test_pairwise_logrank():
    trials = _trials()
    rows = [(0.001, 1.0), (0.003, 1.0), (0.01, 1.0)]
    pairs = pairwise_logrank(trials, ["lr", "wd"], rows)
    assert list(pairs.columns) == ["row_i", "row_j", "p", "p_holm"]
    assert [(r.row_i, r.row_j) for r in pairs.itertuples()] == [
        (rows[0], rows[1]), (rows[0], rows[2]), (rows[1], rows[2])]
    six = (SIX_TIMES, SIX_GROKKED)
    ten = (range(10, 101, 10), [True] * 10)
    four = ([50, 500, 500, 500], [True, False, False, False])
    ps = [logrank_p(*six, *ten), logrank_p(*six, *four), logrank_p(*ten, *four)]
    np.testing.assert_allclose(pairs.p, ps)
    np.testing.assert_allclose(pairs.p_holm, holm(ps))


def test_plot_km_writes_png(tmp_path):
    path = plot_km(_trials(), ["lr", "wd"], tmp_path / "km" / "km.png", title="test")
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def _split_trials() -> pd.DataFrame:
    """(3, 4) and (5, 4) at p = 113 under both splits, (1, 1) under one: what --compare split
    reads in Table 1."""
    rows = []

    def add(a, b, split, times, grokked):
        for t, g in zip(times, grokked):
            rows.append(dict(task="expmod", a=a, b=b, p=113, split=split, dtype="float32",
                             frac_train=0.3, status="reached" if g else "not_reached",
                             outcome="grokked" if g else "not_generalized",
                             threshold_epoch=t if g else None, epochs_run=t + 400 if g else t))

    add(1, 1, "pairs", [4200, 4900, 6100], [True] * 3)
    add(3, 4, "pairs", [4400, 4700, 7500], [True] * 3)
    add(3, 4, "classes", [20000] * 3, [False] * 3)
    add(5, 4, "pairs", [4800, 5900, 8400], [True] * 3)
    add(5, 4, "classes", [20000, 9000, 20000], [False, True, False])
    return pd.DataFrame(rows)


def test_compare_by_split_tests_each_row_across_its_splits():
    from analysis.runs import AnalysisError
    from analysis.table import compare_by
    from analysis.table_render import render_compare

    keys, tests, _ = compare_by(_split_trials(), "split")
    assert keys == ["task", "a", "b", "p", "split", "dtype", "frac_train"]
    at = keys.index("split")
    # one test per row run under both splits, (1, 1) has none; the keys differ in split only
    assert [(r.row_i[1:3], r.row_i[at], r.row_j[at]) for r in tests.itertuples()] == [
        ((3, 4), "classes", "pairs"), ((5, 4), "classes", "pairs")]

    def scipy_p(times_a, grokked_a, times_b, grokked_b):
        def data(times, grokked):
            times, grokked = np.asarray(times, float), np.asarray(grokked)
            return stats.CensoredData(uncensored=times[grokked], right=times[~grokked])
        return stats.logrank(data(times_a, grokked_a), data(times_b, grokked_b)).pvalue

    ps = [scipy_p([20000] * 3, [False] * 3, [4400, 4700, 7500], [True] * 3),
          scipy_p([20000, 9000, 20000], [False, True, False], [4800, 5900, 8400], [True] * 3)]
    np.testing.assert_allclose(tests.p, ps)
    np.testing.assert_allclose(tests.p_holm, holm(ps))
    lines = render_compare(keys, "split", tests).splitlines()
    assert lines[0] == "row | split i | split j | log-rank p | Holm"
    assert lines[1].startswith("a=3 b=4 p=113 | classes | pairs | ")

    with pytest.raises(AnalysisError, match="compare one of those"):
        compare_by(_split_trials(), "seed")
    with pytest.raises(AnalysisError, match="no row was run with two values of split"):
        compare_by(_split_trials().query("split == 'pairs'"), "split")


def test_heatmap_keeps_the_splits_apart(tmp_path):
    from analysis.figures_progress import heatmap_cells, plot_grok_heatmap
    from analysis.table import build_table

    table = build_table(_split_trials())
    paper = {(r.a, r.b, r.split): r.paper_grok_epoch for r in table.itertuples()}
    assert paper[(3, 4, "pairs")] == "70000" and paper[(3, 4, "classes")] == ""  # the paper split by pairs
    p, panels = heatmap_cells(table)
    assert p == 113 and list(panels) == ["pairs", "classes"]  # the split with more rows first
    pairs, classes = panels["pairs"], panels["classes"]
    assert (pairs.loc[(3, 4), "reached"], pairs.loc[(3, 4), "runs"]) == (3, 3)
    assert (classes.loc[(3, 4), "reached"], classes.loc[(3, 4), "runs"]) == (0, 3)
    assert math.isnan(classes.loc[(3, 4), "epoch"]) and pairs.loc[(3, 4), "epoch"] == 4700
    assert (1, 1) in pairs.index and (1, 1) not in classes.index
    data = plot_grok_heatmap(table, tmp_path / "heat.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_heatmap_colours_only_cells_whose_runs_generalized():
    import pandas as pd

    from analysis.figures_progress import coloured_epochs

    cells = pd.DataFrame({"epoch": [100.0, 200.0, 300.0, 400.0, 500.0, None],
                          "shows": ["grokking", "lookup", "grokking 2, lookup 1", "no delay",
                                    "grokking 1, no delay 2", "none"]})
    kept = coloured_epochs(cells)
    assert kept.tolist()[0] == 100 and kept.tolist()[3:5] == [400, 500]
    assert kept.isna().tolist() == [False, True, True, False, False, True]
    from analysis.figures_progress import short_shows

    assert [short_shows(s) for s in cells.shows] == ["G", "L", "2G 1L", "D", "1G 2D", "N"]


def test_km_curves_keep_a_rows_colour_across_splits():
    from analysis.figures_km import curve_styles

    keys = ["a", "b", "split"]
    names = [(1, 1, "pairs"), (3, 4, "classes"), (3, 4, "pairs"), (5, 4, "classes"),
             (5, 4, "pairs"), (9, 9, "pairs")]
    styles = curve_styles(names, keys, "split")
    assert styles[(3, 4, "classes")][0] == styles[(3, 4, "pairs")][0]
    assert styles[(3, 4, "pairs")][1] == "-" and styles[(3, 4, "classes")][1] == "--"
    colours = {styles[n][0] for n in names}
    assert len(colours) == 4  # (1, 1), (3, 4), (5, 4), (9, 9)
    assert {s for _, s in curve_styles(names, keys).values()} == {"-"}  # no style key: all solid
    assert len({c for c, _ in curve_styles(names, keys).values()}) == 6


def test_a_setting_trained_twice_with_the_same_seeds_is_one_replicate():
    """Runs of the same row and the same (seed, data_seed), say a GPU rerun of a configuration
    an interrupted CPU sweep had started, count once: the ended one, else the earliest."""
    import pandas as pd

    from analysis.trials import one_run_per_setting

    trials = pd.DataFrame({
        "task": ["expmod"] * 5, "a": [1, 1, 1, 1, 3], "b": [1] * 5, "p": [31] * 5,
        "split": ["pairs"] * 5, "dtype": ["float32"] * 5, "frac_train": [0.5] * 5,
        "seed": [0, 0, 1, 1, 0], "data_seed": [0, 0, 1, 1, 0],
        "status": ["unfinished", "reached", "reached", "not_reached", "reached"],
        "run_name": ["cpu-killed", "gpu", "cpu-early", "gpu-late", "other-row"]})
    kept = one_run_per_setting(trials, pd.Series([1, 5, 2, 6, 3]))
    assert list(kept.run_name) == ["gpu", "cpu-early", "other-row"]
    assert kept.attrs["duplicates"] == 2


def test_residues_spearman_is_exact_for_small_samples():
    """n = 4: of the 24 pairings, only the identity and the reversal reach |rho| = 1, so the
    two-sided permutation p of a perfect rank agreement is 2/24; a constant side gives nan."""
    import math

    from analysis.residues import spearman

    rho, p = spearman([1, 2, 3, 4], [10, 20, 30, 40])
    assert rho == 1.0 and abs(p - 2 / 24) < 1e-12
    rho, p = spearman([1, 2, 3, 4], [40, 30, 20, 10])
    assert rho == -1.0 and abs(p - 2 / 24) < 1e-12
    assert all(math.isnan(v) for v in spearman([1, 1, 1, 1], [1, 2, 3, 4]))
