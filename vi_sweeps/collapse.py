"""The collapse rule: `METRIC<VALUE` or `METRIC>VALUE` over a row's eval metrics.

A trial is collapsed at an evaluation when the rule holds, and always when it diverged (its
generator no longer produces finite samples, so it covers no mode).
"""

from __future__ import annotations

import math
import re

RULE_METRICS = ("modes", "modes_frac", "hq_frac", "kl_uniform", "fd_2d", "fd_digits", "fid_inception")
_RULE = re.compile(r"^\s*([a-z_0-9]+)\s*([<>])\s*([-+0-9.eE]+)\s*$")


def parse_rule(rule: str) -> tuple[str, str, float]:
    m = _RULE.match(rule)
    if not m:
        raise ValueError(f"collapse_rule: {rule!r} is not METRIC<VALUE or METRIC>VALUE")
    metric, op, value = m.group(1), m.group(2), m.group(3)
    if metric not in RULE_METRICS:
        raise ValueError(f"collapse_rule: unknown metric {metric!r}; valid choices: {', '.join(RULE_METRICS)}")
    try:
        return metric, op, float(value)
    except ValueError:
        raise ValueError(f"collapse_rule: {value!r} is not a number") from None


def is_collapsed(rule: str, metrics: dict[str, float], diverged: bool) -> bool:
    if diverged:
        return True
    metric, op, bound = parse_rule(rule)
    value = metrics.get(f"eval/{metric}", math.nan)
    if value is None or math.isnan(value):
        return False
    return value < bound if op == "<" else value > bound
