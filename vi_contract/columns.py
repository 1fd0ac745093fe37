"""Which columns of the contract's tables say what a trial was (the study's axes, its config)
and which say what it measured, for every reader: the tables, figures and findings of the
analysis and `vi-sweep status` group trials by the same columns."""

from __future__ import annotations

import pandas as pd

from vi_contract import schema


def guessed_axes(trials: pd.DataFrame) -> list[str]:
    """For files without a contract: the config columns that vary, minus those a text label
    column determines (a `regime` label stands for the bn/d_steps/g_steps it sets)."""
    cols = [c for c in schema.config_columns(trials.columns) if c not in ("seed", "trial_id")]
    varying = [c for c in cols if trials[c].astype(str).nunique() > 1]
    labels = [c for c in varying if not pd.api.types.is_numeric_dtype(trials[c]) and not pd.api.types.is_bool_dtype(trials[c])
              and c not in ("model", "dataset")]
    return [c for c in varying if c in labels or c in ("model", "dataset") or not any(
        trials.groupby(trials[k].astype(str))[c].nunique().max() == 1 for k in labels)]


def condition_columns(trials: pd.DataFrame, contract: dict | None = None) -> list[str]:
    axes = [a for a in (contract or {}).get("axes", []) if a != "seed" and a in trials]
    return axes or guessed_axes(trials)

