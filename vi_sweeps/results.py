"""Writing the results contract (analysis/schema.py) from trials.

While a sweep runs, each trial keeps its own file `trials/<trial_id>.parquet` (one row per
evaluation, its config and status on every row), rewritten atomically at each evaluation; a
trial is finished exactly when that file says finished or diverged, and a file that says so is
never rewritten. Errors land in `errors/<trial_id>.json`. `Consolidation` turns these into
trials.parquet and metrics.parquet, re-reading only the trial files that changed.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa

from analysis import schema
from analysis.contract import TrialFiles, build_tables, read_errors, with_metadata
from vi_sweeps import plugins
from vi_sweeps.storage import Store

log = logging.getLogger("vi_sweeps")


def contract(study) -> dict:
    """contract.json: the study's axes and the code's declarations (config defaults, result
    keys, the geometry of the study's 2-D data sets for sample plots)."""
    from vi_sweeps.config import EXECUTION_KEYS, defaults, field_docs
    from vi_sweeps.datasets import DATASETS
    from vi_sweeps.metrics import EVALUATORS
    from vi_sweeps.objectives import OBJECTIVES

    keys = {}
    for name in OBJECTIVES.names():
        keys.update({str(k): k.describe() for k in OBJECTIVES.meta(name).losses})
    for name in EVALUATORS.names():
        keys.update({str(k): k.describe() for k in EVALUATORS.meta(name).metrics})
    config = {name: {"default": value, "execution": name in EXECUTION_KEYS,
                     "doc": field_docs()[name]} for name, value in defaults().items()}
    data = {}
    for cfg in {t.config.dataset: t.config for t in study.trials}.values():
        describe = DATASETS.meta(cfg.dataset).describe
        data[cfg.dataset] = describe(cfg) if describe else {}
    return {"schema": schema.SCHEMA_VERSION, "study": study.name, "axes": study.axes, "labelled": study.labelled,
            "compare": study.compare, "config": config, "keys": keys, "datasets": data}


def read_contract(store: Store) -> dict:
    return json.loads(store.read_bytes(schema.CONTRACT_FILE)) if store.exists(schema.CONTRACT_FILE) else {}


def trial_table(config: dict, labels: dict, rows: list[dict], status: str, study: str = "",
                search_trial: int = -1, pack: int = 1) -> pa.Table:
    frame = pd.DataFrame(rows)
    meta = {**config, **labels, "trial_id": config["trial_id"], "study": study, "status": status,
            "search_trial": search_trial, "pack": pack}
    for key, value in meta.items():
        frame[key] = [value] * len(frame)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.replace_schema_metadata({schema.SCHEMA_KEY: schema.SCHEMA_VERSION.encode()})


def trial_status(store: Store, tid: str) -> str | None:
    """The status a trial's own file records; None when it has none (or it is unreadable)."""
    rel = schema.trial_file(tid)
    if not store.exists(rel):
        return None
    try:
        return store.read_table(rel, columns=["status"]).column("status")[0].as_py()
    except (pa.ArrowInvalid, OSError):
        return None


def write_trial(store: Store, table: pa.Table) -> bool:
    """Write a trial's file unless its file already says finished (a second writer, e.g. a
    driver that lost its lease, must never regress a finished trial); True if written."""
    tid = table["trial_id"][0].as_py()
    if trial_status(store, tid) in schema.FINISHED:
        log.warning("trial %s is already finished in %s; not overwriting it", tid, store.uri)
        return False
    store.write_table(schema.trial_file(tid), table)
    return True


class Consolidation:
    """The driver's view of the per-trial files: incremental reads, corrupt files moved to
    quarantine/ with one warning each."""

    def __init__(self, store: Store):
        self.store = store
        self.files = TrialFiles(store.fs, store.root)

    def __getstate__(self) -> dict:  # Ray pickles the driver's callbacks: leave the cache behind
        return {"store": self.store}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["store"])

    def tables(self) -> list[pa.Table]:
        tables = self.files.read()
        for name in self.files.corrupt:
            dest = self.store.quarantine(f"{schema.TRIALS_DIR}/{name}")
            print(f"warning: trial file {self.store.path(schema.TRIALS_DIR, name)} is unreadable; moved to "
                  f"{dest}, that trial will run again", file=sys.stderr, flush=True)
        return tables

    def finished_ids(self) -> set[str]:
        done = set()
        for table in self.tables():
            if table.column("status")[0].as_py() in schema.FINISHED:
                done.add(table.column("trial_id")[0].as_py())
        return done

    def build(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The consolidated tables as the per-trial files stand, written nowhere."""
        return build_tables(self.tables(), read_errors(self.store.fs, self.store.root))

    def write(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        trials, metrics = self.build()
        meta = read_contract(self.store)
        self.store.write_table(schema.METRICS_FILE, with_metadata(metrics, meta))
        self.store.write_table(schema.TRIALS_FILE, with_metadata(trials, meta))
        return trials, metrics


def restore_trial_files(store: Store) -> int:
    """A results folder whose consolidated tables know finished trials that have no file of
    their own (an exported copy, committed and brought back; trials/ deleted) gets those files
    back from the tables, so a sweep resumes from it without running them again. Returns how
    many were restored."""
    if not store.exists(schema.TRIALS_FILE) or not store.exists(schema.METRICS_FILE):
        return 0
    trials = store.read_table(schema.TRIALS_FILE).to_pandas()
    have = {n.removesuffix(".parquet") for n in store.listdir(schema.TRIALS_DIR)}
    missing = trials[trials["status"].isin(schema.FINISHED) & ~trials["trial_id"].isin(have)]
    if missing.empty:
        return 0
    metrics = store.read_table(schema.METRICS_FILE).to_pandas()
    setting = [c for c in schema.config_columns(trials.columns) if c not in schema.TRIAL_META]
    for _, trial in missing.iterrows():
        rows = metrics[metrics["trial_id"] == trial["trial_id"]].drop(columns="trial_id").dropna(axis=1, how="all")
        config = {c: trial[c] for c in setting if c in trial.index and not (isinstance(trial[c], float) and trial[c] != trial[c])}
        table = trial_table({**config, "trial_id": trial["trial_id"]}, {}, rows.to_dict("records"), trial["status"],
                            trial["study"], int(trial["search_trial"]), int(trial.get("pack", 1)))
        store.write_table(schema.trial_file(trial["trial_id"]), table)
    return len(missing)


def consolidate(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    return Consolidation(store).write()


def finished_ids(store: Store) -> set[str]:
    return Consolidation(store).finished_ids()


def record_error(store: Store, config: dict, labels: dict, study: str, message: str, pack: int = 1) -> None:
    blob = {"config": config, "labels": labels, "study": study, "error": message, "pack": pack}
    store.write_bytes(f"{schema.ERRORS_DIR}/{config['trial_id']}.json", json.dumps(blob, default=str).encode())


def clear_error(store: Store, tid: str) -> None:
    store.delete(f"{schema.ERRORS_DIR}/{tid}.json")


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
            "plugins": plugins.versions_text(),
            "schema": schema.SCHEMA_VERSION, **gpu_versions()}


def gpu_versions() -> dict[str, str]:
    """Where the driver sees a GPU: its name(s), the CUDA version torch was built with, cuDNN's
    and the NVIDIA driver's (from nvidia-smi); nothing on a machine without one. Each trial's
    rows also say the device it ran on (device_resolved, device_name), for clusters whose
    driver runs on a CPU head."""
    import torch

    if not torch.cuda.is_available():
        return {}
    names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
    out = {"gpu": ", ".join(names), "gpu_count": str(torch.cuda.device_count()), "cuda": torch.version.cuda or "",
           "cudnn": str(torch.backends.cudnn.version() or "")}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        out["nvidia_driver"] = ", ".join(sorted(set(smi.stdout.split()))) or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        out["nvidia_driver"] = "unknown"
    return out
