"""A search's Optuna storage and the files of the results folder that name it: where it is
(storage_url), whether a folder's searches can go on here (check_held), a copy of an export made
whole again (adopt_journal), and search.json and search.parquet rewritten as each cell's search
begins (begin) and at the end (export_search). The analysis layer reads those files, never the
storage; an export carries the storage as a journal file (analysis.search.export_storage)."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import uuid
import warnings
from contextlib import closing
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend

from vi_contract import schema
from vi_contract.files import LocationError, subfolder
from vi_contract.searches import search_table
from vi_contract.store import TEMP_MARK, Store, StoreError
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.schema import Search

DEFAULT_DB = "optuna.db"  # the default storage: SQLite in the results folder


def storage_url(search: Search, store: Store) -> str:
    return search.storage or f"sqlite:///{store.path(DEFAULT_DB)}"


def check_storage(storage: str | None, results: str, key: str) -> None:
    """The default storage, SQLite in the results folder, needs a local folder: results on object
    storage name one (`key`), or the searches would land in a file where the driver stands."""
    if not storage and "://" in results:
        raise ConfigError(key, ["results on remote storage need an Optuna storage URL (e.g. sqlite:////abs/path.db "
                                "or postgresql://...)"])


def _meta(store: Store) -> dict:
    try:
        return json.loads(store.read_bytes(schema.SEARCH_META)) if store.exists(schema.SEARCH_META) else {}
    except (OSError, ValueError, StoreError):  # unreadable: rewritten at the next cell's start
        return {}


def _sqlite_file(url: str) -> Path | None:
    """The file of an SQLite storage URL (its query string dropped), else None."""
    return Path(url.removeprefix("sqlite:///").partition("?")[0]) if url.startswith("sqlite:///") else None


def held(url: str) -> list[str] | None:
    """The Optuna studies the storage at `url` holds; None for an SQLite file that is not there.
    An SQLite file is read without writing (an empty or foreign one holds none); where that read
    fails (a stopped driver's rollback journal to replay, a lock), Optuna opens it as a run would."""
    path = _sqlite_file(url)
    if path is not None:
        if not path.is_file():
            return None
        try:
            with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
                return [row[0] for row in db.execute("SELECT study_name FROM studies")]
        except sqlite3.DatabaseError as err:
            if "no such table" in str(err) or "not a database" in str(err):
                return []
    return optuna.get_all_study_names(optuna.storages.RDBStorage(url))


def check_held(search: Search, location: str) -> None:
    """Refuses, before anything is written, a folder whose search.json names searches that the
    storage this run opens does not hold and that no journal of the folder (an export's) can make
    it hold: going on would suggest them again from number 0 over their rows. Before, such a
    folder (a copy without its optuna.db, a storage URL of another machine) searched again
    silently and overwrote its table of suggestions."""
    try:
        store = Store.open(location, create=False)
    except (OSError, LocationError, StoreError):
        return  # no folder yet: a new search
    meta = _meta(store)
    if not meta.get("studies"):
        return
    url = storage_url(search, store)
    try:
        have = held(url)
    except Exception:  # noqa: BLE001 - a storage that cannot be read now (locked, a server down): the run says why
        return
    missing = [name for name in meta["studies"] if name not in (have or [])]
    journal = meta.get("storage") == schema.JOURNAL_FILE and store.exists(schema.JOURNAL_FILE)
    if not missing or (journal and have is None):  # all there, or adopt_journal makes the storage
        return
    if journal and search.storage:
        where = (f"copy them into it from the folder's {schema.JOURNAL_FILE} (optuna.copy_study), or go on with "
                 "the default storage (no search.storage / protocol.tune.storage)")
    elif journal:
        where = (f"the {DEFAULT_DB} there holds none of them and is in the way of the folder's {schema.JOURNAL_FILE}; "
                 "move it away to go on from the journal")
    else:
        where = (f"bring their storage here (as run: {meta.get('storage_as_run', meta.get('storage'))}), or go on "
                 f"from the folder's `vi-sweep export`, which carries them in {schema.JOURNAL_FILE}")
    raise ConfigError(subfolder(location, schema.SEARCH_META),
                      [f"names {len(missing)} searches (e.g. {missing[0]}) that {url} does not hold: going on "
                       f"would suggest them again from number 0; {where}"])


def adopt_journal(store: Store, url: str) -> int:
    """A copy of an export (committed, brought to a fresh machine) holds its searches' Optuna
    trials in a journal file that search.json names, not in the SQLite storage a run opens: that
    storage is made from the journal first (beside it, then moved into place: whole or not at
    all), so a resumed search counts and learns from every suggestion the export holds. Before,
    it began again at suggestion 0: a protocol suggested its finished searches again, and `vi-sweep
    tune` numbered new suggestions over the old. Returns the finished suggestions taken."""
    target = _sqlite_file(url)
    if (_meta(store).get("storage") != schema.JOURNAL_FILE or target is None or target.exists()
            or not store.exists(schema.JOURNAL_FILE)):
        return 0
    tag = f"{TEMP_MARK}{uuid.uuid4().hex[:8]}"
    building, journal = target.with_name(target.name + tag), target.with_name(schema.JOURNAL_FILE + tag)
    try:
        journal.write_bytes(store.read_bytes(schema.JOURNAL_FILE))  # a local file, wherever the folder is
        source = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        into = optuna.storages.RDBStorage(f"sqlite:///{building}")  # (the URL's options are for the run)
        names, finished = optuna.get_all_study_names(source), 0
        for name in names:
            optuna.copy_study(from_study_name=name, from_storage=source, to_storage=into)
            finished += len(optuna.load_study(study_name=name, storage=source).get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        into.remove_session()
        into.engine.dispose()
        os.replace(building, target)
    finally:
        for leftover in (building, journal, Path(f"{building}-journal"), Path(f"{journal}.lock")):
            leftover.unlink(missing_ok=True)
    print(f"took the export's {len(names)} search{'es' if len(names) != 1 else ''} ({finished} finished "
          f"suggestions) from {schema.JOURNAL_FILE} into {target.name}", file=sys.stderr)
    return finished


def known(store: Store, storage) -> list[str]:
    """The searches search.json names that the storage holds: a re-run that stops early still
    names the cells an earlier run searched (before, its first cell's start wrote them out)."""
    have = set(optuna.get_all_study_names(storage))
    return [name for name in _meta(store).get("studies") or [] if name in have]


def cell_study(storage, name: str, mode: str) -> optuna.Study:
    """A cell's Optuna study, created the first time (maximised for mode "max")."""
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                               direction="minimize" if mode == "min" else "maximize")


def begin(storage, names: list[str], name: str, store: Store, url: str, mode: str) -> None:
    """A cell's search begins (its Optuna study created, its stale suggestions failed and queued
    again): search.json and search.parquet name it with every search before it, so a folder
    stopped at any point says where its suggestions are. Before, only a driver that went through
    every cell wrote them, and the export of a protocol still tuning carried no storage."""
    if name not in names:
        names.append(name)
    try:
        export_search(storage, names, store, url, mode, importances=False)
    except StoreError:
        pass  # the trials' own writes fail next, and stop the sweep saying why


def export_search(storage, names: list[str], store: Store, url: str, mode: str, importances: bool = True) -> None:
    """Every Optuna trial of the search as Parquet (params_*, value, state, trial_ids), for the
    analysis layer, which reads files rather than the storage; the parameter importances are
    computed at the end (`importances`), kept as they were before."""
    if not names:
        return
    table = search_table(storage, names)
    if table is not None:  # (none before a first suggestion: search.json alone names the storage)
        store.write_table(schema.SEARCH_FILE, table)
    found = {} if importances else {k: v for k, v in (_meta(store).get("importances") or {}).items() if k in names}
    for name in names if importances else ():  # computed here, where Optuna and its storage are, so the report needs neither
        ot_study = optuna.load_study(study_name=name, storage=storage)
        complete = ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) >= 2 and len(complete[0].params) > 1:
            with warnings.catch_warnings():  # "importances will be equal" on a flat objective: the figure shows it
                warnings.simplefilter("ignore", UserWarning)
                found[name] = optuna.importance.get_param_importances(ot_study)
    store.write_bytes(schema.SEARCH_META, json.dumps({"storage": url, "studies": names, "mode": mode,
                                                      "importances": found}).encode())
