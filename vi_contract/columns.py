"""Which columns of the contract's tables say what a trial was, and under which name: a config
key `k` is the column `config/k`, a labelled axis `a` the column `axis/a` (vi_contract.schema).
Studies, contracts and the analysis's tables speak of axes by their study names (lam, regime);
these functions turn one into the other, so every reader (the tables, figures and findings of
the analysis, `vi-sweep status`) groups trials by the same columns and shows the same names."""

from __future__ import annotations

import pandas as pd

from vi_contract import schema


def config(key: str) -> str:
    return schema.CONFIG + key


def axis(name: str) -> str:
    return schema.AXIS + name


def name_of(column: str) -> str:
    """The study's name of a setting column (config/lam -> lam, axis/regime -> regime)."""
    for prefix in (schema.CONFIG, schema.AXIS):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def column_of(name: str, contract: dict | None = None, columns=None) -> str:
    """The column of the axis or config key `name`: axis/NAME for a labelled axis (the
    contract's `labelled`, or where only that column exists), else config/NAME."""
    labelled = (contract or {}).get("labelled") or {}
    if name in labelled or (columns is not None and axis(name) in columns and config(name) not in columns):
        return axis(name)
    return config(name)


def settings(frame: pd.DataFrame) -> pd.DataFrame:
    """The setting columns of `frame` under their study names (a label and a config key never
    share a name: vi_sweeps.study.expansion refuses it)."""
    cols = schema.setting_columns(frame.columns)
    return frame[cols].rename(columns={c: name_of(c) for c in cols})


def guessed_axes(trials: pd.DataFrame) -> list[str]:
    """For files without a contract: the setting columns that vary, minus those a label
    determines (an `axis/regime` stands for the bn/d_steps/g_steps it sets)."""
    cols = [c for c in schema.setting_columns(trials.columns) if c not in (config("seed"),)]
    varying = [c for c in cols if trials[c].astype(str).nunique() > 1]
    facets = (config("model"), config("dataset"))
    labels = [c for c in varying if c.startswith(schema.AXIS) or (
        c not in facets and not pd.api.types.is_numeric_dtype(trials[c]) and not pd.api.types.is_bool_dtype(trials[c]))]
    return [c for c in varying if c in labels or c in facets or not any(
        trials.groupby(trials[k].astype(str))[c].nunique().max() == 1 for k in labels)]


def condition_columns(trials: pd.DataFrame, contract: dict | None = None) -> list[str]:
    """The columns of every axis but the seed: the contract's axes, else guessed."""
    axes = [column_of(a, contract, trials.columns) for a in (contract or {}).get("axes", []) if a != "seed"]
    axes = [c for c in axes if c in trials]
    return axes or guessed_axes(trials)


def suggested(trials: pd.DataFrame) -> pd.Series:
    """The rows a search suggested (`search_trial` set): a protocol's tuning or `vi-sweep tune`'s.
    No claim or interim is decided on them: the scores a verdict would judge chose their settings."""
    if "search_trial" not in trials:
        return pd.Series(False, index=trials.index)
    return trials["search_trial"].notna()
