"""Numbers read back from text: MLflow tags and params (always strings), the values of trial
lines, the entries of a history row. One reading for every reader, so that "none", "" and NaN
mean the same missing value everywhere. (A history CSV reads back exactly, ints as ints and
floats as floats, by ``grokcore.records.read_history_csv``.)

It lives in grokcore, the lowest layer that reads such values (``grokcore.signals`` reads
history rows), and imports nothing of the project, so every module may use it.
"""

from __future__ import annotations

import math
from typing import Any

# Text that stands for no value: what str(None) and a NaN metric become, and what other tools write.
MISSING_TEXT = ("", "none", "nan", "null")


def number(value: Any) -> float | None:
    """``value`` as a float, or None where it holds no number: None, NaN, the texts of
    ``MISSING_TEXT`` (any case, spaces around) and text that is not a number. The texts "true"
    and "false" (any case) are 1.0 and 0.0, as the booleans are."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in MISSING_TEXT:
            return None
        if text in ("true", "false"):
            return float(text == "true")
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def integer(value: Any) -> int | None:
    """``value`` as an int (a fraction cut toward zero, as ``int`` does), or None where
    :func:`number` finds no number or an infinite one: an epoch read back from a tag or
    metric."""
    result = number(value)
    return None if result is None or math.isinf(result) else int(result)
