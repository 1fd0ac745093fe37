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
            unit: str = "", level: str | None = None, margin: float | None = None, worse_up: bool = True) -> str:
    """The cell's verdict: SUPPORTS / CONTRADICTS where the corrected test decides (favourable:
    the difference lies in the claim's direction), else NOT_DECIDED with what the interval
    excludes (no clause without an interval).

    A non-inferiority claim (`margin`: expect no_worse) is decided by its one-sided bound on the
    worse side (`hi` where an increase is worse, `worse_up`; else `lo`): SUPPORTS "no worse than
    the baseline by more than the margin" only where the corrected test says the bound excludes
    the margin, otherwise NOT_DECIDED with the bound the data do give; never CONTRADICTS."""
    if margin is not None:
        return _no_worse(decided, hi if worse_up else lo, margin, fmt, unit, level, worse_up)
    if decided:
        return SUPPORTS if favourable else CONTRADICTS
    if math.isnan(lo) and math.isnan(hi):
        return NOT_DECIDED
    return f"{NOT_DECIDED}: {excluded(lo, hi, fmt, unit, level)}"


def _no_worse(decided: bool, bound: float, margin: float, fmt: str, unit: str, level: str | None, worse_up: bool) -> str:
    m = f"{fmt.format(margin)}{unit}"
    if decided:
        return f"{SUPPORTS}: no worse than the baseline by more than {m}"
    change = "increase" if worse_up else "decrease"
    if math.isnan(bound):
        return f"{NOT_DECIDED}: no bound at this n, so not the margin {m}"
    if math.isinf(bound):
        return f"{NOT_DECIDED}: the data exclude no {change} of any size (one-sided), so not one larger than the margin {m}"
    shown = bound if worse_up else -bound
    if shown <= 0:
        return f"{NOT_DECIDED}: the data exclude any {change} ({level or '95% one-sided'}) but the corrected test does not"
    return (f"{NOT_DECIDED}: the data exclude {'an' if worse_up else 'a'} {change} larger than {fmt.format(shown)}{unit} "
            f"({level or '95% one-sided'}), not one larger than the margin {m}")


def is_decided(word: str) -> bool:
    return word in (SUPPORTS, CONTRADICTS) or is_support(word)


def is_support(word: str) -> bool:
    """SUPPORTS, or a non-inferiority claim's SUPPORTS with what it supports."""
    return word == SUPPORTS or word.startswith(f"{SUPPORTS}: ")
