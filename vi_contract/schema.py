"""The results contract between `vi-sweep run` (writer) and the analysis layer (reader).

Version 3. Column names say what a column is: a trial's setting is `config/<key>` (every config
key, vi_sweeps.study.config) and `axis/<name>` (the label a labelled axis gave it, e.g.
`axis/regime` = `bn-1x1`); its outputs are bare (`trial_id`, `status`, `steps_done`, ...) and
its measurements are `loss/<name>` and `eval/<name>`. A missing value is a null, never -1 or "".
So any Parquet reader (pandas, DuckDB, Spark) can select `"config/lam"` or `"eval/modes"`, and a
study may name a labelled axis anything: it can never meet an output or a column the analysis
derives. A results folder holds:
- contract.json: what the results mean, written once by the driver: `schema` ("3"), `axes`
  (the study's axes in order, by their study names: model, dataset, each grid axis, seed; an
  axis's column is `axis/<name>` when it is in `labelled`, else `config/<name>`, see
  vi_contract.columns), `labelled` (for a labelled axis, the config values each label sets),
  `compare` (the treatment axis by its study name and its baseline, e.g. lam = 0), `config`
  (every config key's documented default and whether it is an execution key) and `keys`
  (every `loss/*` and `eval/*` key the code declares: label, format, which direction is
  better, role, note, scale). The same JSON rides in the Parquet metadata of the two tables.
- trials/<trial_id>.parquet: one trial's rows, one per evaluation, rewritten atomically at each
  evaluation: its `config/*` and `axis/*` columns, `trial_id`, `study`, `status`,
  `search_trial` (the Optuna trial number it scored; null outside a search), `pack_id` (the
  pack it trains in: a hash of the trial ids of its pack in the study's layout; its size is
  `config/pack_size`), then `step`, `wall_s`, the declared loss and metric columns of its model
  and data set, `collapsed`, `diverged`, `device_resolved` and `device_name` (the GPU's name, or the CPU's model and
  torch's vector kernels, e.g. "AMD EPYC (AVX512)"; null in results written by code before 3c36679).
  A trial is finished exactly when its file says finished or diverged.
- samples/<trial_id>/<step>.npy (2-D: the first 1,000 samples, float16) or .png (images: an
  8 x 8 grid), one per evaluation, written before the row that announces it.
- errors/<trial_id>.json, checkpoints/<trial_id>.pt (deleted when a trial ends), quarantine/
  (corrupt files moved aside), lease.json (the driver that owns the folder).
- trials.parquet: one row per trial: `config/*` (`config/iterations` is the configured budget),
  `axis/*`, `trial_id`, `study`, `status` (finished | diverged | running | pruned | error),
  `steps_done`, `wall_s` (of the trial's pack), `pack_id`, the final `eval/*` metrics,
  `collapsed`, `diverged`, `error` (null unless it errored), `search_trial`, the device columns.
- metrics.parquet: one row per trial per evaluation: `trial_id`, `step`, `wall_s`, `loss/*`,
  `eval/*`, `collapsed`, `diverged`.
Both tables carry the metadata `vi_sweeps_schema` = SCHEMA_VERSION and `vi_sweeps_contract` =
contract.json. The per-trial files are the source of truth; the two tables are rebuilt from
them. Readers accept version 3, read versions 2 and 1 through the documented shims of
vi_contract/upgrade.py (every committed result under docs/ is version 2), and refuse any other
in one line.
"""

from __future__ import annotations

SCHEMA_VERSION = "3"
READABLE_VERSIONS = ("3", "2", "1")  # 2 and 1 through vi_contract.upgrade
SCHEMA_KEY = b"vi_sweeps_schema"
CONTRACT_KEY = b"vi_sweeps_contract"

TRIALS_FILE = "trials.parquet"
METRICS_FILE = "metrics.parquet"
STUDY_FILE = "study.yaml"
VERSIONS_FILE = "versions.json"
CONTRACT_FILE = "contract.json"
SEARCH_FILE = "search.parquet"  # a search's Optuna trials, flattened (params_*, value, state, ...)
SEARCH_META = "search.json"  # its Optuna storage URL, study names, direction and importances
# An export carries a search's Optuna storage as a journal file (one JSON line per operation: text,
# no schema migration, no absolute path) that search.json names relative to the folder holding it
JOURNAL_FILE = "optuna.journal"
PROTOCOL_FILE = "protocol.json"  # a tune-then-test protocol: the settings its tuning chose, the budgets
TUNE_DIR = "tune"  # a protocol's searches: a results folder of their own inside the protocol's
TRIALS_DIR = "trials"
SAMPLES_DIR = "samples"
ERRORS_DIR = "errors"
CHECKPOINTS_DIR = "checkpoints"
QUARANTINE_DIR = "quarantine"
REFERENCES_DIR = "references"  # FID reference statistics of the real data, shared by every node

CONFIG = "config/"  # a config key's column: config/lam
AXIS = "axis/"  # a labelled axis's column: axis/regime
# Columns a trial writes besides its setting (config/*, axis/*) and declared result keys.
TRIAL_META = ("trial_id", "study", "status", "search_trial", "pack_id")
ROW_META = ("step", "wall_s", "collapsed", "diverged")
DEVICE = ("device_resolved", "device_name")  # where each evaluation ran
# trials.parquet: the outputs of a trial (everything but its setting).
TRIAL_OUTPUTS = (*TRIAL_META, "steps_done", "wall_s", "collapsed", "diverged", "error", *DEVICE)
REQUIRED_TRIAL_COLUMNS = ("trial_id", "status", "config/model", "config/dataset", "config/seed", "config/collapse_rule",
                          "collapsed", "diverged", "steps_done", "config/iterations")
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


def version_of(metadata: dict | None, absent: str = SCHEMA_VERSION) -> str:
    """The schema version a Parquet table's metadata records (`absent` where it records none:
    a trial file of this version, or "" for a consolidated table, which must say)."""
    return (metadata or {}).get(SCHEMA_KEY, absent.encode()).decode(errors="replace")


def labelled_of(*contracts: dict) -> dict:
    """A folder's labelled axes: from the first of its contracts (contract.json, then the one in
    the tables' metadata) that records them."""
    return next((c["labelled"] for c in contracts if isinstance((c or {}).get("labelled"), dict)), {})


def is_setting(column: str) -> bool:
    """A column that says what a trial was (a config key or an axis label), not what it did."""
    return column.startswith((CONFIG, AXIS))


def setting_columns(columns) -> list[str]:
    return [c for c in columns if is_setting(c)]
