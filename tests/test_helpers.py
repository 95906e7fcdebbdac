"""The helpers the packages share, each defined once: text read back as numbers
(``grokcore.values``, and ``analysis.trials.param_value`` on top of it), a RunConfig field as a
command-line option (``grokcore.config.add_field_option``, for ``python -m grokcore train`` and
the sweep scripts alike), and fixed-width text tables (``analysis.text_table``)."""

import argparse
import dataclasses
import math

import pytest

from analysis.text_table import format_table
from analysis.trials import param_value
from grokcore.cli import OneLineErrorParser
from grokcore.config import RunConfig, add_field_option, field_flags
from grokcore.values import integer, number

FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def _words(text: str) -> str:
    """``text`` with every run of white space one space (argparse wraps help to the terminal)."""
    return " ".join(text.split())


@pytest.mark.parametrize("text", [None, "", "  ", "none", "None", " NONE ", "nan", "NaN", "null",
                                  math.nan, "pairs", "3,4", object()])
def test_no_number_reads_as_none(text):
    assert number(text) is None
    assert integer(text) is None


@pytest.mark.parametrize("value, expected", [("113", 113.0), (" 0.3 ", 0.3), ("1e3", 1000.0),
                                              ("-2.5", -2.5), ("true", 1.0), ("False", 0.0),
                                              (True, 1.0), (7, 7.0), (0.25, 0.25),
                                              ("inf", math.inf)])
def test_a_number_reads_as_a_float(value, expected):
    assert number(value) == expected and isinstance(number(value), float)


@pytest.mark.parametrize("value, expected", [("600", 600), ("600.0", 600), (600.0, 600),
                                              ("12.7", 12), ("-3.5", -3), ("inf", None),
                                              ("-inf", None), ("None", None)])
def test_an_epoch_reads_as_an_int_or_none(value, expected):
    got = integer(value)
    assert got == expected and (got is None or type(got) is int)


@pytest.mark.parametrize("value, expected", [("113", 113), ("0.3", 0.3), ("1e3", 1000),
                                              ("True", True), ("false", False), (None, "none"),
                                              (math.nan, "none"), ("none", "none"),
                                              ("pairs", "pairs"), ("float32", "float32")])
def test_a_param_reads_back_as_the_value_it_stands_for(value, expected):
    got = param_value(value)
    assert got == expected and type(got) is type(expected)


def test_a_field_is_the_same_option_for_one_run_and_for_a_sweep():
    frac = FIELDS["frac_train"]
    assert field_flags(frac) == ["--frac", "--frac-train"]
    assert field_flags(frac, "fracs") == ["--fracs", "--frac", "--frac-train"]

    one = OneLineErrorParser(prog="one")  # python -m grokcore train: one value, default unseen
    add_field_option(one, frac, shown="0.3")
    assert vars(one.parse_args([])) == {}
    assert one.parse_args(["--frac", "0.5"]).frac_train == 0.5
    assert one.parse_args(["--frac-train", "0.25"]).frac_train == 0.25
    with pytest.raises(SystemExit) as exit_:
        one.parse_args(["--frac", "half"])
    assert exit_.value.code == 2

    many = argparse.ArgumentParser()  # a sweep script: one or more values, a default list
    add_field_option(many, frac, shown="0.5", nargs="+", default=[0.5], alias="fracs")
    assert many.parse_args([]).frac_train == [0.5]
    assert many.parse_args(["--fracs", "0.2", "0.4"]).frac_train == [0.2, 0.4]

    assert f"--frac FLOAT, --frac-train FLOAT {frac.metadata['help']} (default: 0.3)" \
        in _words(one.format_help())
    assert f"--fracs FLOAT [FLOAT ...], --frac FLOAT [FLOAT ...], --frac-train FLOAT [FLOAT ...] " \
           f"{frac.metadata['help']} (default: 0.5)" in _words(many.format_help())


def test_a_boolean_field_is_a_switch_with_its_no_form():
    pos = FIELDS["pos_embed"]
    sweep = argparse.ArgumentParser()
    add_field_option(sweep, pos, shown=None, default=True)
    assert sweep.parse_args([]).pos_embed is True
    assert sweep.parse_args(["--no-pos-embed"]).pos_embed is False
    assert sweep.parse_args(["--pos-embed"]).pos_embed is True
    assert f"--pos-embed, --no-pos-embed {pos.metadata['help']}" in _words(sweep.format_help())

    one = argparse.ArgumentParser()
    add_field_option(one, pos, shown="True")
    assert vars(one.parse_args([])) == {}
    assert f"{pos.metadata['help']} (default: True)" in _words(one.format_help())
    assert _words(one.format_help()).count("(default:") == 1


def test_columns_are_as_wide_as_their_widest_cell_and_aligned_as_asked():
    rows = [[1, "ab", 2.5], [10, "c", "-"]]
    assert format_table(["#", "name", "x"], rows) == \
        " #  name    x\n 1    ab  2.5\n10     c    -"
    assert format_table(["#", "name", "x"], rows, align="l") == \
        "#   name  x  \n1   ab    2.5\n10  c     -  "
    assert format_table(["#", "name", "x"], rows, align="lr", strip=True, indent="> ") == \
        "> #   name    x\n> 1     ab  2.5\n> 10     c    -"
    assert format_table(["a", "b"], [[1, "yes"]], sep=" ", widths=(2, 5)) == \
        " a     b\n 1   yes"
    # a cell wider than its least width widens the column
    assert format_table(["a"], [[123]], widths=(2,)) == "  a\n123"


def test_a_bad_alignment_is_refused():
    with pytest.raises(ValueError, match="align"):
        format_table(["a"], [[1]], align="c")
