"""The sweeps' environment knobs, read where they are used; a bad value is one line, and a sweep
checks them all before it starts (``check_environment``: exit 2, nothing launched)."""

from __future__ import annotations

import os

from grokcore.config import ConfigError

# name -> (default seconds, what it sets)
KNOBS = {
    "GROK_REPORT_EVERY_S": (1.0, "a trial reports the evaluations of up to this many seconds "
                                 "together (sweeps/trial.py); 0: each as it comes"),
    "GROK_MLFLOW_BATCH_S": (1.0, "the driver writes the metric rows queued over this many "
                                 "seconds in one request (sweeps/row_writer.py); 0: each row as "
                                 "it comes"),
}


def seconds(name: str) -> float:
    """The knob's value in seconds (its default when unset); ConfigError for a bad value."""
    default = KNOBS[name][0]
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # also nan
        raise ConfigError(f"{name}={text!r} is not a number of seconds >= 0; unset it (default "
                          f"{default:g}) or give one such as 0.5")
    return value


def check_environment() -> None:
    for name in KNOBS:
        seconds(name)
