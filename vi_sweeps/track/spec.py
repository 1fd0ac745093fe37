"""Experiment tracking (`vi-sweep run/tune --track`, or a `tracking:` block in the study file):
MLflow or Weights & Biases, through Ray Tune's own logger callbacks (vi_sweeps.track.callbacks). This
module is the spec, its checks and the names of runs. Offline by default: an MLflow SQLite store under
RESULTS/tracking, W&B in offline mode with its run files under RESULTS/tracking (`wandb sync`
uploads them later). Everything here runs on the driver; the results contract does not depend
on it.

This module imports neither Ray nor a tracker (the study file's `tracking:` field is checked
here, with the rest of the study); `pip install "vi-sweeps[track]"` installs the trackers.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from vi_sweeps.core.errors import ConfigError

EXTRA = "track"
MODULES = {"mlflow": "mlflow", "wandb": "wandb"}  # the module each tracker imports
TAG = "vi_sweeps_trial_id"  # the MLflow tag that finds a trial's run again on resume
FOLDER = "tracking"  # under RESULTS: the offline stores
# MLflow's tracking stores by URI scheme (a `+driver` suffix allowed: postgresql+psycopg2); no scheme: a folder
MLFLOW_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")
REACH_S = 5.0  # a tracking server that does not accept a connection in this time is refused (MLflow retried for 259 s)


class Tracking(BaseModel):
    """`tracking:` in a study file; `--track KIND[=TARGET]` on the command line wins over it."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["mlflow", "wandb"] = Field(description="mlflow or wandb")
    target: str = Field("", max_length=2000, description="mlflow: the tracking URI (default: SQLite under "
                        "RESULTS/tracking); wandb: the project (default: the study's name)")


def parse_track(text: str) -> Tracking:
    """`mlflow`, `mlflow=URI`, `wandb` or `wandb=PROJECT`; bad input is a ConfigError on --track."""
    kind, sep, target = text.partition("=")
    kind = kind.strip()
    if kind not in MODULES:
        raise ConfigError("--track", [f"{text!r}: valid forms: mlflow, mlflow=URI, wandb, wandb=PROJECT"])
    if sep and not target.strip():
        raise ConfigError("--track", [f"{text!r}: an empty {'URI' if kind == 'mlflow' else 'project'} after '='"])
    return Tracking(kind=kind, target=target.strip())


def resolve(option: str | None, spec_tracking: Tracking | None, study_name: str, results: str) -> Tracking | None:
    """The tracking a driver uses (the option over the study file's), its tracker checked to be
    installed and its default target filled in; ConfigError (exit 2, one line) otherwise."""
    tracking = parse_track(option) if option else spec_tracking
    if tracking is None:
        return None
    where = "--track" if option else "tracking"
    if not installed(tracking.kind):
        raise ConfigError(where, [f"{tracking.kind} is not installed; install the extra: pip install \"vi-sweeps[{EXTRA}]\""])
    remote = "://" in results
    if tracking.kind == "mlflow" and not tracking.target:
        if remote:
            raise ConfigError(where, ["results on object storage: name the tracking server, --track mlflow=URI"])
        tracking = tracking.model_copy(update={"target": f"sqlite:///{offline_folder(results) / 'mlflow.db'}"})
    if tracking.kind == "wandb" and not tracking.target:
        tracking = tracking.model_copy(update={"target": study_name})
    if tracking.kind == "mlflow" and (problem := mlflow_target_problem(tracking.target)):
        raise ConfigError(where, [f"mlflow={tracking.target}: {problem}"])
    return tracking


def mlflow_target_problem(uri: str) -> str:
    """Why MLflow could not track to `uri` (empty: it can): a scheme it has no store for, or a
    server that does not accept a connection within REACH_S (checked before anything is written)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if "://" in uri and scheme not in MLFLOW_SCHEMES:
        return f"unknown scheme {parts.scheme!r}; valid choices: {', '.join(s + '://' for s in MLFLOW_SCHEMES)} or a folder"
    if scheme not in ("http", "https"):
        return ""
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return f"{parts.netloc!r} is not HOST:PORT"
    if not parts.hostname:
        return "no host; e.g. http://127.0.0.1:5000"
    try:
        socket.create_connection((parts.hostname, port), timeout=REACH_S).close()
    except OSError as err:
        return f"cannot reach {parts.hostname}:{port} ({err.strerror or err}); start the server or name another"
    return ""


def installed(kind: str) -> bool:
    return importlib.util.find_spec(MODULES[kind]) is not None


def offline_folder(results: str) -> Path:
    return Path(results).expanduser().absolute() / FOLDER


def run_name(study: str, axes: tuple[str, ...], space: tuple[str, ...], config: dict, labels: dict) -> str:
    """`study/axis=value,...[,search_trial=N]/seedK`: the trial's condition and seed."""
    return f"{group_name(study, axes, space, config, labels)}/seed{config['seed']}"


def group_name(study: str, axes: tuple[str, ...], space: tuple[str, ...], config: dict, labels: dict) -> str:
    values = {**config, **labels}
    parts = [f"{a}={values[a]}" for a in axes if a != "seed" and a in values]
    parts += [f"{k}={values[k]:.4g}" if isinstance(values[k], float) else f"{k}={values[k]}" for k in space]
    if space and config.get("search_trial", -1) >= 0:
        parts.append(f"search_trial={config['search_trial']}")
    return "/".join([study, ",".join(parts) or "all"])


