"""Statements composed of an append's common table expressions and the caller's own."""

from __future__ import annotations

import re
from functools import partial

_PLACEHOLDER = re.compile(r"\$(\d+)")


def _shift(offset: int, match: re.Match[str]) -> str:
    return f"${int(match.group(1)) + offset}"


def compose_statement(
    base: str, offset: int, sqls: tuple[str, ...], counts: tuple[int, ...], result: str
) -> str:
    """``WITH`` the append's CTEs (``base``, using parameters up to ``$offset``), then each of
    the caller's statements as a CTE of its own with its parameters renumbered after the
    previous ones, then ``SELECT result FROM appended``."""
    parts = [base]
    for index, (sql, count) in enumerate(zip(sqls, counts, strict=True), start=1):
        used = {int(n) for n in _PLACEHOLDER.findall(sql)}
        if used != set(range(1, count + 1)):
            raise ValueError(
                f"statement {index} uses parameters {sorted(used)} but is given {count}"
            )
        shifted = _PLACEHOLDER.sub(partial(_shift, offset), sql)
        parts.append(f"also_{index} AS (\n{shifted}\n)")
        offset += count
    return "WITH " + ",\n".join(parts) + f"\nSELECT {result} FROM appended"
