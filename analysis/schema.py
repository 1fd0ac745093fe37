"""The results contract between `vi-sweep run` (writer) and the analysis layer (reader).

Version 1. A results directory holds:
- trials.parquet: one row per trial. `trial_id` (stable hash of the resolved config), `study`,
  `status` (finished | diverged | running | pruned | error), every config key as its own column
  (model, dataset, seed, bn, d_steps, g_steps, lam, ...), grid labels (e.g. `regime`),
  `iterations` (done), `wall_s`, the final evaluation's `eval/*` metrics, `collapsed`,
  `diverged`, `error` (message of an errored trial) and `search_trial` (Optuna trial number,
  -1 outside a search).
- metrics.parquet: one row per trial per evaluation: `trial_id`, `step`, `wall_s`, `loss/*`,
  `eval/*`, `collapsed`, `diverged`.
Both carry the key-value metadata `vi_sweeps_schema` = SCHEMA_VERSION; a reader refuses any
other version. Beside them: study.yaml (the study as run) and versions.json.
"""

SCHEMA_VERSION = "1"
SCHEMA_KEY = b"vi_sweeps_schema"

TRIALS_FILE = "trials.parquet"
METRICS_FILE = "metrics.parquet"
STUDY_FILE = "study.yaml"
VERSIONS_FILE = "versions.json"

LOSS_COLUMNS = ("loss/d", "loss/g", "loss/reg", "loss/rec", "loss/kl", "loss/nll")
METRIC_COLUMNS = ("eval/modes", "eval/modes_frac", "eval/hq_frac", "eval/kl_uniform",
                  "eval/fd_2d", "eval/fd_digits", "eval/fid_inception")
ROW_COLUMNS = ("step", "wall_s", *LOSS_COLUMNS, *METRIC_COLUMNS, "collapsed", "diverged")

TRIAL_OUTPUT_COLUMNS = ("trial_id", "study", "status", "iterations", "wall_s", *METRIC_COLUMNS,
                        "collapsed", "diverged", "error", "search_trial")
REQUIRED_TRIAL_COLUMNS = ("trial_id", "status", "model", "dataset", "seed", "lam",
                          "collapse_rule", "collapsed", "diverged", "iterations")
REQUIRED_METRIC_COLUMNS = ("trial_id", "step", "collapsed", "diverged")

FINISHED = ("finished", "diverged")
STATUSES = ("finished", "diverged", "running", "pruned", "error")


def config_columns(columns) -> list[str]:
    """Columns that describe a trial's setting: every column that is not an output."""
    outputs = set(TRIAL_OUTPUT_COLUMNS) | set(ROW_COLUMNS)
    return [c for c in columns if c not in outputs and not c.startswith(("eval/", "loss/"))]
