"""A study's finished trials as the declared claims read them (Study), and a claim's verdict from
its cells' (overall). Nothing here knows a particular study or claim: the claims are declared in
study files (vi_sweeps.study.claims), decided by analysis.claims and set on a page by
analysis.claims_page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import convergence, tables, wording
from vi_contract import schema
from vi_contract.columns import settings


@dataclass
class Study:
    """One exported study: its trials labelled, the per-condition tables and per-seed times."""

    name: str
    trials: pd.DataFrame
    metrics: pd.DataFrame
    contract: dict
    lay: tables.Layout = field(init=False)

    def __post_init__(self):
        self.lay = tables.layout(self.trials, self.contract)
        done = self.trials[self.trials["status"].isin(schema.FINISHED)]
        rules = tables.collapse_rules(done, self.metrics)
        labelled = tables.with_labels(done, self.lay).assign(**{f"_{r}": v.values for r, v in rules.items()})
        rule = convergence.parse_rule(convergence.DEFAULT_RULE, tables.metric_keys(done, self.contract)) \
            if "eval/modes_frac" in done else None
        labelled["steps_to_converge"] = (convergence.steps_to_converge(labelled, self.metrics, rule).values
                                         if rule else np.nan)
        # each seed's course (the premise of the endpoints measured after getting good); NaN throughout without the rule's metric
        on = (convergence.onsets(labelled, self.metrics, rule) if rule else
              pd.DataFrame(np.nan, index=labelled.index, columns=list(convergence.ONSET_COLUMNS)))
        labelled = labelled.assign(**{c: on[c].values for c in on})
        self.done = labelled
        self.axes = settings(done)  # the axes' own values by their study names (a label replaces an axis named regime)

    def arm(self, dataset: str, where: dict, value) -> pd.DataFrame:
        sel = (self.done["dataset"] == dataset) & (self.axes[self.lay.compare].map(tables._label) == tables._label(value))
        for key, want in where.items():
            sel &= self.axes[key].astype(str) == str(want)
        return self.done[sel]


def overall(cells: pd.DataFrame) -> str:
    """A claim's verdict from its cells' ("cell": each one's words, analysis.wording)."""
    if cells.empty:
        return "not measured"
    s = int(cells["cell"].map(wording.is_support).sum())  # a non-inferiority cell supports with what it supports
    c, n = int((cells["cell"] == wording.CONTRADICTS).sum()), len(cells)
    if s == n:
        return "supported"
    if c == n:
        return "contradicted"
    if s and c:
        return f"mixed ({s} of {n} cells support, {c} contradict)"
    if s:
        return f"partly supported ({s} of {n} cells; the rest not decided)"
    if c:
        return f"partly contradicted ({c} of {n} cells; the rest not decided)"
    return f"not decided at this n (no cell of {n} decided)"
