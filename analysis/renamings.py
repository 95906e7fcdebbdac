"""The covariates of an expmod row (a, b, p) that follow from the row alone: which rows are one
task with its tokens renamed, and how the two operands' renamings differ.

Renaming every operand token z -> z^u (u coprime to p - 1: a permutation of Z_p that keeps 0)
turns x^a + y^b into x^(a u) + y^(b u) (Fermat: exponents of nonzero residues count modulo
p - 1). The model's token embeddings start independent and alike, and a random half of the
pairs (or of the classes) stays a random half when renamed, so renamed rows are one learning
problem. ``analysis.hazard`` models grok time on these covariates (OF_ROW), and
``analysis.outcomes`` counts outcomes by them.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

def orbit(a: int, b: int, p: int) -> tuple[int, int]:
    """The smallest (a u, b u) modulo p - 1 over the units u of Z_(p-1) (gcd(u, p - 1) = 1):
    the row that (a, b) is a renaming of. Renaming every operand token z -> z^u (a permutation
    of Z_p that keeps 0) turns x^a + y^b into x^(a u) + y^(b u) (Fermat: exponents of nonzero
    residues count modulo p - 1). The token embeddings start independent and alike, and a random
    half of the pairs (or of the classes) stays a random half when renamed, so all rows of one
    orbit are one learning problem: their runs differ by chance alone. Where a is bijective the
    orbit is (1, ``relative_exponent``); every bijective a = b row is (1, 1)."""
    m = p - 1
    units = (u for u in range(1, m + 1) if math.gcd(u, m) == 1)
    return min(((a * u - 1) % m + 1, (b * u - 1) % m + 1) for u in units)


def relative_exponent(a: int, b: int, p: int) -> float:
    """c = b * a^-1 modulo p - 1 where a and b are both coprime to p - 1 (x -> x^a and y -> y^b
    then permute Z_p), else NaN. Then y^b = (y^a)^c, so (x^a + y^b) mod p is (x' + y'^c) mod p
    in the renamed tokens x' = x^a, y' = y^a: the row (a, b) is the row (1, c) with one renaming
    of every token. The model's token embeddings start independent and alike, and a random half
    of the pairs stays a random half when renamed, so the two rows are one learning problem: their
    grok times have one distribution (their runs differ only by chance)."""
    m = p - 1
    if math.gcd(a, m) != 1 or math.gcd(b, m) != 1:
        return math.nan
    return float(b * pow(a, -1, m) % m) if m > 1 else 0.0


def relative_order(a: int, b: int, p: int) -> float:
    """The multiplicative order of c = ``relative_exponent(a, b, p)`` modulo p - 1 (NaN where c
    is): with g a generator, x^a = g^(a i), and the second operand is renamed by the first's
    renaming followed by z -> z^c, a permutation of that order (1 when a = b: one renaming of
    both operands)."""
    from sympy.ntheory import n_order

    c = relative_exponent(a, b, p)
    if math.isnan(c):
        return math.nan
    return float(n_order(int(c), p - 1)) if p > 2 else 1.0


def relative_cycles(a: int, b: int, p: int) -> float:
    """The number of cycles of the permutation z -> z^c of Z_p, c = ``relative_exponent(a, b,
    p)`` (NaN where c is): p when a = b, fewer the more z^c moves. Why count them: the row is
    (1, c) renamed, and its two operands share one embedding table. A feature f stored for a
    token serves the first operand as f(x), while the second needs f(y^c); one stored f serves
    both where f(y^c) = f(y) for every y, that is where f is constant on these cycles, so their
    number is the dimension of what the operands can share. At 41 it falls with the order of c
    (41, 23-25, 14 for orders 1, 2, 4) but also varies within one order (22-31 for order 2),
    which tells the two apart."""
    c = relative_exponent(a, b, p)
    if math.isnan(c):
        return math.nan
    seen, cycles = bytearray(p), 0
    for start in range(p):
        if not seen[start]:
            cycles += 1
            z = start
            while not seen[z]:
                seen[z] = 1
                z = pow(z, int(c), p)
    return float(cycles)


# The covariates that follow from the row (a, b, p) alone.
OF_ROW = {"orbit": lambda a, b, p: "{},{}".format(*orbit(a, b, p)),
          "relative_exponent": relative_exponent, "relative_order": relative_order,
          "relative_cycles": relative_cycles, "same_exponent": lambda a, b, p: int(a == b)}


def of_row(name: str, rows: Sequence[tuple[int, int, int]]) -> Sequence:
    """The covariate ``name`` of ``OF_ROW`` for each (a, b, p); an exponent or an order as a
    nullable integer (NA where undefined), so that a class of ``C(relative_order)`` is named 4,
    not 4.0."""
    values = [OF_ROW[name](*abp) for abp in rows]
    if name in ("relative_exponent", "relative_order", "relative_cycles"):
        return pd.array(values, dtype="Int64")
    return values
