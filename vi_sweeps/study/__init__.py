"""What is measured: one trial's configuration, the study file's schema, its expansion into trials,
reading a study, parts of it (--only) and its declared claims.

The names of the former module vi_sweeps.study are still read from here (vi_sweeps.study.load),
loaded on first use so that importing one submodule does not load the others."""

from __future__ import annotations

from vi_sweeps._moved import lender

FORMER = (
    "ConfigError",
    "EXECUTION_KEYS",
    "MAX_STUDY_BYTES",
    "NOT_AXES",
    "OVERRIDES_MARK",
    "SET_BY",
    "Study",
    "StudyFile",
    "TrialConfig",
    "YAMLLoader",
    "check_claims",
    "check_compare",
    "check_overrides",
    "check_search",
    "config_keys",
    "definition_differences",
    "describe_errors",
    "expand",
    "load_study",
    "load_study_as_run",
    "load_study_text",
    "plugins",
    "read_study_text",
    "shown",
    "study_errors",
    "what_parses",
)

__getattr__ = lender(__name__, "vi_sweeps.study.load", FORMER)
