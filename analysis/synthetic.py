"""Synthetic results folders with known collapse rates, written to the contract: for tests of
the statistics and for the report benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import schema


def _write(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({schema.SCHEMA_KEY: schema.SCHEMA_VERSION.encode()}), path)


def synthetic_results(folder: str | Path, rates: dict[tuple[bool, int, float], float], seeds: int,
                      evaluations: int = 10, dataset: str = "ring8", seed: int = 0) -> pd.DataFrame:
    """One trial per (bn, g_steps, lam) x seed; a trial collapses with the given probability
    (drawn once, so the realised counts are known) from a random evaluation on; a 2% share
    diverges. Returns the trials frame it wrote."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trials, metrics = [], []
    for (bn, g_steps, lam), rate in rates.items():
        for s in range(seeds):
            tid = f"{dataset}-{bn}-{g_steps}-{lam}-{s}"
            collapsed = bool(rng.random() < rate)
            diverged = collapsed and bool(rng.random() < 0.02)
            onset = int(rng.integers(1, evaluations + 1)) if collapsed else evaluations + 1
            steps = np.arange(1, (onset if diverged else evaluations) + 1) * 100
            fd = np.exp(-steps / 400.0) * 5 + (2.0 if collapsed else 0.1) + rng.random(len(steps)) * 0.05
            fails = steps >= onset * 100
            metrics.append(pd.DataFrame({
                "trial_id": tid, "step": steps, "wall_s": steps * 0.01, "loss/d": 0.6, "loss/g": 0.8,
                "eval/modes_frac": np.where(fails, 0.25, 1.0), "eval/fd_2d": np.where(diverged & fails, np.nan, fd),
                "collapsed": fails, "diverged": diverged & fails}))
            trials.append({"trial_id": tid, "study": "synthetic", "status": "diverged" if diverged else "finished",
                           "model": "gan", "dataset": dataset, "seed": s, "bn": bn, "g_steps": g_steps,
                           "d_steps": g_steps, "lam": lam, "collapse_rule": "modes_frac<0.5",
                           "iterations": int(steps[-1]), "wall_s": float(steps[-1]) * 0.01,
                           "eval/modes_frac": 0.25 if collapsed else 1.0, "eval/fd_2d": float(fd[-1]),
                           "collapsed": collapsed, "diverged": diverged, "error": "", "search_trial": -1})
    frame = pd.DataFrame(trials)
    _write(frame, folder / schema.TRIALS_FILE)
    _write(pd.concat(metrics, ignore_index=True), folder / schema.METRICS_FILE)
    (folder / schema.STUDY_FILE).write_text("name: synthetic\n")
    return frame
