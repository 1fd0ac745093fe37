"""Whether rows are the rows of the trial their id names, in what needs the config's hashing
(vi_contract.tables.rows_problem checks what a file says of itself: its name, one trial, one
study, each step once): the config on the rows hashes to their trial_id, the trial is one of
the study's, and its evaluations are its budget's. The driver quarantines a trial file that
fails (vi_contract.tables.Consolidation, with a RowCheck); --reuse runs such a trial here
instead of taking it (vi_sweeps.sweep.reuse)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from vi_contract import schema
from vi_contract.columns import name_of
from vi_sweeps.study.config import EXECUTION_KEYS, ConfigError, TrialConfig, make_config, shown
from vi_sweeps.study.expansion import Study


def settings_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The config keys a row records (config/KEY columns), as plain Python values; a null is a
    key the row does not set."""
    return {name_of(c): v.item() if hasattr(v, "item") else v for c, v in row.items()
            if c.startswith(schema.CONFIG) and not (pd.api.types.is_scalar(v) and pd.isna(v))}


def recorded_config(tid: str, settings: dict[str, Any], execution: dict[str, Any]) -> tuple[TrialConfig | None, str]:
    """(config, "") when `settings` (with this run's execution keys: a folder moved to another
    machine keeps its ids) hash to `tid`; else (None, why)."""
    try:
        cfg = make_config({**settings, **execution})
    except ConfigError as err:
        return None, f"records a config that is not valid here ({err.problems[0]})"
    if cfg.trial_id != tid:
        return None, f"records a config whose id is {cfg.trial_id}, not its trial_id {tid}"
    return cfg, ""


def steps_problem(cfg: TrialConfig, status: str, steps: list[int]) -> str | None:
    """Why a trial's evaluations contradict its budget (None: they do not). Finished: every
    scheduled step once; diverged: the scheduled steps before the one it diverged at; running
    or pruned: the first scheduled steps."""
    steps, want = sorted(steps), cfg.evaluation_steps()
    n = len(steps)
    if status == "finished":
        ok = steps == want
    elif status == "diverged":  # evaluated at once when its loss stopped being finite: by the next scheduled step
        ok = 0 < n <= len(want) and steps[:-1] == want[:n - 1] and steps[-2:-1] != steps[-1:] and steps[-1] <= want[n - 1]
    else:
        ok = steps == want[:n]
    if ok:
        return None
    return f"holds evaluations at steps {shown(steps)} as {status}; its budget evaluates at {shown(want)}"


@dataclass(frozen=True)
class RowCheck:
    """A trial file's rows against their id (vi_contract.tables.TrialFiles' `check`); small, as
    Ray pickles the driver's callbacks."""
    execution: tuple[tuple[str, Any], ...]  # this run's execution keys
    ids: frozenset[str] | None  # the study's trial ids; None for a search, whose ids are drawn

    @classmethod
    def of(cls, study: Study) -> RowCheck:
        execution = execution_keys(study)
        ids = None if study.spec.search is not None else frozenset(t.trial_id for t in study.trials)
        return cls(tuple(sorted(execution.items())), ids)

    def __call__(self, table: pa.Table) -> str | None:
        first = table.slice(0, 1).to_pylist()[0]
        tid = first["trial_id"]
        if self.ids is not None and tid not in self.ids:
            return "is no trial of this study"
        cfg, why = recorded_config(tid, settings_of(first), dict(self.execution))
        return why or steps_problem(cfg, first["status"], table["step"].to_pylist())


def execution_keys(study: Study) -> dict[str, Any]:
    """The execution keys this run gives its trials (the study's, the same for every trial)."""
    return {k: getattr(study.trials[0].config, k) for k in EXECUTION_KEYS} if study.trials else {}
