from grokcore.config import RunConfig
from sweeps.console import format_outcomes
from sweeps.tracking import TrialOutcome


def test_the_closing_table_says_what_a_grokked_status_means():
    table = format_outcomes([
        TrialOutcome("k1", RunConfig(p=31, a=5, b=5), "grokked", "lookup", 40, 40, 120),
        TrialOutcome("k2", RunConfig(p=31, a=1, b=1), "grokked", "grokked", 600, 60, 680),
        TrialOutcome("k3", RunConfig(p=31, a=3, b=4), "failed")])
    header, lookup, grokked, failed = table.splitlines()
    assert header.split()[:5] == ["a", "b", "p", "status", "outcome"]
    assert lookup.split()[3:5] == ["grokked", "lookup"]
    assert grokked.split()[3:5] == ["grokked", "grokked"]
    assert failed.split()[3:5] == ["failed", "-"]
