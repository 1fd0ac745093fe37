"""Non-inferiority (a claim's `expect: no_worse` with its `margin`): the one-sided test of a
worsening by at least the margin on a rate endpoint (Newcombe's one-sided bound of the
difference) or a rank endpoint (the exact one-sided bound of the Hodges-Lehmann shift), its
p-value the level at which that bound reaches the margin, so Holm over a family (analysis.claims)
decides exactly where the bound at the corrected level excludes it; worded by analysis.wording."""

from __future__ import annotations

import math

import pandas as pd

from analysis import ranks, stats, wording
from vi_contract.endpoints import Endpoint


def measure(m: dict, ep: Endpoint, margin: float) -> dict:
    """A non-inferiority test against `margin` (in the endpoint's units): the one-sided bound of
    the difference on the worse side (Newcombe's for a rate, the Hodges-Lehmann shift's exact one
    for a rank endpoint) and the p-value at which that bound reaches the margin (so Holm over a
    family decides exactly where the bound at the corrected level excludes it)."""
    lower = ep.better == "lower"
    if "_counts" in m:
        k = m["_counts"]
        p = stats.no_worse_rate_p(*k, margin, lower)
        bound = lambda level: stats.newcombe_bound(*k, level, upper=lower)  # noqa: E731
        test, fmt = "Newcombe bound vs margin", "{:.2f}"
    else:
        x, y = m["_xy"]
        p = ranks.no_worse_p(x, y, margin, lower)
        bound = lambda level: ranks.hodges_lehmann_bound(x, y, level, upper=lower)  # noqa: E731
        test, fmt = "Hodges-Lehmann bound vs margin (exact)", "{:.3g}"
    b95 = bound(0.95)
    side = "upper" if lower else "lower"
    signed = ("-" if b95 < 0 else "+") + fmt.format(abs(b95))
    effect = m["effect"] + f"; {side} bound {signed} (95% one-sided), margin {'+' if lower else '-'}{fmt.format(margin)}"
    return {**m, "effect": effect, "p": p, "test": test, "fmt": fmt, "_bound": bound, "margin": margin,
            "worse_up": lower}


def verdict(c: pd.Series, decided: bool, size: int) -> str:
    """The bound at the family's level (Bonferroni over its cells, as the other claims' intervals)
    against the margin; the decision is Holm's over the one-sided p-values."""
    level = 1 - c["alpha"] / size
    lo_hi = (math.nan, c["_bound"](level)) if c["worse_up"] else (c["_bound"](level), math.nan)
    return wording.verdict(decided, True, *lo_hi, fmt=c["fmt"], margin=float(c["margin"]), worse_up=bool(c["worse_up"]),
                           level=f"{level:.1%} one-sided" + (f", simultaneous over {size}" if size > 1 else ""))


def detectable(c: pd.Series, alpha: float) -> str:
    """What the cell's n can show: for a rate, the bound equal rates would give at the family's
    first Holm step (a margin inside it cannot be reached without a better treatment)."""
    if not isinstance(c.get("_counts"), tuple):
        return ""
    _, nt, kb, nb = c["_counts"]
    equal = stats.newcombe_bound(round(kb / nb * nt), nt, kb, nb, 1 - alpha, upper=bool(c["worse_up"]))
    return f"equal rates give a bound of {equal:+.2f}"


WORDS = (" A non-inferiority claim (`expect: no_worse`) **supports** \"no worse than the baseline by more than M\" "
         "only where the corrected one-sided test says its bound on the worse side excludes the margin M; "
         "otherwise it is **not decided**, with the bound the data give; it never contradicts.")
