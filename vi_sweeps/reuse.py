"""Reusing finished trials of another results folder: a trial id names one sequence of numbers
(its experiment keys, its pack size and place), so a trial another study finished is this
study's trial too, whatever that study's labels called it. `vi-sweep run STUDY --reuse OTHER`
writes such trials here, with this study's labels, from OTHER's tables (a results folder or an
export), copies their sample snapshots, and runs only the rest. Measured: today's code, running
a committed bn_ablation trial alone at its place of its pack of 20, gives its committed rows
exactly (every loss and metric at every evaluation, max difference 0.0).
"""

from __future__ import annotations

import posixpath

import pyarrow.fs as pafs

from vi_contract import schema
from vi_contract.read import load_location
from vi_contract.store import Store
from vi_contract.tables import trial_status, trial_table, write_trial
from vi_sweeps.expansion import Study, layout_pack_ids


def reuse_finished(source: str, study: Study, store: Store) -> int:
    """Write here every trial of `study` that `source` finished and this folder has not;
    returns how many."""
    trials, metrics, _, _ = load_location(source)
    if not len(trials):
        return 0
    want = {t.trial_id: t for t in study.trials}
    done = trials[trials["status"].isin(schema.FINISHED) & trials["trial_id"].isin(want)]
    fs, root = pafs.FileSystem.from_uri(source) if "://" in source else (pafs.LocalFileSystem(), source)
    packs = layout_pack_ids(study)
    count = 0
    for _, row in done.iterrows():
        tid = row["trial_id"]
        if trial_status(store, tid) in schema.FINISHED:
            continue
        t = want[tid]
        rows = metrics[metrics["trial_id"] == tid].drop(columns="trial_id").dropna(axis=1, how="all")
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

