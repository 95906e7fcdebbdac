"""Outcome counts by covariate class (``analysis.outcomes``), checked against counts made here
from the committed trials CSVs by other means (bijectivity from gcd, Fisher's p from the
hypergeometric distribution written out), and its matching of runs across compared values."""

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis import outcomes
from analysis.hazard import hazard_frame
from analysis.trials import read_trials

RESULTS = Path(__file__).resolve().parent.parent / "results"
PHASE = RESULTS / "phase" / "trials.csv"
TABLE1 = RESULTS / "table1" / "trials.csv"


def _fisher_by_hand(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher's exact p: the probability, with the margins fixed, of every split of
    the k1 + k2 successes at most as likely as the one seen."""
    k, n = k1 + k2, n1 + n2

    def prob(x):
        return math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n, k)

    seen = prob(k1)
    return min(1.0, sum(prob(x) for x in range(max(0, k - n2), min(k, n1) + 1)
                        if prob(x) <= seen * (1 + 1e-7)))


def test_split_counts_are_those_of_the_same_runs_under_both_splits(capsys):
    trials = pd.read_csv(PHASE)
    assert outcomes.main(["--trials", str(PHASE), "--only", "dtype=float32",
                          "--only", "frac_train=0.5", "--by", "bijective_a,bijective_b",
                          "--compare", "split"]) == 0
    out = capsys.readouterr().out
    runs = trials[(trials.dtype == "float32") & (trials.frac_train == 0.5)
                  & trials.status.isin(["reached", "not_reached"])]
    key = ["a", "b", "p", "seed", "data_seed"]
    both = runs.groupby(key).split.transform("nunique") == 2
    runs = runs[both]
    assert len(runs) and (runs.split == "classes").sum() == (runs.split == "pairs").sum()
    bij_a = runs.apply(lambda r: int(math.gcd(int(r.a), int(r.p) - 1) == 1), axis=1)
    bij_b = runs.apply(lambda r: int(math.gcd(int(r.b), int(r.p) - 1) == 1), axis=1)
    lines = {tuple(line.split()[:3]): line.split() for line in out.splitlines()[3:]
             if line[:1] in "01"}
    for (ba, bb), group in runs.groupby([bij_a, bij_b]):
        for split, of_split in group.groupby("split"):
            cells = lines[(str(ba), str(bb), split)]
            counts = [int(c) for c in cells[3:8]]
            expected = [len(of_split)] + [int((of_split.outcome == o).sum())
                                          for o in outcomes.COUNTED]
            assert counts == expected, (ba, bb, split)
        k = {s: int((g.outcome == "grokked").sum()) for s, g in group.groupby("split")}
        n = {s: len(g) for s, g in group.groupby("split")}
        p = float(lines[(str(ba), str(bb), "classes")][8])
        # printed to 3 significant digits: rounding moves it by up to 0.5 in 100
        assert p == pytest.approx(_fisher_by_hand(k["classes"], n["classes"], k["pairs"],
                                                  n["pairs"]), rel=5e-3), (ba, bb)
    assert f"on the same runs of {runs.groupby(['a', 'b', 'p']).ngroups} rows" in out


def test_a_run_that_did_not_end_under_one_value_drops_its_twin():
    trials = read_trials(TABLE1)
    # Table 1 ran 5 of its rows under both splits, 3 runs each, all of them ended
    classes = trials[trials.split == "classes"]
    kept = outcomes.matched(trials, "split")
    assert len(classes) == 15 and len(kept) == 2 * len(classes)
    pairs = kept[kept.split == "pairs"]
    first = pairs.index[0]
    twin = trials[(trials.split == "classes") & (trials.a == pairs.a[first])
                  & (trials.b == pairs.b[first]) & (trials.p == pairs.p[first])
                  & (trials.seed == pairs.seed[first])
                  & (trials.data_seed == pairs.data_seed[first])]
    assert len(twin) == 1
    trials.loc[twin.index, "status"] = "unfinished"
    kept = outcomes.matched(trials, "split")
    assert len(kept) == 2 * len(classes) - 2
    same = (kept.a == pairs.a[first]) & (kept.b == pairs.b[first]) & (kept.p == pairs.p[first]) \
        & (kept.seed == pairs.seed[first]) & (kept.data_seed == pairs.data_seed[first])
    assert not same.any()


def test_classes_of_a_covariate_that_is_missing_somewhere():
    """relative_order is defined for bijective exponents only: elsewhere its class is '-',
    and the counts of all classes add up to the runs."""
    frame = hazard_frame(read_trials(TABLE1))
    table = outcomes.count(frame, ["bijective_a", "bijective_b", "relative_order"], None)
    assert table.runs.sum() == len(frame)
    assert set(table.relative_order) == {1, "-"}
    both = (table.bijective_a == 1) & (table.bijective_b == 1)
    assert (table.relative_order[both] == 1).all() and (table.relative_order[~both] == "-").all()
    assert (table[list(outcomes.COUNTED)].sum(axis=1) == table.runs).all()


@pytest.mark.parametrize("argv, message", [
    (["--by", "colour"], "--by colour: colour is not a covariate"),
    (["--compare", "colour"], "--compare colour: choose a setting that names rows"),
    (["--only", "split=pairs", "--compare", "split"], "one value of it (pairs)"),
    (["--between", "a,b"], "--between a,b: name one covariate"),
    (["--paired"], "--paired matches the runs of two values: give it with --compare"),
    (["--between", "p", "--paired"], "runs of one seed and data seed have p = "),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert outcomes.main(["--trials", str(TABLE1), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def _runs(rows_outcomes):
    """A frame of runs: class 'k', row (a, b), outcome, from {(k, a, b): [outcomes]}."""
    lines = [{"k": k, "a": a, "b": b, "outcome": o}
             for (k, a, b), outs in rows_outcomes.items() for o in outs]
    return pd.DataFrame(lines)


def test_alike_chi_square_is_scipys_and_its_p_the_exact_permutation_p():
    import numpy as np
    from scipy.stats import chi2_contingency

    rng = np.random.default_rng(1)
    row, out = rng.integers(0, 3, 40), rng.integers(0, 4, 40)
    table = np.zeros((3, 4))
    np.add.at(table, (row, out), 1)
    table = table[:, table.sum(axis=0) > 0]
    expected = chi2_contingency(table, correction=False).statistic
    assert outcomes._chi2(row[None, :], out[None, :])[0] == pytest.approx(expected)

    # two rows of 3 runs, one all grokked, one all not: of the C(6, 3) = 20 ways to deal the
    # outcomes, the 2 that separate the rows give the largest statistic, so p = 2/20 exactly
    frame = _runs({(0, 1, 1): ["grokked"] * 3, (0, 2, 2): ["not_generalized"] * 3})
    result = outcomes.alike(frame, ["k"], ["a", "b"], permutations=20_000)
    assert (result["classes"], result["rows"], result["runs"]) == (1, 2, 6)
    assert result["chi2"] == pytest.approx(6.0) and result["p"] == pytest.approx(0.1, abs=0.01)


def test_alike_rows_that_end_alike_and_classes_of_one_row():
    frame = _runs({(0, 1, 1): ["grokked", "lookup"], (0, 2, 2): ["lookup", "grokked"],
                   (1, 3, 3): ["grokked"] * 4})  # class 1 holds one row: not tested
    result = outcomes.alike(frame, ["k"], ["a", "b"], permutations=999)
    assert (result["classes"], result["rows"], result["runs"]) == (1, 2, 4)
    assert result["chi2"] == 0 and result["p"] == 1
    with pytest.raises(outcomes.AnalysisError, match="no class of --by k holds two or more"):
        outcomes.alike(frame[frame.k == 1], ["k"], ["a", "b"])


def test_only_with_several_values_keeps_the_trials_with_any_of_them(capsys):
    """--only seed=0,2 counts the runs of seeds 0 and 2 and no other: the same counts as the
    two seeds' runs counted apart and added."""
    def counts(only):
        assert outcomes.main(["--trials", str(PHASE), "--only", only, "--by", "p"]) == 0
        lines = capsys.readouterr().out.splitlines()
        return {line.split()[0]: [int(c) for c in line.split()[1:6]] for line in lines[3:]
                if line[:1].isdigit()}

    both, zero, two = counts("seed=0,2"), counts("seed=0"), counts("seed=2")
    trials = pd.read_csv(PHASE)
    ended = trials[trials.status.isin(["reached", "not_reached"])]
    assert set(both) == {str(p) for p in ended.p.unique()}
    for p, row in both.items():
        assert row == [x + y for x, y in zip(zero[p], two[p])]
        assert row[0] == int(ended[(ended.p == int(p)) & ended.seed.isin([0, 2])].shape[0])
    assert zero != both


def _order_mod(c: int, m: int) -> int:
    """The multiplicative order of c modulo m, by repeated multiplication."""
    power, k = c % m, 1
    while power != 1:
        power, k = power * c % m, k + 1
    return k


def test_between_compares_every_run_of_two_values_of_a_row_covariate(capsys):
    """--between relative_order at 41, classes of same_exponent: each order counts all its runs
    (no twin needed), the class of a != b tests order 2 against order 4 with Fisher's p, and the
    class a = b (order 1 alone) has no test."""
    assert outcomes.main(["--trials", str(PHASE), "--only", "p=41", "--only", "split=pairs",
                          "--only", "dtype=float32", "--only", "frac_train=0.5",
                          "--only", "bijective_a=1", "--only", "bijective_b=1",
                          "--by", "same_exponent", "--between", "relative_order"]) == 0
    out = capsys.readouterr().out
    lines = {tuple(line.split()[:2]): line.split() for line in out.splitlines()[3:]
             if line[:1] in "01"}
    trials = pd.read_csv(PHASE)
    runs = trials[(trials.p == 41) & (trials.split == "pairs") & (trials.dtype == "float32")
                  & (trials.frac_train == 0.5) & trials.status.isin(["reached", "not_reached"])
                  & trials.a.isin([1, 3, 7, 9]) & trials.b.isin([1, 3, 7, 9])]  # units mod 40
    order = runs.apply(lambda r: _order_mod(int(r.b) * pow(int(r.a), -1, 40), 40), axis=1)
    grokked = {}
    for o, group in runs.groupby(order):
        same = int(o == 1)
        assert same == int((group.a == group.b).all())
        cells = lines[(str(same), str(o))]
        grokked[o] = (int((group.outcome == "grokked").sum()), len(group))
        assert [int(c) for c in cells[2:4]] == [len(group), grokked[o][0]], o
    assert set(grokked) == {1, 2, 4}
    p = float(lines[("0", "2")][7])
    assert p == pytest.approx(_fisher_by_hand(*grokked[2], *grokked[4]), rel=5e-3)
    assert len(lines[("1", "1")]) == 7 and len(lines[("0", "4")]) == 7  # no p on those lines


def test_compare_and_between_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as stop:
        outcomes.main(["--trials", str(TABLE1), "--compare", "split", "--between", "p"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "not allowed with" in err, err


def _mcnemar_by_hand(first_only: int, second_only: int) -> float:
    """Two-sided exact McNemar p: twice the binomial tail of the rarer discordant count among
    the discordant pairs at 1/2, at most 1."""
    n, k = first_only + second_only, min(first_only, second_only)
    return min(1.0, 2 * sum(math.comb(n, x) for x in range(k + 1)) / 2 ** n)


def _paired_lines(out: str) -> list[list[str]]:
    block = out.split("Paired: ")[1].splitlines()
    return [line.split() for line in block[3:] if line[:1].isdigit()]


def test_paired_counts_the_pairs_of_one_seed_under_both_values(capsys):
    """--between relative_cycles --paired on the cycles follow-up at 41: replicate j of (1, 21)
    and of (1, 39) share seed and data seed; the four kinds of pair, counted here by a merge,
    and the McNemar p, from the binomial written out, are those printed."""
    cycles = RESULTS / "cycles_41" / "trials.csv"
    assert outcomes.main(["--trials", str(cycles), "--by", "relative_order",
                          "--between", "relative_cycles", "--paired"]) == 0
    (line,) = _paired_lines(capsys.readouterr().out)
    trials = pd.read_csv(cycles)
    runs = trials[trials.status.isin(["reached", "not_reached"])]
    runs = runs.assign(grokked=runs.outcome == "grokked")
    both = runs[runs.b == 39].merge(runs[runs.b == 21], on=["seed", "data_seed"],
                                    suffixes=("_22", "_31"))  # (1, 39): 22 cycles, (1, 21): 31
    g22, g31 = both.grokked_22, both.grokked_31
    counts = [len(both), (g22 & g31).sum(), (g22 & ~g31).sum(), (~g22 & g31).sum(),
              (~g22 & ~g31).sum(), len(runs) - 2 * len(both)]
    assert line[:3] == ["2", "22", "|"] and [int(c) for c in line[4:10]] == counts
    assert counts[3] > counts[2]  # the 31-cycle row grokked alone more often
    assert float(line[10]) == pytest.approx(_mcnemar_by_hand(counts[2], counts[3]), rel=5e-3)


def test_paired_split_matches_the_runs_of_one_row_seed_and_data_seed(capsys):
    """--compare split --paired: every matched run has its twin (no unpaired run), the pairs
    are half the class's runs in the counts above them, and each class's pairs add up."""
    argv = ["--trials", str(PHASE), "--only", "dtype=float32", "--only", "frac_train=0.5",
            "--by", "bijective_a,bijective_b", "--compare", "split", "--paired"]
    assert outcomes.main(argv) == 0
    out = capsys.readouterr().out
    runs = {}
    for line in out.split("Paired: ")[0].splitlines()[3:]:
        cells = line.split()
        if cells and cells[0] in "01" and len(cells) > 4:
            runs[tuple(cells[:2])] = runs.get(tuple(cells[:2]), 0) + int(cells[3])
    lines = _paired_lines(out)
    assert len(lines) == 4
    for cells in lines:
        pairs, kinds, unpaired = int(cells[5]), [int(c) for c in cells[6:10]], int(cells[10])
        assert unpaired == 0 and sum(kinds) == pairs and 2 * pairs == runs[tuple(cells[:2])]
        assert float(cells[11]) == pytest.approx(_mcnemar_by_hand(kinds[1], kinds[2]), rel=5e-3)


def test_several_trials_csvs_are_read_as_one(capsys):
    """--trials A B counts the runs of both files (here the phase diagram's rows at 41 and the
    cycles follow-up, which share no run); a file given twice is one line, exit 2, since each
    of its runs would count twice."""
    cycles = RESULTS / "cycles_41" / "trials.csv"
    at_41 = ["--only", "p=41", "--only", "split=pairs", "--only", "dtype=float32",
             "--only", "frac_train=0.5", "--by", "p"]
    totals = []
    for files in ([PHASE], [cycles], [PHASE, cycles]):
        assert outcomes.main(["--trials", *map(str, files), *at_41]) == 0
        (line,) = [l.split() for l in capsys.readouterr().out.splitlines() if l.startswith("41 ")]
        totals.append([int(c) for c in line[1:]])
    assert totals[2] == [x + y for x, y in zip(totals[0], totals[1])] and totals[1][0] == 128
    assert outcomes.main(["--trials", str(cycles), str(cycles)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "both hold the run" in err and "a=1" in err, err
