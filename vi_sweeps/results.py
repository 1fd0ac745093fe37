"""Writing the results contract (analysis/schema.py) from trials.

While a sweep runs, each trial keeps its own file `trials/<trial_id>.parquet` (one row per
evaluation, its config and status on every row), rewritten atomically at each evaluation; a
trial is finished exactly when that file says finished or diverged. Errors land in
`errors/<trial_id>.json`. `consolidate` turns these into trials.parquet and metrics.parquet.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow as pa

from analysis import schema
from vi_sweeps.storage import Store


def trial_table(config: dict, rows: list[dict], status: str, study: str = "",
                labels: dict | None = None, search_trial: int = -1) -> pa.Table:
    frame = pd.DataFrame(rows, columns=list(schema.ROW_COLUMNS))
    meta = {**config, **(labels or {}), "trial_id": config["trial_id"], "study": study,
            "status": status, "search_trial": search_trial}
    for key, value in meta.items():
        frame[key] = [value] * len(frame)
    return with_schema(pa.Table.from_pandas(frame, preserve_index=False))


def with_schema(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata({schema.SCHEMA_KEY: schema.SCHEMA_VERSION.encode()})


def write_trial(store: Store, table: pa.Table) -> None:
    store.write_table(f"trials/{table['trial_id'][0].as_py()}.parquet", table)


def trial_status(store: Store, tid: str) -> str | None:
    rel = f"trials/{tid}.parquet"
    if not store.exists(rel):
        return None
    return store.read_table(rel).column("status")[0].as_py()


def finished_ids(store: Store) -> set[str]:
    """Ids of trials whose own file says finished or diverged."""
    done = set()
    for name in store.listdir("trials"):
        table = store.read_table(f"trials/{name}")
        if len(table) and table.column("status")[0].as_py() in schema.FINISHED:
            done.add(name.removesuffix(".parquet"))
    return done


def record_error(store: Store, config: dict, labels: dict, study: str, message: str) -> None:
    blob = {"config": config, "labels": labels, "study": study, "error": message}
    store.write_bytes(f"errors/{config['trial_id']}.json", json.dumps(blob, default=str).encode())


def clear_error(store: Store, tid: str) -> None:
    store.delete(f"errors/{tid}.json")


def consolidate(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-trial files (and error records) -> trials.parquet and metrics.parquet."""
    frames = [store.read_table(f"trials/{n}").to_pandas() for n in store.listdir("trials")]
    per_eval = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial_id", *schema.ROW_COLUMNS])
    metrics = per_eval[["trial_id", *schema.ROW_COLUMNS]].reset_index(drop=True)
    trials = per_eval.drop_duplicates("trial_id", keep="last").copy()
    trials["iterations"] = trials["step"]
    trials["error"] = ""
    errors = []
    for name in store.listdir("errors"):
        blob = json.loads(store.read_bytes(f"errors/{name}"))
        tid = blob["config"]["trial_id"]
        if tid in set(trials.loc[trials["status"].isin(schema.FINISHED), "trial_id"]):
            continue
        errors.append({**blob["config"], **blob["labels"], "trial_id": tid, "study": blob["study"],
                       "status": "error", "error": blob["error"], "search_trial": -1,
                       "iterations": 0, "collapsed": False, "diverged": False, "wall_s": math.nan})
    if errors:
        errored = pd.DataFrame(errors)
        trials = pd.concat([trials[~trials["trial_id"].isin(errored["trial_id"])], errored], ignore_index=True)
    trials = trials.drop(columns=[c for c in schema.ROW_COLUMNS if c not in schema.TRIAL_OUTPUT_COLUMNS and c in trials])
    trials = trials.sort_values(["study", "trial_id"]).reset_index(drop=True)
    store.write_table(schema.METRICS_FILE, with_schema(pa.Table.from_pandas(metrics, preserve_index=False)))
    store.write_table(schema.TRIALS_FILE, with_schema(pa.Table.from_pandas(trials, preserve_index=False)))
    return trials, metrics


def versions() -> dict[str, str]:
    import optuna
    import ray
    import torch

    import vi_sweeps

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except OSError:
        commit = ""
    return {"vi_sweeps": vi_sweeps.__version__, "torch": torch.__version__, "ray": ray.__version__,
            "optuna": optuna.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__,
            "python": platform.python_version(), "git_commit": commit or "unknown",
            "schema": schema.SCHEMA_VERSION}
