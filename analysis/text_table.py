"""Fixed-width text tables: the one formatter of every table the project prints as text (a sweep's
grid and outcomes, a search's summary, the grok table's text format, the residue tables).

It imports nothing (no pandas), so that a sweep script's ``--dry-run`` prints its grid at once.
"""

from __future__ import annotations

from typing import Any, Sequence


def format_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], *, align: str = "r",
                 sep: str = "  ", indent: str = "", widths: Sequence[int] = (),
                 strip: bool = False) -> str:
    """The header and the rows as lines of text, cells as ``str`` gives them: each column as wide
    as its widest cell (and at least ``widths[j]``), columns ``sep`` apart, every line after
    ``indent``.

    ``align`` has a letter per column, ``l`` (left) or ``r`` (right); its last letter holds for
    the columns after it: ``"r"`` aligns every column right (numbers), ``"l"`` every column
    left, ``"lr"`` the first column left and the others right. ``strip``: no trailing spaces.
    """
    if not align or set(align) - {"l", "r"}:
        raise ValueError(f"align={align!r}: give a letter l or r per column")
    table = [[str(v) for v in header]] + [[str(v) for v in row] for row in rows]
    n = len(table[0])
    least = [*widths, *[0] * (n - len(widths))]
    width = [max(least[j], *(len(r[j]) for r in table)) for j in range(n)]
    sides = [align[min(j, len(align) - 1)] for j in range(n)]
    lines = []
    for r in table:
        line = indent + sep.join(v.ljust(w) if side == "l" else v.rjust(w)
                                 for v, w, side in zip(r, width, sides))
        lines.append(line.rstrip() if strip else line)
    return "\n".join(lines)
