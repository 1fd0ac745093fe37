"""Results written before schema 3, read as schema 3 (vi_contract/schema.py). Every reader
goes through vi_contract.read, which applies these shims, so the rest of the code knows one
schema. Nothing here writes: a folder keeps the files it has.

Version 2 (every committed result under docs/): setting columns had bare names beside the
outputs. A v2 column that is not an output (V2_OUTPUTS) nor a `loss/`/`eval/` key is a setting:
`axis/<name>` when the contract lists `<name>` as a labelled axis, else `config/<name>`. Missing
values were written as -1 (`search_trial` outside a search) and "" (`error` of a trial that did
not err, `device_name` off a GPU): they read as nulls. `pack` held the size of the trial's pack,
which `config/pack_size` holds (v2 results written before the size entered the identity get
`config/pack_size` from it); v2 recorded no pack id, so `pack_id` is null.

Version 1 is read as version 2 first: v1 overwrote the configured `iterations` with the steps
done, so `steps_done` takes that value and `iterations` is recovered where it can be (a finished
trial did all of its iterations; otherwise the study's `budget:`), else left empty; the axes,
which v1 did not record, are read from the folder's study.yaml; its trials trained alone
(`pack` 1).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from vi_contract import schema
from vi_contract.columns import axis, config

V2_OUTPUTS = ("trial_id", "study", "status", "search_trial", "pack", "steps_done", "wall_s", "collapsed", "diverged",
              "error", "step", *schema.DEVICE)
V2_REQUIRED_TRIAL_COLUMNS = ("trial_id", "status", "model", "dataset", "seed", "collapse_rule", "collapsed", "diverged",
                             "steps_done", "iterations")
NULL_WHEN = {"search_trial": -1, "error": "", "device_name": ""}  # v2's stand-ins for a missing value


def required(version: str, table: str) -> tuple[str, ...]:
    """The columns a table of `version` must have ("trials", "metrics" or "search")."""
    if table == "metrics":
        return schema.REQUIRED_METRIC_COLUMNS
    if table == "search":  # a search's Optuna trials (search.parquet): the same in every version
        return ("search_study", "number", "value", "state")
    if version == schema.SCHEMA_VERSION:
        return schema.REQUIRED_TRIAL_COLUMNS
    return tuple(c for c in V2_REQUIRED_TRIAL_COLUMNS if not (version == "1" and c == "steps_done"))


def v2_frame(frame: pd.DataFrame, labelled) -> pd.DataFrame:
    """A v2 table (trials, metrics or one trial's file) with v3's columns."""
    labelled = set(labelled or ())
    rename = {c: (axis(c) if c in labelled else config(c)) for c in frame.columns
              if c not in V2_OUTPUTS and not schema.is_result_key(c)}
    out = frame.rename(columns=rename)
    if "pack" in out:
        if config("pack_size") not in out:
            out[config("pack_size")] = out["pack"]
        out = out.drop(columns="pack")
    for column, missing in NULL_WHEN.items():
        if column in out:
            kept = out[column].where(out[column] != missing)
            out[column] = kept.astype("Int64") if column == "search_trial" else kept.astype("str")  # as v3 reads back
    if "status" in out and "pack_id" not in out:
        out.insert(list(out.columns).index("status") + 1, "pack_id", pd.Series([None] * len(out), dtype="str",
                                                                               index=out.index))
    return out


def v2_table(table: pa.Table, labelled) -> pa.Table:
    """One v2 trial file as v3 (a live v2 folder read by this version's readers)."""
    frame = v2_frame(table.to_pandas(), labelled)
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(
        {schema.SCHEMA_KEY: schema.SCHEMA_VERSION.encode()})


def v1_contract(study: dict) -> dict:
    """A v1 folder's axes, read from its study file (v1 did not record them)."""
    grid = study.get("grid") if isinstance(study.get("grid"), dict) else {}
    labelled = {k: v for k, v in grid.items() if isinstance(v, dict)}
    return {"axes": ["model", "dataset", *grid, "seed"], "labelled": labelled,
            "compare": schema.default_compare(grid)} if grid else {}


def v1_trials(trials: pd.DataFrame, study: dict) -> pd.DataFrame:
    """A v1 trials table as v2."""
    trials = trials.rename(columns={"iterations": "steps_done"})
    budget = study.get("budget") if isinstance(study.get("budget"), dict) else {}
    budget = budget.get("iterations")
    finished = trials["status"] == "finished"
    trials["iterations"] = trials["steps_done"].where(finished, budget if budget is not None else float("nan"))
    trials["pack"] = 1
    return trials


def contract_v3(contract: dict) -> dict:
    """A v1 or v2 contract as v3: the same axes (by their study names), labels and keys."""
    return {**contract, "schema": schema.SCHEMA_VERSION} if contract else contract
