"""The results contract between `vi-sweep run` (writer) and the analysis layer (reader).

Version 2. A results folder holds:
- contract.json: what the results mean, written once by the driver: `axes` (the study's axes
  in order: model, dataset, each grid axis, seed), `labelled` (for a labelled axis, the config
  values each label sets), `compare` (the treatment axis and its baseline, e.g. lam = 0),
  `config` (every config key's documented default and whether it is an execution key) and
  `keys` (every `loss/*` and `eval/*` key the code declares, with label, format and which
  direction is better). The same JSON rides in the Parquet metadata of the two tables below.
- trials/<trial_id>.parquet: one trial's rows, one per evaluation, rewritten atomically at each
  evaluation: its config columns, label columns, `trial_id`, `study`, `status`,
  `search_trial`, `pack`, then `step`, `wall_s`, the declared loss and metric columns of its
  model and data set, `collapsed`, `diverged`. A trial is finished exactly when its file says
  finished or diverged.
- samples/<trial_id>/<step>.npy (2-D: the first 1,000 samples, float16) or .png (images: an
  8 x 8 grid), one per evaluation, written before the row that announces it.
- errors/<trial_id>.json, checkpoints/<trial_id>.pt (deleted when a trial ends), quarantine/
  (corrupt files moved aside), lease.json (the driver that owns the folder).
- trials.parquet: one row per trial: config columns (`iterations` is the configured budget),
  labels, `trial_id`, `study`, `status` (finished | diverged | running | pruned | error),
  `steps_done`, `wall_s` (of the trial's pack), `pack`, the final `eval/*` metrics,
  `collapsed`, `diverged`, `error`, `search_trial`.
- metrics.parquet: one row per trial per evaluation: `trial_id`, `step`, `wall_s`, `loss/*`,
  `eval/*`, `collapsed`, `diverged`.
Both tables carry the metadata `vi_sweeps_schema` = SCHEMA_VERSION and `vi_sweeps_contract` =
contract.json. The per-trial files are the source of truth; the two tables are rebuilt from
them. Readers accept version 2, read version 1 through a documented shim (vi_contract/read.py),
and refuse any other in one line.
"""

from __future__ import annotations

SCHEMA_VERSION = "2"
SCHEMA_KEY = b"vi_sweeps_schema"
CONTRACT_KEY = b"vi_sweeps_contract"

TRIALS_FILE = "trials.parquet"
METRICS_FILE = "metrics.parquet"
STUDY_FILE = "study.yaml"
VERSIONS_FILE = "versions.json"
CONTRACT_FILE = "contract.json"
SEARCH_FILE = "search.parquet"  # a search's Optuna trials, flattened (params_*, value, state, ...)
SEARCH_META = "search.json"  # its Optuna storage URL, study names, direction and importances
TRIALS_DIR = "trials"
SAMPLES_DIR = "samples"
ERRORS_DIR = "errors"
CHECKPOINTS_DIR = "checkpoints"
QUARANTINE_DIR = "quarantine"
REFERENCES_DIR = "references"  # FID reference statistics of the real data, shared by every node

# Columns a trial writes besides its config, labels and declared result keys.
TRIAL_META = ("trial_id", "study", "status", "search_trial", "pack")
ROW_META = ("step", "wall_s", "collapsed", "diverged")
# trials.parquet: the outputs of a trial (everything but its config and labels).
TRIAL_OUTPUTS = (*TRIAL_META, "steps_done", "wall_s", "collapsed", "diverged", "error")
# Columns the analysis adds to the trials (tables.with_labels, over_time); an axis named
# `regime` is welcome: it is what with_labels would derive.
DERIVED_COLUMNS = ("treatment", "failed", "dead", "steps_to_converge")
# A labelled axis becomes a column beside all of these, so it may not take one of their names
# (nor a metric's: those hold a "/", nor a collapse definition's `collapsed_*`).
RESERVED_NAMES = (*TRIAL_OUTPUTS, *ROW_META, *DERIVED_COLUMNS)
REQUIRED_TRIAL_COLUMNS = ("trial_id", "status", "model", "dataset", "seed", "collapse_rule", "collapsed",
                          "diverged", "steps_done", "iterations")
REQUIRED_METRIC_COLUMNS = ("trial_id", "step", "collapsed", "diverged")

FINISHED = ("finished", "diverged")


def default_compare(axes) -> dict | None:
    """What the findings compare when a study does not say (`compare:`): lambda against 0, where
    lambda is an axis; else nothing. The writer records it in contract.json, and readers of
    results without one (v1, hand-made tables) use the same default."""
    return {"axis": "lam", "baseline": 0.0} if "lam" in axes else None
STATUSES = ("finished", "diverged", "running", "pruned", "error")


def is_result_key(column: str) -> bool:
    return column.startswith(("loss/", "eval/"))


def trial_file(trial_id: str) -> str:
    return f"{TRIALS_DIR}/{trial_id}.parquet"


def sample_file(trial_id: str, step: int, suffix: str) -> str:
    return f"{SAMPLES_DIR}/{trial_id}/{step:09d}{suffix}"


def config_columns(columns) -> list[str]:
    """Columns that describe a trial's setting: config keys and axis labels."""
    outputs = set(TRIAL_OUTPUTS) | set(ROW_META)
    return [c for c in columns if c not in outputs and not is_result_key(c)]
