"""Threshold rules over a trial's eval metrics, one type for every use: the collapse rule a
trial is scored by (`modes_frac<0.5`, stored in each trial's config), the convergence rule of
the time-to-converge findings (`modes_frac>=0.875`), the literature's collapse definitions
beside the study's rule, and the ordering of sample panels by how collapsed a trial looks.

A rule is `METRIC OP VALUE` with METRIC an eval metric (written without its `eval/` prefix)
and OP one of <, >, <=, >=. A rule states a bad state (collapse: `good=False`) or a good one
(convergence: `good=True`); which way the metric is better follows from that and the operator.
A missing or NaN value never meets a rule.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OPS = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}
_RULE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=|<|>)\s*(\S+)\s*$")


class RuleError(ValueError):
    """A rule that does not parse or names a metric the results do not have."""


@dataclass(frozen=True)
class Rule:
    metric: str  # the eval key, with its prefix: eval/modes_frac
    op: str
    bound: float
    good: bool = False  # True: meeting the rule is good (converged); False: bad (collapsed)

    @classmethod
    def parse(cls, text: str, metrics: Iterable[str] | None = None, ops: tuple[str, ...] = ("<", ">"),
              good: bool = False, what: str = "collapse_rule") -> Rule:
        """`text` as a rule with one of `ops`; with `metrics` (declared eval keys, prefixed or
        not), its metric must be one of them. Errors name `what` and the valid choices."""
        shape = " or ".join(f"METRIC{op}VALUE" for op in ops)
        match = _RULE.match(str(text))
        if not match or match.group(2) not in ops:
            raise RuleError(f"{what}: {text!r} is not {shape}")
        name, op, value = match.groups()
        if metrics is not None:
            names = [m.removeprefix("eval/") for m in metrics]
            if name not in names:
                raise RuleError(f"{what}: unknown metric {name!r}; valid choices: {', '.join(names)}")
        try:
            bound = float(value)
        except ValueError:
            raise RuleError(f"{what}: {value!r} is not a number") from None
        if math.isnan(bound):
            raise RuleError(f"{what}: {value!r} is not a number")
        return cls(f"eval/{name}", op, bound, good)

    def holds(self, value: Any):
        """Whether `value` (a number, or a pandas Series / numpy array elementwise) meets the
        rule; a missing or NaN value does not."""
        if value is None:
            return False
        if isinstance(value, float) and math.isnan(value):
            return False
        return OPS[self.op](value, self.bound)

    def holds_for(self, row: dict) -> bool:
        """Whether a row of metrics (eval keys -> values) meets the rule."""
        return bool(self.holds(row.get(self.metric)))

    @property
    def higher_is_better(self) -> bool:
        """For the rule's metric: a collapse rule `modes_frac<0.5` and a convergence rule
        `modes_frac>=0.875` both say higher is better; `kl_uniform>1` says lower is."""
        return (self.op in (">", ">=")) == self.good

    @property
    def text(self) -> str:
        return f"{self.metric.removeprefix('eval/')}{self.op}{self.bound:g}"

    def __str__(self) -> str:
        return self.text


def collapse_rule(text: str, metrics: Iterable[str] | None = None) -> Rule:
    """The study's collapse rule (`collapse_rule:` of a trial): METRIC<VALUE or METRIC>VALUE."""
    return Rule.parse(text, metrics)


def is_collapsed(rule: str | Rule, metrics: dict[str, float], diverged: bool) -> bool:
    """A trial is collapsed at an evaluation when its rule holds, and always when it diverged
    (its generator no longer produces finite samples, so it covers no mode)."""
    if diverged:
        return True
    return (rule if isinstance(rule, Rule) else collapse_rule(rule)).holds_for(metrics)
