"""The sweep on Ray: the private Ray session, the driver that schedules packs with Ray Tune,
watching and stopping it, reusing finished trials, the Optuna search and the status of a folder.

The names of the former module vi_sweeps.sweep are still read from here (vi_sweeps.sweep.driver),
loaded on first use so that importing one submodule does not load the others."""

from __future__ import annotations

from vi_sweeps._moved import lender

FORMER = (
    "BadImage",
    "ConfigError",
    "DATASETS",
    "Member",
    "PACKING",
    "PackSpec",
    "Progress",
    "RowCheck",
    "Stopped",
    "Study",
    "SweepControl",
    "SweepOutcome",
    "build_dataset",
    "check_location",
    "check_resources",
    "check_reusable",
    "claims",
    "contract",
    "definition_differences",
    "describe",
    "driving",
    "embedded",
    "evaluation",
    "layout_pack_ids",
    "layout_packs",
    "load_study_as_run",
    "log_handler",
    "machine_kind",
    "make_packs",
    "plugins",
    "prepare_data",
    "prepare_store",
    "progress_callback",
    "quiet_ray_logs",
    "reuse_finished",
    "run_config",
    "run_sweep",
    "stored_claims",
    "stored_study_problems",
    "tracking_callbacks",
    "trainable_for",
    "trial_cost",
    "trials_so_far",
    "unbuildable",
    "versions",
    "with_history",
)

__getattr__ = lender(__name__, "vi_sweeps.sweep.driver", FORMER)
