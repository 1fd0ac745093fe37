"""One trial in this process, without Ray (`vi-sweep trial`, and any script): its config from
a few options, its run with a line per evaluation, its rows and final samples written where
asked. Nothing here prints; the caller says what to do with each evaluation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from vi_contract.files import write_problem
from vi_contract.tables import trial_table
from vi_sweeps.core.errors import ConfigError
from vi_sweeps.core.keys import Key
from vi_sweeps.engine.trial import Trial, evaluations
from vi_sweeps.gan.families import OBJECTIVES
from vi_sweeps.metrics.evaluation import evaluation
from vi_sweeps.study.config import TrialConfig, make_config, parse_assignments

SOURCE = "vi-sweep trial"


def single_config(model: str, dataset: str, seed: int, iterations: int, assignments: Iterable[str] = ()) -> TrialConfig:
    """The config of one trial: evaluated at least at its end (eval_every at most iterations)."""
    values = {"model": model, "dataset": dataset, "seed": seed, "iterations": iterations,
              "eval_every": min(TrialConfig.model_fields["eval_every"].default, iterations)}
    values.update(parse_assignments(tuple(assignments)))
    return make_config(values, SOURCE)


def check_writable(option: str, path: str | None) -> None:
    """An output path that cannot be written is bad input, found before training, not after."""
    problem = write_problem(path) if path is not None else None
    if problem:
        raise ConfigError(option, [f"{path!r}: cannot be written there ({problem})" if not str(path).strip()
                                   else f"{path}: cannot be written there ({problem})"])


def check_outputs(out: str | None, samples: str | None) -> None:
    """Both outputs writable, and not one file named twice (the rows would be overwritten)."""
    check_writable("--out", out)
    check_writable("--samples", samples)
    if out and samples and Path(out).expanduser().absolute() == Path(samples).expanduser().absolute():
        raise ConfigError("--samples", [f"{samples}: the same file as --out; name two files"])


def progress_row(cfg: TrialConfig, row: dict) -> str:
    """One line per evaluation, with every declared key of the trial's model and data set."""
    keys: list[Key] = [*OBJECTIVES.meta(cfg.model).losses, *evaluation(cfg.dataset).metrics]
    parts = [f"step {row['step']:>6}/{cfg.iterations}"]
    parts += [f"{key.short} " + key.fmt.format(row[key]) for key in keys if row[key] == row[key]]
    parts.append("DIVERGED" if row["diverged"] else ("collapsed" if row["collapsed"] else "ok"))
    parts.append(f"{row['wall_s']:.1f}s")
    return "  ".join(parts)


def run_single(cfg: TrialConfig, out: str | None = None, samples: str | None = None,
               on_evaluation: Callable[[dict], None] = lambda row: None) -> tuple[str, list[dict]]:
    """Train the trial, calling `on_evaluation` with each evaluation's row; write its rows
    (`out`, a trial file of the contract) and final samples (`samples`, .npy) where given.
    Returns (status, rows). Raises ConfigError for outputs that cannot be written and for
    inputs that are not there (an image folder, FID weights), before training."""
    check_outputs(out, samples)
    try:
        run = Trial(cfg, keep_samples=bool(samples))
    except FileNotFoundError as err:
        raise ConfigError(SOURCE, [str(err)]) from None
    for evals in evaluations(run):
        on_evaluation(evals[0].row)
    rows = run.trial_rows(0)
    status = "diverged" if rows[-1]["diverged"] else "finished"
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(trial_table({**cfg.model_dump(), "trial_id": cfg.trial_id}, {}, rows, status), out)
    if samples:
        Path(samples).parent.mkdir(parents=True, exist_ok=True)
        with open(samples, "wb") as f:  # the path given, as given (np.save of a name appends .npy)
            np.save(f, run.samples[0].numpy())
    return status, rows
