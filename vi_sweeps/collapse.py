"""The collapse rule: `METRIC<VALUE` or `METRIC>VALUE` over a row's eval metrics, where METRIC
is one of the metrics the data set's evaluator declares (vi_sweeps.metrics).

A trial is collapsed at an evaluation when the rule holds, and always when it diverged (its
generator no longer produces finite samples, so it covers no mode).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

_RULE = re.compile(r"^\s*([a-z_0-9]+)\s*([<>])\s*([-+0-9.eE]+)\s*$")


def parse_rule(rule: str, metrics: Iterable[str] | None = None) -> tuple[str, str, float]:
    """(metric, '<' or '>', bound); with `metrics` (declared keys), the metric must be one."""
    m = _RULE.match(rule)
    if not m:
        raise ValueError(f"collapse_rule: {rule!r} is not METRIC<VALUE or METRIC>VALUE")
    metric, op, value = m.group(1), m.group(2), m.group(3)
    if metrics is not None:
        names = [k.removeprefix("eval/") for k in metrics]
        if metric not in names:
            raise ValueError(f"collapse_rule: unknown metric {metric!r}; valid choices: {', '.join(names)}")
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
