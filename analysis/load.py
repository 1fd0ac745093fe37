"""Read one or more results folders (local paths or URIs) into two frames, checking the
contract of analysis/schema.py first."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis import schema


class ResultsError(ValueError):
    """A results file that does not follow the contract."""


@dataclass
class Results:
    trials: pd.DataFrame
    metrics: pd.DataFrame
    sources: list[dict] = field(default_factory=list)  # per folder: location, study text, versions


def _open(location: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in location:
        location = str(Path(location).expanduser().resolve())
    return pafs.FileSystem.from_uri(location)


def read_checked(fs: pafs.FileSystem, path: str, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pq.read_table(path, filesystem=fs)
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing; run `vi-sweep run` (or `vi-sweep report`) to write it") from None
    version = (table.schema.metadata or {}).get(schema.SCHEMA_KEY, b"").decode()
    if version != schema.SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema version {version or 'absent'!r}, this reader knows "
                           f"{schema.SCHEMA_VERSION!r}")
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}")
    return table.to_pandas()


def _read_text(fs: pafs.FileSystem, path: str) -> str:
    try:
        with fs.open_input_stream(path) as f:
            return f.read().decode()
    except FileNotFoundError:
        return ""


def load_results(locations: list[str]) -> Results:
    trials, metrics, sources = [], [], []
    for location in locations:
        fs, root = _open(location)
        trials.append(read_checked(fs, posixpath.join(root, schema.TRIALS_FILE), schema.REQUIRED_TRIAL_COLUMNS))
        metrics.append(read_checked(fs, posixpath.join(root, schema.METRICS_FILE), schema.REQUIRED_METRIC_COLUMNS))
        versions = _read_text(fs, posixpath.join(root, schema.VERSIONS_FILE))
        sources.append({"location": location, "study": _read_text(fs, posixpath.join(root, schema.STUDY_FILE)),
                        "versions": json.loads(versions) if versions else {}})
    all_trials = pd.concat(trials, ignore_index=True).drop_duplicates("trial_id", keep="last")
    all_metrics = pd.concat(metrics, ignore_index=True).drop_duplicates(["trial_id", "step"], keep="last")
    return Results(all_trials.reset_index(drop=True), all_metrics.reset_index(drop=True), sources)
