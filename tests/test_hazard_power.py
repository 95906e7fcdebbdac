"""The statistics that decide: the stratified log-rank test (``analysis.logrank``, ``grok_table
--compare``), the prediction interval of one new run (``analysis.lognormal``, the table's paper
columns), replicate planning (``analysis.power``) and the Cox model (``analysis.hazard``).
Each is checked against values worked out by hand or in closed form (written out in the
comments), and the commands against a real MLflow store of real tiny trainings."""

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, stats

from analysis import grok_table, hazard, power, renamings
from analysis.logrank import stratified_logrank
from analysis.lognormal import new_run_test
from analysis.stats import logrank_p
from analysis.table import build_table, compare_by
from analysis.trials import read_trials
from grokcore.config import RunConfig

TABLE1 = Path(__file__).resolve().parent.parent / "results" / "table1" / "trials.csv"


def _phi_upper(z: float) -> float:
    """Two-sided normal p of z, from the error function (not scipy)."""
    return math.erfc(abs(z) / math.sqrt(2))


def test_stratified_logrank_by_hand():
    # Stratum 1: A grokked at 1, 3; B grokked at 2, censored at 4.
    #   t  n_A n_B n d d_A  E_A   V = n_A n_B d (n - d) / (n^2 (n - 1))
    #   1  2   2   4 1 1    1/2   2*2*1*3/(16*3) = 1/4
    #   2  1   2   3 1 0    1/3   1*2*1*2/(9*2)  = 2/9
    #   3  1   1   2 1 1    1/2   1*1*1*1/(4*1)  = 1/4
    #   O_A = 2, E_A = 4/3, O - E = 2/3, V = 13/18
    # Stratum 2: A grokked at 5, 7; B grokked at 5 (a tie with A) and 6, censored at 8.
    #   5  2   3   5 2 1    4/5   2*3*2*3/(25*4) = 9/25
    #   6  1   2   3 1 0    1/3   2/9
    #   7  1   1   2 1 1    1/2   1/4
    #   O_A = 2, E_A = 49/30, O - E = 11/30, V = 749/900
    # Pooled: O - E = 31/30, V = 13/18 + 749/900 = 1399/900, z = 31 / sqrt(1399) = 0.82881
    o_e = Fraction(2, 3) + Fraction(11, 30)
    v = Fraction(13, 18) + Fraction(749, 900)
    assert (o_e, v) == (Fraction(31, 30), Fraction(1399, 900))
    z = 31 / math.sqrt(1399)
    assert z == pytest.approx(0.82881, abs=1e-5)
    strata = [([1, 3], [True, True], [2, 4], [True, False]),
              ([5, 7], [True, True], [5, 6, 8], [True, True, False])]
    test = stratified_logrank(strata)
    assert test.strata == 2 and test.observed == 4
    assert test.expected == pytest.approx(float(Fraction(4, 3) + Fraction(49, 30)))
    assert test.variance == pytest.approx(1399 / 900)
    assert test.z == pytest.approx(z) and test.p == pytest.approx(_phi_upper(z))
    # one stratum alone is the ordinary log-rank test (scipy's)
    assert stratified_logrank(strata[1:]).p == pytest.approx(logrank_p(*strata[1]), rel=1e-12)
    # a stratum with one group empty adds nothing; no event while both are at risk: no test
    assert stratified_logrank([*strata, ([], [], [9], [True])]).p == pytest.approx(test.p)
    nothing = stratified_logrank([([5], [False], [3], [False])])
    assert nothing.z is None and nothing.p is None


def _hand_split_p() -> float:
    # results/table1 --compare split: five rows, each with 3 runs split by pairs that crossed
    # the threshold and 3 split by classes (group a) censored at 20000. In a row whose pairs
    # runs crossed at three distinct epochs (n_pairs at risk 3, 2, 1; n_classes 3; one event
    # each): E_classes = 3/6 + 3/5 + 3/4 = 1.85, V = 9/36 + 6/25 + 3/16 = 0.6775, O = 0.
    # (7, 7): all three pairs runs at epoch 100 (a tie): E = 3 * 3/6 = 1.5,
    # V = 3*3*3*3/(36*5) = 0.45. Sum: O - E = -(4 * 1.85 + 1.5) = -8.9, V = 4 * 0.6775 + 0.45 = 3.16
    e = 4 * (Fraction(3, 6) + Fraction(3, 5) + Fraction(3, 4)) + Fraction(3, 2)
    v = 4 * (Fraction(9, 36) + Fraction(6, 25) + Fraction(3, 16)) + Fraction(9, 20)
    assert (float(e), float(v)) == (8.9, 3.16)
    return _phi_upper(8.9 / math.sqrt(3.16))


def test_compare_split_on_table1_pools_the_rows(capsys):
    """Acceptance: the stratified split test on results/table1/trials.csv prints p < 1e-4."""
    hand = _hand_split_p()
    assert hand == pytest.approx(5.54e-7, rel=1e-2) and hand < 1e-4
    assert grok_table.main(["--trials", str(TABLE1), "--compare", "split"]) == 0
    lines = capsys.readouterr().out.splitlines()
    pooled = lines[lines.index(next(l for l in lines if l.startswith("pooled"))) + 1]
    assert pooled.startswith("classes | pairs | 5 | 0 (8.9) | -5.007 | ")
    assert float(pooled.split(" | ")[5]) == pytest.approx(hand, rel=1e-2)

    keys, tests, summary = compare_by(read_trials(TABLE1), "split")
    assert len(tests) == 5 and len(summary) == 1
    row = summary.iloc[0]
    assert (row.value_i, row.value_j, row.strata, row.observed_i) == ("classes", "pairs", 5, 0)
    assert row.expected_i == pytest.approx(8.9) and row.p == pytest.approx(hand)


def test_prediction_interval_by_hand():
    # Runs at 1000, 2000, 4000: log epochs ln 2000 + (-ln 2, 0, ln 2), mean ln 2000, sd ln 2.
    # With 2 degrees of freedom Student's t has P(T <= q) = 1/2 + q / (2 sqrt(q^2 + 2)), so
    # the 0.975 quantile solves q / sqrt(q^2 + 2) = 0.95: q^2 = 2 * 0.9025 / 0.0975.
    q = math.sqrt(2 * 0.9025 / 0.0975)
    assert q == pytest.approx(4.302653, abs=1e-6)
    half = q * math.log(2) * math.sqrt(1 + 1 / 3)
    test = new_run_test([1000, 2000, 4000], [True] * 3, 16000)
    assert test.low == pytest.approx(2000 * math.exp(-half))
    assert test.high == pytest.approx(2000 * math.exp(half))
    # 16000 = 2000 * 2^3: T = 3 ln 2 / (ln 2 sqrt(4/3)) = 3 sqrt(3) / 2, T^2 = 27/4, and the
    # two-sided p with 2 df is 1 - T / sqrt(T^2 + 2) = 1 - sqrt(27/35) = 0.12168
    assert test.p == pytest.approx(1 - math.sqrt(27 / 35)) and test.side == "inside"
    above = new_run_test([1000, 2000, 4000], [True] * 3, 2000 * math.exp(half) * 1.01)
    assert above.side == "above" and above.p < 0.05
    # a censored run only bounds its time: not computable, and said why
    censored = new_run_test([1000, 2000, 4000], [True, True, False], 16000)
    assert censored.low is None and censored.p is None and "censored" in censored.reason
    assert new_run_test([100, 100, 100], [True] * 3, 600).reason == "no spread"
    assert new_run_test([100], [True], 600).reason == "1 run(s)"


def _paper_trials() -> pd.DataFrame:
    rows = []
    for a, times in [(1, [1000, 2000, 4000]), (9, [1000, 2000, 4000]), (3, [1000, 2000])]:
        for i, t in enumerate(times):
            rows.append(dict(task="expmod", a=a, b=a, p=113, split="pairs", dtype="float32",
                             frac_train=0.3, seed=i, status="reached", outcome="grokked",
                             threshold_epoch=t, epochs_run=t + 100))
    rows.append(dict(rows[-1], seed=9, status="not_reached", outcome="not_generalized",
                     threshold_epoch=None, epochs_run=5000))
    return pd.DataFrame(rows)


def test_the_table_tests_the_paper_figure_with_holm_over_rows():
    # The paper: (1, 1) 18100, (9, 9) 1600, (3, 3) 10000 (analysis/data/seed_table1.csv).
    # With runs at 1000, 2000, 4000, T = log2(x / 2000) sqrt(3) / 2 (see above) and
    # p = 1 - T / sqrt(T^2 + 2); (3, 3) has a censored run: not testable.
    def p_of(x):
        t = abs(math.log2(x / 2000)) * math.sqrt(3) / 2
        return 1 - t / math.sqrt(t * t + 2)

    p1, p9 = p_of(18100), p_of(1600)
    table = build_table(_paper_trials()).set_index("a")
    assert table.loc[1, "paper_p"] == pytest.approx(p1)
    assert table.loc[9, "paper_p"] == pytest.approx(p9)
    # Holm over the two rows tested: the smaller p times 2, the larger kept above it
    assert p1 < p9
    assert table.loc[1, "paper_p_holm"] == pytest.approx(2 * p1)
    assert table.loc[9, "paper_p_holm"] == pytest.approx(min(1, max(2 * p1, p9)))
    assert table.loc[9, "paper_vs_runs"] == "inside"
    assert table.loc[1, "paper_vs_runs"] == ("above" if p1 < 0.05 else "inside")
    assert table.loc[3, "paper_vs_runs"] == "not testable: 1 censored run(s)"
    assert math.isnan(table.loc[3, "paper_p"])


def _t_power(n: int, ratio: float, sd: float, alpha: float) -> float:
    """Exact power of the two-sided two-sample t test (noncentral t), n runs a group."""
    df, nc = 2 * n - 2, math.log(ratio) / (sd * math.sqrt(2 / n))
    c = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(c, df, nc) + stats.nct.cdf(-c, df, nc)


@pytest.mark.parametrize("sd, alpha, n_star", [(0.32, 0.05, 5), (0.30, 0.05 / 14, 8)])
def test_power_simulation_matches_the_closed_form(sd, alpha, n_star):
    # Log-normal runs, median ratio 2, t test on log epochs: the exact power (noncentral t)
    # is below 0.77 at n_star - 1 and above 0.83 at n_star, so a Monte Carlo of 4000 pairs
    # (standard error <= 0.007) finds n_star.
    assert _t_power(n_star - 1, 2, sd, alpha) < 0.77 < 0.83 < _t_power(n_star, 2, sd, alpha)
    curve = power.power_curve(sd, 2.0, [alpha], 0.8, 20, sims=4000, seed=1, test="t")
    assert power.needed(curve, 0, 0.8) == n_star
    for n, (simulated,) in curve.items():
        assert simulated == pytest.approx(_t_power(n, 2, sd, alpha), abs=0.03), n


def test_logrank_power_three_against_three_in_closed_form():
    # With 3 runs a row, only "all of one row before all of the other" gives a log-rank p
    # below 0.05 (p = 0.0246, every other order of 6 untied runs has p > 0.1), so the power is
    # P(max A < min B) + P(max B < min A), A ~ N(0, 1), B ~ N(d, 1), d = ln 2 / sd:
    # the integral of 3 phi(x) Phi(x)^2 (1 - Phi(x -+ d))^3 dx. At alpha 0.05/14 it is 0.
    sd = 0.4
    d = math.log(2) / sd

    def separated(shift):
        f = lambda x: 3 * stats.norm.pdf(x) * stats.norm.cdf(x) ** 2 * \
            stats.norm.sf(x - shift) ** 3  # noqa: E731
        return integrate.quad(f, -12, 12)[0]

    exact = separated(d) + separated(-d)
    curve = power.power_curve(sd, 2.0, [0.05, 0.05 / 14], 0.8, 3, sims=20000, seed=2,
                              also=[3])
    assert curve[3][0] == pytest.approx(exact, abs=0.015)
    assert curve[3][1] == 0.0


def test_power_on_table1(capsys):
    assert power.main(["--trials", str(TABLE1), "--sims", "500", "--max-n", "20"]) == 0
    out = capsys.readouterr().out
    # the pooled sd over the 8 rows whose runs grokked (lookup rows left out), by hand from
    # the log epochs: sqrt(mean of the rows' variances) with 2 df each
    trials = read_trials(TABLE1)  # today's names, whichever the committed CSV has
    kept = trials[(trials.status == "reached") & (trials.outcome == "grokked")]
    variances = kept.groupby(["a", "b", "p", "split"]).threshold_epoch.apply(
        lambda t: np.var(np.log(t), ddof=1))
    assert len(variances) == 8
    assert f"pooled within-row sd: {math.sqrt(variances.mean()):.3f} (8 rows, 16 degrees" in out
    assert "log-normal" in out and "alpha 0.05/14 = 0.00357 (Holm over 14 tests): n = " in out
    assert "power of the current table with 3 runs a row" in out and "0.00 at 0.00357" in out


def test_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.read_csv(TABLE1).drop(columns=["epochs_run"]).to_csv(bad, index=False)
    cases = [(power.main, ["--trials", str(bad)], "no column epochs_run"),
             (hazard.main, ["--trials", str(TABLE1), "--formula", "leakage + wat"],
              "unknown covariate wat"),
             (hazard.main, ["--trials", str(TABLE1), "--only", "colour=red"], "--only colour=red"),
             (hazard.main, ["--trials", str(TABLE1), "--only", "a=1"], "too few runs to fit"),
             (grok_table.main, ["--trials", str(TABLE1), "--compare", "colour"],
              "compare one of those"),
             (power.main, ["--trials", str(TABLE1), "--only-rows"], "unrecognized")]
    for command, argv, message in cases:
        try:
            code = command(argv)
        except SystemExit as stop:  # argparse's own errors
            code = stop.code
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, argv
        assert message in err, (argv, err)


# ---- the commands on a real MLflow store of real tiny trainings --------------------------------
TINY = dict(p=23, lr=3e-3, weight_decay=3.0, d_model=64, d_head=16, d_mlp=256, eval_every=10)


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """(1, 1) at p = 23 trained on 50% and on 60% of the pairs, seeds 0 and 3 (they grok at
    epochs 250-1200 here), and (2, 2) stopped at 150 epochs (censored), logged as the sweeps
    log trials."""
    from mlflow.tracking import MlflowClient
    from test_analysis import log_trial

    root = tmp_path_factory.mktemp("hazard")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("small", artifact_location=(root / "art").as_uri())
    configs = [RunConfig(**TINY, frac_train=f, epochs=1500, stop_after_grok=3, seed=s)
               for f in (0.5, 0.6) for s in (0, 3)]
    configs.append(RunConfig(**TINY, frac_train=0.5, a=2, b=2, epochs=150, seed=0))
    summaries = [log_trial(client, exp_id, cfg, root)[2] for cfg in configs]
    return {"uri": uri, "configs": configs, "summaries": summaries}


def test_hazard_and_power_on_a_sweep_in_mlflow(small_sweep, tmp_path, capsys):
    from lifelines import CoxPHFitter

    src = ["--experiment", "small", "--tracking-uri", small_sweep["uri"]]
    summaries = small_sweep["summaries"]
    assert [s["outcome"] for s in summaries[:4]] == ["grokked"] * 4  # the fixture as meant
    assert summaries[4]["status"] == "not_reached"

    forest = tmp_path / "forest.png"
    assert hazard.main([*src, "--formula", "frac_train", "--plot", str(forest)]) == 0
    out = capsys.readouterr().out
    # the same model fitted on a frame built here from the runs' own summaries
    frame = pd.DataFrame({
        "duration": [s["threshold_epoch"] if s["outcome"] == "grokked" else s["epochs_run"]
                     for s in summaries],
        "event": [s["outcome"] == "grokked" for s in summaries],
        "frac_train": [c.frac_train for c in small_sweep["configs"]]})
    direct = CoxPHFitter().fit(frame, "duration", "event", formula="frac_train")
    hr = float(direct.summary.loc["frac_train", "exp(coef)"])
    line = next(l for l in out.splitlines() if l.startswith("frac_train "))
    assert float(line.split()[1]) == pytest.approx(hr, rel=1e-3)
    assert f"concordance (Harrell's C): {direct.concordance_index_:.3f}" in out
    assert "runs: 5; grok events (outcome grokked): 4; not grokked: 1" in out
    assert forest.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert power.main([*src, "--sims", "300", "--max-n", "12"]) == 0
    out = capsys.readouterr().out
    logs = [np.log([s["threshold_epoch"] for s in summaries[i:i + 2]]) for i in (0, 2)]
    sd = math.sqrt(np.mean([np.var(y, ddof=1) for y in logs]))  # 1 df each
    assert f"pooled within-row sd: {sd:.3f} (2 rows, 2 degrees of freedom" in out
    assert "(Holm over 2 tests)" in out  # three rows: two tests against the reference


def test_km_by_covariate_class_groups_as_documented(tmp_path):
    """--plot-km-by: few-valued covariates keep their values, a continuous one splits at zero;
    one curve per class, the PNG written; an unknown covariate is one line, exit 2."""
    import pandas as pd

    from analysis import hazard
    from analysis.figures_km import covariate_classes

    frame = pd.DataFrame({"duration": [100.0, 200, 300, 400, 500, 600, 700, 800],
                          "event": [True, False, True, True, False, True, False, True],
                          "bijective_a": [1, 1, 0, 0, 1, 1, 0, 0],
                          "leakage": [0.0, 0.25, 0.5, 0.0, 0.75, 0.125, 0.0, 0.375]})
    classes = covariate_classes(frame, ["bijective_a", "leakage"])
    assert list(classes) == ["bijective_a=1, leakage=0", "bijective_a=1, leakage>0",
                             "bijective_a=0, leakage>0", "bijective_a=0, leakage=0",
                             "bijective_a=1, leakage>0", "bijective_a=1, leakage>0",
                             "bijective_a=0, leakage=0", "bijective_a=0, leakage>0"]
    # a fractional setting of few values (the data fraction) keeps them
    frame["frac_train"] = [0.4, 0.5, 0.6, 0.4, 0.5, 0.6, 0.4, 0.5]
    assert list(covariate_classes(frame, ["frac_train"]))[:3] == [
        "frac_train=0.4", "frac_train=0.5", "frac_train=0.6"]
    path = hazard.plot_km_by(frame, "bijective_a,leakage", str(tmp_path / "km.png"))
    assert path.stat().st_size > 10_000
    trials = tmp_path / "trials.csv"
    pd.read_csv(TABLE1).to_csv(trials, index=False)
    assert hazard.main(["--trials", str(trials), "--plot-km-by", "nope", str(tmp_path / "x.png")]) == 2


def test_a_covariate_that_separates_the_runs_is_drawn_with_arrows(tmp_path):
    """A covariate that splits events from non-events has an unbounded ratio per unit (here
    label entropy, which spans 0.08 of a unit): the forest plot is still drawn, its interval
    cut at the axis' end; --per-sd rescales that continuous covariate, not the flag."""
    import pandas as pd

    from analysis import hazard

    frame = pd.DataFrame({"duration": [100.0, 150, 200, 250, 300, 350, 400, 450],
                          "event": [True, True, True, True, False, False, False, False],
                          "label_entropy": [0.999, 0.999, 0.998, 0.997, 0.95, 0.94, 0.93, 0.92],
                          "bijective_a": [1, 0, 1, 0, 1, 0, 1, 0]})
    with np.errstate(over="ignore"):
        model, data, notes, sds = hazard.fit(frame, "label_entropy + bijective_a")
    assert not sds and not math.isfinite(model.summary.loc["label_entropy", "exp(coef) upper 95%"])
    path = hazard.plot_forest(model, tmp_path / "forest.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    model, data, notes, sds = hazard.fit(frame, "label_entropy + bijective_a", standardize=True)
    assert set(sds) == {"label_entropy"}
    assert sds["label_entropy"] == pytest.approx(frame.label_entropy.std())
    assert data.label_entropy.mean() == pytest.approx(0) and data.label_entropy.std() == pytest.approx(1)
    assert list(data.bijective_a) == list(frame.bijective_a)
    assert frame.label_entropy.iloc[0] == 0.999  # the caller's frame is left as it was


def test_relative_order_is_the_order_of_the_permutation_between_the_operands():
    """relative_order(a, b, p): the permutation z -> z^(b/a) of Z_p, composed with itself,
    comes back to the identity after exactly that many steps; 1 for a = b; NaN where an
    exponent is not a bijection. Checked against the permutation itself, not a formula."""
    def order_of_permutation(a: int, b: int, p: int) -> int:
        # y^b = (x^a) after z -> z^r: find r with z^(a r) = z^b for all z, then iterate it
        r = next(r for r in range(1, p) if all(pow(z, a * r, p) == pow(z, b, p) for z in range(p)))
        image, steps = list(range(p)), 0
        while True:
            image, steps = [pow(z, r, p) for z in image], steps + 1
            if image == list(range(p)):
                return steps

    for p in (31, 37, 41, 43):
        bijective = [e for e in range(1, 10) if math.gcd(e, p - 1) == 1]
        for a in bijective:
            for b in bijective:
                assert renamings.relative_order(a, b, p) == order_of_permutation(a, b, p), (a, b, p)
        assert all(renamings.relative_order(a, a, p) == 1 for a in bijective)
    assert math.isnan(renamings.relative_order(2, 1, 31)) and math.isnan(renamings.relative_order(1, 3, 31))


def test_relative_cycles_counts_the_cycles_from_the_orders_on_the_exponents():
    """relative_cycles(a, b, p): z -> z^c fixes 0 and, on z = g^i, multiplies i by c modulo
    m = p - 1; on the i of order d in Z_m (phi(d) of them) its cycles have length ord_d(c), so
    the count is 1 + sum over d | m of phi(d) / ord_d(c). Checked with sympy's number theory,
    not by walking the permutation; p for a = b; NaN where an exponent is not a bijection."""
    from sympy import divisors, totient
    from sympy.ntheory import n_order

    for p in (31, 37, 41, 43):
        m = p - 1
        units = [e for e in range(1, 2 * p) if math.gcd(e, m) == 1]
        for b in units:
            c = b % m
            expected = 1 + sum(int(totient(d)) // (n_order(c, d) if d > 1 else 1)
                               for d in divisors(m))
            assert renamings.relative_cycles(1, b, p) == expected, (b, p)
        assert all(renamings.relative_cycles(a, a, p) == p for a in units[:5])
    assert math.isnan(renamings.relative_cycles(2, 1, 31)) and math.isnan(renamings.relative_cycles(1, 3, 31))
    # order 2 at 41 spans 22 to 31 cycles: the covariate is not the order again
    order_two = {renamings.relative_cycles(1, c, 41) for c in range(1, 40)
                 if math.gcd(c, 40) == 1 and renamings.relative_order(1, c, 41) == 2}
    assert min(order_two) == 22 and max(order_two) == 31


def test_relative_order_in_a_model_needs_the_bijective_runs_only(tmp_path, capsys):
    """Table 1 holds rows whose exponents are not bijections at 113 ((3, 4), (7, 7), ...): the
    covariate is missing there, and the command says to keep the bijective runs."""
    argv = ["--trials", str(TABLE1), "--formula", "relative_order"]
    assert hazard.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--only bijective_a=1 --only bijective_b=1" in err
    frame = hazard.hazard_frame(read_trials(TABLE1))
    both = frame.bijective_a.astype(bool) & frame.bijective_b.astype(bool)
    assert both.any() and (frame.relative_order[both] == 1).all()  # Table 1's are all a = b
    assert frame.relative_order[~both].isna().all()


def test_a_bijective_row_is_the_row_one_c_with_its_tokens_renamed():
    """relative_exponent(a, b, p) = c: the dataset of (a, b) is that of (1, c) with every
    operand token z renamed z^a (labels compared example by example); and relative_order is
    the order of c. Also for the classes split: the renaming carries the training set of one
    onto that of the other."""
    from sympy.ntheory import n_order

    from grokcore.tasks import build_dataset, config_for

    for p in (13, 31):
        for a in (e for e in range(1, 10) if math.gcd(e, p - 1) == 1):
            for b in (e for e in range(1, 10) if math.gcd(e, p - 1) == 1):
                c = int(renamings.relative_exponent(a, b, p))
                assert renamings.relative_order(a, b, p) == n_order(c, p - 1)
                rename = torch.tensor([pow(z, a, p) for z in range(p)] + [p])  # '=' stays
                for split in ("pairs", "classes"):
                    ab = build_dataset(config_for("expmod", a=a, b=b, p=p, split=split))
                    one_c = build_dataset(config_for("expmod", a=1, b=c, p=p, split=split))
                    renamed = rename[ab.inputs]  # (a, b)'s examples in (1, c)'s tokens
                    row = renamed[:, 0] * p + renamed[:, 1]  # their index among (1, c)'s
                    assert torch.equal(one_c.labels[row], ab.labels), (a, b, p)
                    if split == "classes":
                        assert torch.equal(row[ab.train_idx].sort().values, one_c.train_idx)
    assert math.isnan(renamings.relative_exponent(2, 1, 31))


def test_rows_of_one_orbit_are_one_dataset_with_its_tokens_renamed():
    """orbit(a, b, p): every two rows (a, b), (a', b') of 1..9 x 1..9 with the same orbit
    have, for a unit u of Z_(p-1) with (a', b') = (a u, b u), the same labels once the operand
    tokens of (a', b') are renamed z -> z^u (example by example). At 113 the seed paper's (1, 1), (3, 3), (5, 5), (9, 9) are one orbit."""
    from grokcore.tasks import build_dataset, config_for

    for p in (13, 31, 113):
        m = p - 1
        units = [u for u in range(1, m) if math.gcd(u, m) == 1]
        by_orbit = {}
        for a in range(1, 10):
            for b in range(1, 10):
                by_orbit.setdefault(renamings.orbit(a, b, p), []).append((a, b))
        shared = [rows for rows in by_orbit.values() if len(rows) > 1]
        assert shared
        for (a, b), *others in shared:
            first = build_dataset(config_for("expmod", a=a, b=b, p=p))
            for a2, b2 in others:
                u = next(u for u in units if (a * u - a2) % m == 0 and (b * u - b2) % m == 0)
                other = build_dataset(config_for("expmod", a=a2, b=b2, p=p))
                # (a, b) at (x^u, y^u) is (a u, b u) at (x, y)
                rename = torch.tensor([pow(z, u, p) for z in range(p)] + [p])
                renamed = rename[other.inputs]
                assert torch.equal(first.labels[renamed[:, 0] * p + renamed[:, 1]], other.labels)
                assert other.stats["label_entropy"] == first.stats["label_entropy"]
    assert {renamings.orbit(e, e, 113) for e in (1, 3, 5, 9)} == {(1, 1)}
    assert renamings.orbit(7, 7, 113) == (7, 7)  # 7 divides 112: not a renaming of (1, 1)
    for a, b in ((1, 7), (7, 1), (7, 7)):
        assert renamings.orbit(a, b, 31) == (1, int(renamings.relative_exponent(a, b, 31)))


def test_where_keeps_the_runs_of_a_covariate_class(tmp_path, capsys):
    """--where same_exponent=0 fits what a CSV holding only the a != b runs fits."""
    phase = TABLE1.parent.parent / "phase" / "trials.csv"
    only = ["--only", "p=41", "--only", "split=pairs", "--only", "bijective_a=1",
            "--only", "bijective_b=1", "--formula", "relative_order"]
    assert hazard.main(["--trials", str(phase), *only, "--where", "same_exponent=0"]) == 0
    where = capsys.readouterr().out
    trials = pd.read_csv(phase)
    apart = tmp_path / "apart.csv"
    trials[trials.a != trials.b].to_csv(apart, index=False)
    assert hazard.main(["--trials", str(apart), *only]) == 0
    assert capsys.readouterr().out == where
    assert hazard.main(["--trials", str(phase), *only]) == 0
    assert capsys.readouterr().out != where  # the a = b runs change the fit
    runs = int(where.split("runs: ")[1].split(";")[0])
    assert runs == ((trials.p == 41) & (trials.split == "pairs") & (trials.a != trials.b)
                    & trials.bijective_a.astype(bool) & trials.bijective_b.astype(bool)).sum()


def test_a_class_covariate_with_a_median_between_its_values_fits():
    """C(relative_cycles) on a row covariate held as a nullable integer, two values in equal
    numbers (its median 26.5 is not an integer): the model fits, the class is named T.31 (not
    T.31.0), and its hazard ratio is that of the same data with plain integers."""
    rows = [(1, 21, 41)] * 6 + [(1, 39, 41)] * 6
    frame = pd.DataFrame({"duration": [300.0, 500, 700, 900, 1100, 5000,
                                       400, 800, 5000, 5000, 5000, 5000],
                          "event": [True] * 5 + [False] + [True, True] + [False] * 4,
                          "relative_cycles": renamings.of_row("relative_cycles", rows)})
    assert str(frame.relative_cycles.dtype) == "Int64"
    model, *_ = hazard.fit(frame, "C(relative_cycles)")
    assert list(model.params_.index) == ["C(relative_cycles)[T.31]"]
    plain = frame.assign(relative_cycles=[31] * 6 + [22] * 6)
    same, *_ = hazard.fit(plain, "C(relative_cycles)")
    assert model.params_.iloc[0] == pytest.approx(same.params_.iloc[0])
    assert model.params_.iloc[0] > 0  # the 31-cycle row groks sooner here
