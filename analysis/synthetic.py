"""Synthetic results folders with planted collapse rates, written to the contract (v3): for
tests of the statistics and the report, and for the scale benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from vi_contract import schema
from vi_contract.tables import setting_values, trial_table, with_metadata

KEYS = {"loss/d": {"label": "discriminator loss", "fmt": "{:.3f}", "better": ""},
        "loss/g": {"label": "generator loss", "fmt": "{:.3f}", "better": ""},
        "eval/modes_frac": {"label": "share of modes captured", "fmt": "{:.2f}", "better": "higher"},
        "eval/fd_2d": {"label": "Frechet distance (fd_2d)", "fmt": "{:.3f}", "better": "lower"}}


def synthetic_contract(dataset: str = "ring8") -> dict:
    angles = np.arange(8) * 2 * np.pi / 8
    return {"schema": schema.SCHEMA_VERSION, "study": "synthetic",
            "axes": ["model", "dataset", "bn", "g_steps", "lam", "seed"], "labelled": {},
            "compare": {"axis": "lam", "baseline": 0.0}, "keys": KEYS,
            "config": {"lam": {"default": 0.0, "execution": False}, "bn": {"default": True, "execution": False}},
            "datasets": {dataset: {"kind": "mixture", "centres": np.stack([2 * np.cos(angles), 2 * np.sin(angles)], 1).tolist(),
                                   "sigma": 0.02}}}


def synthetic_results(folder: str | Path, rates: dict[tuple[bool, int, float], float], seeds: int,
                      evaluations: int = 10, dataset: str = "ring8", seed: int = 0,
                      per_trial_files: bool = False, metric_shift: dict | None = None,
                      snapshots: bool = False, converge_at: dict | None = None) -> pd.DataFrame:
    """One trial per (bn, g_steps, lam) x seed; a trial collapses with the given probability
    (drawn once, so the realised counts are known) from a random evaluation on; a 2% share
    of collapsing trials diverges there. `metric_shift` adds a constant to fd_2d per
    (bn, g_steps, lam), a planted quality effect. `converge_at` plants a convergence time per
    (bn, g_steps, lam): modes_frac is 0.75 before that evaluation (a number, or a list with one
    per seed) and 1.0 from it on (until a collapse). With `snapshots`, each evaluation gets a 2-D
    sample snapshot: points on every mode, or on one mode once the trial has collapsed.
    Returns the trials frame it wrote."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    trials, metrics, per_trial = [], [], []
    every = 100
    for (bn, g_steps, lam), rate in rates.items():
        shift = (metric_shift or {}).get((bn, g_steps, lam), 0.0)
        for s in range(seeds):
            tid = f"{dataset}-{bn}-{g_steps}-{lam}-{evaluations * every}-r{seed}-{s}"
            collapsed = bool(rng.random() < rate)
            diverged = collapsed and bool(rng.random() < 0.02)
            onset = int(rng.integers(1, evaluations + 1)) if collapsed else evaluations + 1
            steps = np.arange(1, (onset if diverged else evaluations) + 1) * every
            fd = np.exp(-steps / 400.0) * 5 + (2.0 if collapsed else 0.1) + rng.random(len(steps)) * 0.05 + shift
            fails = steps >= onset * every
            at = (converge_at or {}).get((bn, g_steps, lam), 1)
            at = at[s] if isinstance(at, (list, tuple)) else at
            covered = np.where(steps >= at * every, 1.0, 0.75)
            rows = pd.DataFrame({
                "trial_id": tid, "step": steps, "wall_s": steps * 0.01, "loss/d": 0.6, "loss/g": 0.8,
                "eval/modes_frac": np.where(fails, 0.25, covered), "eval/fd_2d": np.where(diverged & fails, np.nan, fd),
                "collapsed": fails, "diverged": diverged & fails})
            metrics.append(rows)
            if snapshots:
                centres = np.array(synthetic_contract(dataset)["datasets"][dataset]["centres"])
                for step, failed in zip(steps, fails, strict=True):
                    modes = rng.integers(0, 1 if failed else 8, 300)
                    points = centres[modes] + 0.02 * rng.standard_normal((300, 2))
                    path = folder / schema.sample_file(tid, int(step), ".npy")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.save(path, points.astype(np.float16))
            config = {"model": "gan", "dataset": dataset, "seed": s, "bn": bn, "g_steps": g_steps, "d_steps": g_steps,
                      "lam": lam, "collapse_rule": "modes_frac<0.5", "iterations": evaluations * every, "eval_every": every}
            status = "diverged" if diverged else "finished"
            trials.append({**setting_values(config, {}), "trial_id": tid, "study": "synthetic", "status": status,
                           "search_trial": None, "pack_id": None, "steps_done": int(steps[-1]),
                           "wall_s": float(steps[-1]) * 0.01, "eval/modes_frac": float(rows["eval/modes_frac"].iloc[-1]),
                           "eval/fd_2d": float(rows["eval/fd_2d"].iloc[-1]), "collapsed": collapsed, "diverged": diverged,
                           "error": None})
            if per_trial_files:
                per_trial.append((tid, trial_table({**config, "trial_id": tid}, {}, rows.drop(columns="trial_id").to_dict("records"),
                                                   status, "synthetic")))
    contract = synthetic_contract(dataset)
    frame = pd.DataFrame(trials).astype({"search_trial": "Int64"})
    if per_trial_files:
        (folder / schema.TRIALS_DIR).mkdir(exist_ok=True)
        for tid, table in per_trial:
            pq.write_table(table, folder / schema.trial_file(tid))
    else:
        pq.write_table(with_metadata(frame, contract), folder / schema.TRIALS_FILE)
        pq.write_table(with_metadata(pd.concat(metrics, ignore_index=True), contract), folder / schema.METRICS_FILE)
    (folder / schema.CONTRACT_FILE).write_text(json.dumps(contract))
    (folder / schema.STUDY_FILE).write_text("name: synthetic\n")
    return frame
