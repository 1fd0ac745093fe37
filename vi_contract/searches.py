"""search.parquet, the table of a search's Optuna trials, made from an Optuna storage: one
writer for the driver (vi_sweeps.sweep.storage) and the export (analysis.search), which writes
it again from the journal it carries. Optuna is imported where it is used, as everywhere a
reader of files may lack it."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

from vi_contract import schema

QUEUED = "queued_params"  # a queued (WAITING) trial's parameters, JSON: Optuna keeps them out of params_*
ATTRS = "attrs_json"  # every user attribute as Optuna holds it (the user_attrs_* columns are for reading)


def search_table(storage, names: list[str]):
    """Every Optuna trial of these studies as search.parquet holds them (params_*, value, state,
    user_attrs_* with the trial ids joined by commas, datetimes, and QUEUED and ATTRS as JSON for
    a journal rebuilt from the table), a pyarrow table with the schema version,
    or None where no study has a suggestion yet. Needs Optuna: the driver writes it as it
    searches, and an export writes it again from the journal it carries."""
    import optuna

    frames = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        frame = study.trials_dataframe(
            attrs=("number", "value", "state", "params", "user_attrs", "datetime_start", "datetime_complete"))
        if frame.empty:  # a search stopped before its first suggestion (Ray failed first): no row, no columns
            continue
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        waiting = optuna.trial.TrialState.WAITING
        frame[QUEUED] = [json.dumps(t.system_attrs["fixed_params"], sort_keys=True)
                         if t.state == waiting and t.system_attrs.get("fixed_params") else ""
                         for t in map(by_number.get, frame["number"])]
        frame[ATTRS] = [json.dumps(by_number[n].user_attrs, sort_keys=True) for n in frame["number"]]
        frame.insert(0, "search_study", name)
        if "user_attrs_trial_ids" in frame:
            frame["user_attrs_trial_ids"] = frame["user_attrs_trial_ids"].map(
                lambda v: ",".join(v) if isinstance(v, list) else "")
        frames.append(frame)
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True)
    frame["state"] = frame["state"].astype(str)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.replace_schema_metadata({schema.SCHEMA_KEY: schema.SCHEMA_VERSION.encode()})
