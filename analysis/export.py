"""A results folder, made small enough to commit: the two tables of the contract, its
metadata files (a search's table of Optuna trials too, and its Optuna storage as a journal file
that search.json names relative to the export), the sample snapshots the report draws and every
trial's final one; a protocol's record and its searches (tune/, without snapshots).
`vi-sweep report` on the exported folder writes the same report as on the original, and
`vi-sweep run` on a copy of it resumes the sweep (vi_contract.tables.restore_trial_files; a
search's Optuna trials from the journal, vi_sweeps.sweep.storage.adopt_journal); a protocol still
tuning exports its searches alone."""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from analysis import tables
from analysis.figures import treatments
from analysis.load import load_results
from analysis.publish import new_folder_beside, remove_stale_beside
from analysis.samples import sample_panels, snapshot_steps
from analysis.search import export_storage
from vi_contract import schema
from vi_contract.files import open_location, subfolder
from vi_contract.read import ResultsError, still_tuning
from vi_contract.tables import with_metadata


def export_results(location: str, out: str | Path) -> dict[str, int]:
    """Write `location`'s results to the new folder `out` (absent or empty; never the results
    folder itself or a folder inside it); returns what was written. The copy is built beside
    `out` and takes its name when complete, so a failure leaves no half-written export."""
    if not str(out).strip():
        raise ResultsError("--to: an empty path; name a new folder for the export")
    final = Path(out).expanduser().absolute()
    remove_stale_beside(final)  # a folder put back here by a killed writer is checked like any other
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise ResultsError(f"--to {out}: already exists and is not an empty folder; export into a new folder")
    if "://" not in location:
        source = Path(location).expanduser().resolve()
        if final.resolve() == source or source in final.resolve().parents or final.resolve() in source.parents:
            raise ResultsError(f"--to {out}: is, holds or sits inside the results folder being exported ({location}); "
                               "pick another")
    tuning = still_tuning(location)  # a protocol's searches so far: their export resumes the tuning
    res = None if tuning else load_results([location], warn=False)
    final.parent.mkdir(parents=True, exist_ok=True)
    building = new_folder_beside(final)
    try:
        counts = _write_tuning(location, building) if tuning else _write_export(res, location, building)
        if final.exists():
            final.rmdir()  # empty, checked above
        os.replace(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return counts


def _write_tuning(location: str, out: Path) -> dict[str, int]:
    """A protocol still tuning: its searches (tune/, their Optuna storage as a journal), no test yet.
    Before, `export` refused such a folder, so hours of tuning could not be committed to resume
    elsewhere, and a fresh machine lost them."""
    (out / schema.TUNE_DIR).mkdir()
    _copy_files(location, out, [schema.PROTOCOL_FILE])  # (a run stopped after its record, before its test trials)
    searches = subfolder(location, schema.TUNE_DIR)
    tuned = _write_export(None, searches, out / schema.TUNE_DIR, snapshots=False)
    return {"trials": 0, "evaluations": 0, "snapshots": 0, "tuning trials": tuned["trials"], "still tuning": 1,
            "journal": int((out / schema.TUNE_DIR / schema.JOURNAL_FILE).exists())}


def _copy_files(location: str, out: Path, names: list[str]):
    """The folder's files of these names that exist, copied to `out`; returns (fs, root)."""
    fs, root = open_location(location)
    for name in names:
        try:
            with fs.open_input_stream(posixpath.join(root, name)) as f:
                (out / name).write_bytes(f.read())
        except FileNotFoundError:
            continue
    return fs, root


def _write_export(res, location: str, out: Path, snapshots: bool = True) -> dict[str, int]:
    """`res`: the folder's tables as read, or None to read them here."""
    fs, root = _copy_files(location, out, [schema.STUDY_FILE, schema.VERSIONS_FILE, schema.SEARCH_FILE,
                                           schema.SEARCH_META, schema.PROTOCOL_FILE])
    if (out / schema.SEARCH_META).exists():  # the Optuna storage travels with it, named relative to the export
        export_storage(location, out)
        res = None  # the tables read after it: what its journal holds finished has its rows finished too
    res = load_results([location], warn=False) if res is None else res
    contract = res.sources[0]["contract"]
    (out / schema.CONTRACT_FILE).write_text(json.dumps(contract, indent=1, default=str))
    pq.write_table(with_metadata(res.trials, contract), out / schema.TRIALS_FILE)
    pq.write_table(with_metadata(res.metrics, contract), out / schema.METRICS_FILE)
    counts = {"trials": len(res.trials), "evaluations": len(res.metrics), "snapshots": 0}
    tune = posixpath.join(root, schema.TUNE_DIR)
    if fs.get_file_info(posixpath.join(tune, schema.STUDY_FILE)).type.name == "File":
        # a protocol's searches, without their snapshots: the report draws the tuning history from them
        (out / schema.TUNE_DIR).mkdir()
        searches = subfolder(location, schema.TUNE_DIR)
        tuned = _write_export(None, searches, out / schema.TUNE_DIR, snapshots=False)
        counts["tuning trials"] = tuned["trials"]
    if not snapshots:
        return counts
    lay = tables.layout(res.trials, res.contract)
    labelled = tables.with_labels(res.trials, lay)
    order = treatments(labelled[labelled["status"].isin(schema.FINISHED)], lay.compare)
    used = {path for finals, strips in sample_panels(res, labelled, order, lay.compare, tables.quality_metric).values()
            for _, cells in finals + strips for _, _, path in cells if path is not None}
    for tid in res.trials.loc[res.trials["status"].isin(schema.FINISHED), "trial_id"]:
        steps = snapshot_steps(location, tid)  # every trial's final samples: a report of a larger
        if steps:                              # sweep resumed from this copy can still show them
            used.add(steps[max(steps)])
    for path in sorted(used):
        target = out / posixpath.relpath(path, root)
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(path) as f:
            target.write_bytes(f.read())
    return {**counts, "snapshots": len(used)}
