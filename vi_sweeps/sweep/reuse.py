"""Reusing finished trials of another results folder: a trial id names one sequence of numbers
(its experiment keys, its pack size and place), so a trial another study finished is this
study's trial too, whatever that study's labels called it. `vi-sweep run STUDY --reuse OTHER`
writes such trials here, with this study's labels, from OTHER's tables (a results folder or an
export), copies their sample snapshots, and runs only the rest. Measured: today's code, running
a committed bn_ablation trial alone at its place of its pack of 20, gives its committed rows
exactly (every loss and metric at every evaluation, max difference 0.0).

A trial is taken only when its rows are its id's: the source's reader leaves out trial files
that contradict their names and trials recorded twice (vi_contract.read), and here the config
each trial records must hash to its id and its evaluations be its budget's, each step once
(vi_sweeps.engine.rowcheck). Any other is named in one warning and runs here.
"""

from __future__ import annotations

import posixpath
import sys

import pandas as pd
import pyarrow.fs as pafs

from vi_contract import schema
from vi_contract.read import load_location
from vi_contract.store import Store
from vi_contract.tables import trial_status, trial_table, write_trial
from vi_sweeps.engine.rowcheck import execution_keys, recorded_config, settings_of, steps_problem
from vi_sweeps.study.expansion import Study, layout_pack_ids


def reuse_finished(source: str, study: Study, store: Store) -> int:
    """Write here every trial of `study` that `source` finished and this folder has not;
    returns how many."""
    trials, metrics, _, notes = load_location(source)
    for note in notes:  # what was left out of the source (a trial file not its trial's, a trial recorded twice)
        print(f"warning: --reuse {note}", file=sys.stderr)
    if not len(trials):
        return 0
    want = {t.trial_id: t for t in study.trials}
    done = trials[trials["status"].isin(schema.FINISHED) & trials["trial_id"].isin(want)]
    fs, root = pafs.FileSystem.from_uri(source) if "://" in source else (pafs.LocalFileSystem(), source)
    packs = layout_pack_ids(study)
    execution = execution_keys(study)
    count = 0
    for _, row in done.iterrows():
        tid = row["trial_id"]
        if trial_status(store, tid) in schema.FINISHED:
            continue
        rows = metrics[metrics["trial_id"] == tid].drop(columns="trial_id").dropna(axis=1, how="all")
        why = contradiction(row, rows, execution)
        if why:
            print(f"warning: --reuse {source}: trial {tid} not taken (it {why}); it runs here", file=sys.stderr)
            continue
        t = want[tid]
        table = trial_table({**t.config.model_dump(), "trial_id": tid}, t.labels, rows.to_dict("records"),
                            row["status"], study.name, None, packs[tid])
        folder = posixpath.join(root, schema.SAMPLES_DIR, tid)
        for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
            if info.type == pafs.FileType.File:
                with fs.open_input_stream(info.path) as f:
                    store.write_bytes(f"{schema.SAMPLES_DIR}/{tid}/{posixpath.basename(info.path)}", f.read())
        write_trial(store, table)  # last: the file that says finished comes after its snapshots
        count += 1
    return count


def contradiction(trial: pd.Series, rows: pd.DataFrame, execution: dict) -> str | None:
    """Why a source trial's rows are not its id's (None: they are): its recorded config hashes
    to another id, or its evaluations are not its budget's."""
    cfg, why = recorded_config(trial["trial_id"], settings_of(trial), execution)
    return why or steps_problem(cfg, trial["status"], [int(s) for s in rows["step"]])
