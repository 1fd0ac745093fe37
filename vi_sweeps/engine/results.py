"""What the writer adds to the contract (vi_contract): contract.json, the study's axes and the
code's declarations, and versions.json, what ran it. The per-trial files and their
consolidation are vi_contract.tables."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow as pa
import ray
import torch

import vi_sweeps
from vi_contract import schema
from vi_sweeps.core import plugins
from vi_sweeps.data.datasets import DATASETS
from vi_sweeps.gan.families import OBJECTIVES
from vi_sweeps.metrics.evaluators import EVALUATORS
from vi_sweeps.study.config import EXECUTION_KEYS, ConfigError, defaults, field_docs

log = logging.getLogger("vi_sweeps")


def contract(study) -> dict:
    """contract.json: the study's axes and the code's declarations (config defaults, result
    keys, the geometry of the study's 2-D data sets for sample plots)."""

    keys, by = {}, {}
    declared = [(o, k) for o in OBJECTIVES.names() for k in OBJECTIVES.meta(o).losses]
    for owner, k in declared + [(e, k) for e in EVALUATORS.names() for k in EVALUATORS.meta(e).metrics]:
        if keys.setdefault(str(k), k.describe()) != k.describe():  # a plugin's key may not redefine one
            raise ConfigError(study.source, [f"{k}: declared by {by[str(k)]} and, otherwise, by {owner}; give one "
                                             "of them another name"])
        by.setdefault(str(k), owner)
    config = {name: {"default": value, "execution": name in EXECUTION_KEYS,
                     "doc": field_docs()[name]} for name, value in defaults().items()}
    data = {}
    for cfg in {t.config.dataset: t.config for t in study.trials}.values():
        describe = DATASETS.meta(cfg.dataset).describe
        try:
            data[cfg.dataset] = describe(cfg) if describe else {}
        except Exception as err:  # noqa: BLE001 - a plugin's data set that cannot be built: bad input, in one line
            raise ConfigError(study.source, [unbuildable(cfg.dataset, err)]) from None
    return {"schema": schema.SCHEMA_VERSION, "study": study.name, "axes": study.axes, "labelled": study.labelled,
            "compare": study.compare, "config": config, "keys": keys, "datasets": data,
            **({"interims": study.spec.seeds} if isinstance(study.spec.seeds, dict) else {})}


def unbuildable(dataset: str, err: Exception) -> str:
    """One line: a data set (a plugin's, named) that raised when built."""
    origin = DATASETS.origin(dataset)
    first = str(err).splitlines()[0] if str(err) else ""
    return f"datasets: {dataset}{f' (plugin {origin})' if origin else ''} cannot be built ({type(err).__name__}: {first})"


def versions() -> dict[str, str]:
    import optuna

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


def with_history(now: dict, earlier: bytes) -> dict:
    """versions.json: this run's record at the top (what a report shows), and under `runs` every
    run's, the earlier ones as they were written: a resume never rewrites what an earlier run ran
    with (its plugins among them). A file of an earlier version (one record, no `runs`) is its
    first run; an unreadable one is dropped."""
    try:
        before = json.loads(earlier) if earlier else {}
    except ValueError:
        before = {}
    if not isinstance(before, dict):
        before = {}
    runs = before.get("runs") if isinstance(before.get("runs"), list) else [before] if before else []
    return {**now, "runs": [*runs, now]}


def gpu_versions() -> dict[str, str]:
    """Where the driver sees a GPU: its name(s), the CUDA version torch was built with, cuDNN's
    and the NVIDIA driver's (from nvidia-smi); nothing on a machine without one. Each trial's
    rows also say the device it ran on (device_resolved, device_name), for clusters whose
    driver runs on a CPU head."""

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
