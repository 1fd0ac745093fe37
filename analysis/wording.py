"""One wording of every verdict, from its numbers: "supports" or "contradicts" only where the
family-corrected test decides; otherwise "not decided", with what the 95% interval of the
difference excludes, so a test that does not reject is never read as "no effect"."""

from __future__ import annotations

import math

SUPPORTS, CONTRADICTS, NOT_DECIDED = "supports", "contradicts", "not decided"


def excluded(lo: float, hi: float, fmt: str = "{:.2f}", unit: str = "", level: str | None = None) -> str:
    """What an interval [lo, hi] of a difference (treatment - baseline) rules out, in words
    (its level, "95%" unless given)."""
    parts = []
    if math.isfinite(lo):
        parts.append("any decrease" if lo >= 0 else f"a decrease larger than {fmt.format(-lo)}{unit}")
    if math.isfinite(hi):
        parts.append("any increase" if hi <= 0 else f"an increase larger than {fmt.format(hi)}{unit}")
    if not parts:
        return "the data exclude no change of any size"
    return "the data exclude " + " and ".join(parts) + f" ({level or '95%'})"


def verdict(decided: bool, favourable: bool, lo: float = math.nan, hi: float = math.nan, fmt: str = "{:.2f}",
            unit: str = "", level: str | None = None) -> str:
    """The cell's verdict: SUPPORTS / CONTRADICTS where the corrected test decides (favourable:
    the difference lies in the claim's direction), else NOT_DECIDED with what the interval
    excludes (no clause without an interval)."""
    if decided:
        return SUPPORTS if favourable else CONTRADICTS
    if math.isnan(lo) and math.isnan(hi):
        return NOT_DECIDED
    return f"{NOT_DECIDED}: {excluded(lo, hi, fmt, unit, level)}"


def is_decided(word: str) -> bool:
    return word in (SUPPORTS, CONTRADICTS)
