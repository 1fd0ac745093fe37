"""Per-trial files and the two tables of the contract (vi_contract/schema.py), with pyarrow
and pandas alone.

While a sweep runs, each trial keeps its own file `trials/<trial_id>.parquet` (one row per
evaluation, its config and status on every row), rewritten atomically at each evaluation; a
trial is finished exactly when that file says finished or diverged, and a file that says so is
never rewritten. Errors land in `errors/<trial_id>.json`. The driver consolidates them into
trials.parquet and metrics.parquet (`Consolidation`), and readers build the same tables from
the same files, so they see a running sweep as it is, never a stale consolidation.

`TrialFiles` lists trials/ once per call and re-reads only the files whose size or
modification time changed since the last call, so a driver that consolidates every 30 s does
not re-read 10,000 unchanged files. A file that cannot be read as Parquet (truncated,
corrupt) is skipped and reported in `corrupt`; the driver moves such files to quarantine/,
readers say which ones they skipped. So is a readable file whose rows are not the rows of the
trial its name says (`rejected`): another trial's rows (a file copied or renamed), rows of
another study, a step twice, or what the writer's own `check` finds (vi_sweeps.engine.rowcheck: the
config hashes to another id, no trial of the study, evaluations that contradict the budget).
One file per trial id, named by it, so no trial is ever counted twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from vi_contract import schema, upgrade
from vi_contract.columns import axis, config, name_of
from vi_contract.files import RECENT_NS, read_parquet
from vi_contract.store import Store

log = logging.getLogger("vi_sweeps")


CORRUPT = object()


# The columns of a trial file by type: the first three it must have, the others it may; a file
# that breaks this is not a trial file (corrupt), and would break the tables built from it
def _text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


TRIAL_FILE_TYPES = {"trial_id": _text, "status": _text, "step": pa.types.is_integer,
                    "collapsed": pa.types.is_boolean, "diverged": pa.types.is_boolean,
                    "wall_s": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t)}


TRIAL_FILE_REQUIRED = ("trial_id", "status", "step")


def is_trial_table(table: pa.Table) -> bool:
    names = table.column_names
    return (len(table) > 0 and all(name in names for name in TRIAL_FILE_REQUIRED)
            and all(ok(table.schema.field(name).type) for name, ok in TRIAL_FILE_TYPES.items() if name in names))


def rows_problem(name: str, table: pa.Table, study: str | None = None) -> str | None:
    """Why a trial file's rows are not the rows of the trial its name says (None: they are):
    one trial, one study (the folder's, where known), one status, each step once."""
    for column in ("trial_id", "study", "status"):
        if column in table.column_names and len(values := pc.unique(table[column])) > 1:
            return f"mixes rows of {len(values)} values of {column} ({', '.join(map(str, values.to_pylist()[:3]))})"
    tid, owner = name.removesuffix(".parquet"), table["trial_id"][0].as_py()
    if owner != tid:
        return f"holds the rows of trial {owner}, not of {tid} its name says"
    if study and "study" in table.column_names and (theirs := table["study"][0].as_py()) != study:
        return f"belongs to study {theirs!r}, not {study!r}"
    counts = pc.value_counts(table["step"])
    if len(counts) < len(table):
        twice = [c["values"] for c in counts.to_pylist() if c["counts"] > 1]
        return f"repeats step {twice[0]}"
    return None


@dataclass
class TrialFiles:
    fs: pafs.FileSystem
    root: str
    study: str | None = None  # the folder's study, where known
    check: Callable[[pa.Table], str | None] | None = None  # the writer's checks (vi_sweeps.engine.rowcheck)
    cache: dict[str, tuple[tuple[int, int], pa.Table]] = field(default_factory=dict)
    corrupt: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)  # could not be read this time (permissions, the store)
    rejected: dict[str, str] = field(default_factory=dict)  # read, but not its name's trial's rows: name -> why

    def read(self) -> list[pa.Table]:
        """Every readable trial file's table (cached when unchanged), in name order."""
        folder = posixpath.join(self.root, schema.TRIALS_DIR)
        infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        current = {posixpath.basename(i.path): (i.mtime_ns or 0, i.size or 0) for i in infos
                   if i.type == pafs.FileType.File and i.path.endswith(".parquet")}
        # object stores keep modification times to the second: a file rewritten within a second
        # at the same size would look unchanged, so anything that recent is read again
        recent = time.time_ns() - RECENT_NS
        stale = [n for n, stamp in current.items()
                 if n not in self.cache or self.cache[n][0] != stamp or stamp[0] > recent]
        with ThreadPoolExecutor(8) as pool:
            fresh = list(pool.map(lambda n: self._read_one(posixpath.join(folder, n)), stale))
        self.corrupt, self.unread, self.rejected = [], [], {}
        for name, table in zip(stale, fresh, strict=True):
            if table is None:  # not read now; what was read before stands until the next call
                if name not in self.cache:
                    self.unread.append(name)
                continue
            if table is CORRUPT:
                self.corrupt.append(name)
            elif why := self.problem(name, table):
                self.rejected[name] = why
            else:
                self.cache[name] = (current[name], table)
                continue
            self.cache.pop(name, None)
        for name in set(self.cache) - set(current):
            del self.cache[name]
        return [self.cache[n][1] for n in sorted(self.cache)]

    def _read_one(self, path: str):
        """The file's table; CORRUPT if it was read but is not a trial file; None if it could
        not be read (gone, or the store failing): that is no evidence against the file."""
        try:
            table = read_parquet(self.fs, path)
        except pa.ArrowInvalid:
            return CORRUPT
        except OSError:
            return None
        return table if is_trial_table(table) else CORRUPT

    def problem(self, name: str, table: pa.Table) -> str | None:
        return rows_problem(name, table, self.study) or (self.check(table) if self.check else None)


def read_errors(fs: pafs.FileSystem, root: str, skipped: list[str] | None = None) -> list[dict]:
    """The error records of errored trials; one that is unreadable, not a record, or not the
    record of the trial its name says is left out and named in `skipped`."""
    folder = posixpath.join(root, schema.ERRORS_DIR)
    out = []
    for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
        if info.type == pafs.FileType.File and info.path.endswith(".json"):
            try:
                with fs.open_input_stream(info.path) as f:
                    blob = json.loads(f.read())
                if not (isinstance(blob, dict) and isinstance(blob.get("config"), dict)
                        and blob["config"].get("trial_id") == posixpath.basename(info.path).removesuffix(".json")
                        and isinstance(blob.get("labels", {}), dict)):  # one record per trial, named by its id
                    raise ValueError("not an error record")
                out.append({"labels": {}, "study": "", "error": "", **blob})
            except (OSError, ValueError):
                if skipped is not None:
                    skipped.append(posixpath.basename(info.path))
    return out


def build_tables(tables: list[pa.Table], errors: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trials, metrics) frames from per-trial tables and error records."""
    if tables:
        per_eval = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    else:
        per_eval = pd.DataFrame(columns=[*schema.TRIAL_META, *schema.ROW_META])
    results = [c for c in per_eval.columns if schema.is_result_key(c)]
    metrics = per_eval[["trial_id", *schema.ROW_META, *results]].reset_index(drop=True)
    trials = per_eval.drop_duplicates("trial_id", keep="last").rename(columns={"step": "steps_done"})
    trials = trials.drop(columns=[c for c in results if c.startswith("loss/")])
    trials["error"] = pd.Series([None] * len(trials), dtype="str", index=trials.index)
    done = set(trials.loc[trials["status"].isin(schema.FINISHED), "trial_id"])
    errored = []
    for blob in errors:
        tid = blob["config"]["trial_id"]
        if tid in done:
            continue
        steps = trials.loc[trials["trial_id"] == tid, "steps_done"]
        wall = trials.loc[trials["trial_id"] == tid, "wall_s"] if "wall_s" in trials else steps.iloc[:0]
        errored.append({**setting_values(blob["config"], blob["labels"]), "trial_id": tid, "study": blob["study"],
                        "status": "error", "error": blob["error"], "search_trial": _search_trial(blob.get("search_trial")),
                        "pack_id": blob.get("pack_id"), "steps_done": int(steps.iloc[0]) if len(steps) else 0,
                        "wall_s": float(wall.iloc[0]) if len(wall) else float("nan"),  # the time it trained: compute spent
                        "collapsed": False, "diverged": False})
    if errored:
        frame = pd.DataFrame(errored)
        trials = pd.concat([trials[~trials["trial_id"].isin(frame["trial_id"])], frame], ignore_index=True)
    if "search_trial" in trials:
        trials["search_trial"] = trials["search_trial"].astype("Int64")
    trials = trials.sort_values(["study", "trial_id"]).reset_index(drop=True)
    return trials, metrics


# the outputs that may be null in every row (no search, no error, no GPU, a pack id of schema 2):
# written with their type, never Arrow's `null`, so tables of several folders read as one
OUTPUT_TYPES = {"trial_id": pa.large_string(), "study": pa.large_string(), "status": pa.large_string(),
                "search_trial": pa.int64(), "pack_id": pa.large_string(), "error": pa.large_string(),
                "device_resolved": pa.large_string(), "device_name": pa.large_string()}  # pandas' text: large_string


def typed(table: pa.Table) -> pa.Table:
    for name, kind in OUTPUT_TYPES.items():
        i = table.schema.get_field_index(name)
        if i >= 0 and pa.types.is_null(table.schema.field(i).type):
            table = table.set_column(i, name, pa.nulls(len(table), kind))
    return table


def with_metadata(frame: pd.DataFrame, contract: dict, version: str = schema.SCHEMA_VERSION) -> pa.Table:
    """A consolidated table with its metadata: the schema version its columns follow (this
    version's, unless a migration rewrites a table of an earlier one) and the contract."""
    table = typed(pa.Table.from_pandas(frame, preserve_index=False))
    return table.replace_schema_metadata({schema.SCHEMA_KEY: version.encode(),
                                          schema.CONTRACT_KEY: json.dumps(contract).encode()})


def read_contract(store: Store) -> dict:
    return json.loads(store.read_bytes(schema.CONTRACT_FILE)) if store.exists(schema.CONTRACT_FILE) else {}


def setting_values(settings: dict, labels: dict) -> dict:
    """A trial's config and labels as the columns of schema 3 (config/KEY, axis/NAME)."""
    return {**{config(k): v for k, v in settings.items() if k != "trial_id"}, **{axis(k): v for k, v in labels.items()}}


def _search_trial(value) -> int | None:
    return None if _missing(value) or int(value) < 0 else int(value)


def _missing(value) -> bool:
    """None, NaN or pandas' NA: a null in the tables."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def pack_id(trial_ids) -> str:
    """The id of a pack: a hash of the trial ids of its members in the study's layout (every
    place, run now or not), so one pack has one id however often it is resumed."""
    return hashlib.sha256(",".join(trial_ids).encode()).hexdigest()[:16]


def trial_table(settings: dict, labels: dict, rows: list[dict], status: str, study: str = "",
                search_trial: int | None = None, pack: str | None = None) -> pa.Table:
    """One trial's file: its rows (one per evaluation), each with its setting (`settings`:
    config keys with `trial_id`; `labels`: axis labels) and status; missing values are nulls."""
    frame = pd.DataFrame(rows)
    meta = {**setting_values(settings, labels), "trial_id": settings["trial_id"], "study": study, "status": status,
            "search_trial": _search_trial(search_trial), "pack_id": pack}
    for key, value in meta.items():
        frame[key] = pd.Series([value] * len(frame), dtype="Int64" if key == "search_trial" else None)
    table = typed(pa.Table.from_pandas(frame, preserve_index=False))
    return table.replace_schema_metadata({schema.SCHEMA_KEY: schema.SCHEMA_VERSION.encode()})


def trial_status(store: Store, tid: str) -> str | None:
    """The status a trial's own file records; None when it has none (or it is unreadable, or
    holds another trial's rows: that file says nothing of this trial)."""
    rel = schema.trial_file(tid)
    if not store.exists(rel):
        return None
    try:
        table = store.read_table(rel, columns=["trial_id", "status"])
    except (pa.ArrowInvalid, OSError, KeyError):
        return None
    return table["status"][0].as_py() if pc.all(pc.equal(table["trial_id"], tid)).as_py() else None


def write_trial(store: Store, table: pa.Table) -> bool:
    """Write a trial's file unless its file already says finished (a second writer, e.g. a
    driver that lost its lease, must never regress a finished trial); True if written."""
    tid = table["trial_id"][0].as_py()
    if trial_status(store, tid) in schema.FINISHED:
        log.warning("trial %s is already finished in %s; not overwriting it", tid, store.uri)
        return False
    store.write_table(schema.trial_file(tid), table)
    return True


class Consolidation:
    """The driver's view of the per-trial files: incremental reads, files that are unreadable
    or not their trial's rows moved to quarantine/ with one warning each. `study` and `check`:
    what TrialFiles checks each file against."""

    def __init__(self, store: Store, study: str | None = None, check: Callable[[pa.Table], str | None] | None = None):
        self.store, self.study, self.check = store, study, check
        self.files = TrialFiles(store.fs, store.root, study, check)

    def __getstate__(self) -> dict:  # Ray pickles the driver's callbacks: leave the cache behind
        return {"store": self.store, "study": self.study, "check": self.check}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def tables(self) -> list[pa.Table]:
        tables = self.files.read()
        why = {**dict.fromkeys(self.files.corrupt, "is unreadable"), **self.files.rejected}
        for name, reason in why.items():
            dest = self.store.quarantine(f"{schema.TRIALS_DIR}/{name}")
            print(f"warning: trial file {self.store.path(schema.TRIALS_DIR, name)} {reason}; moved to {dest}, "
                  "so a trial of this study without its own file runs again", file=sys.stderr, flush=True)
        return tables

    def finished_ids(self) -> set[str]:
        done = set()
        for table in self.tables():
            if table.column("status")[0].as_py() in schema.FINISHED:
                done.add(table.column("trial_id")[0].as_py())
        return done

    def build(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The consolidated tables as the per-trial files stand, written nowhere."""
        return build_tables(self.tables(), read_errors(self.store.fs, self.store.root))

    def write(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        trials, metrics = self.build()
        meta = read_contract(self.store)
        self.store.write_table(schema.METRICS_FILE, with_metadata(metrics, meta))
        self.store.write_table(schema.TRIALS_FILE, with_metadata(trials, meta))
        return trials, metrics


def restore_trial_files(store: Store, pack_ids: dict[str, str] | None = None) -> int:
    """A results folder whose consolidated tables know finished trials that have no file of
    their own (an exported copy, committed and brought back; trials/ deleted) gets those files
    back from the tables, so a sweep resumes from it without running them again; tables of an
    earlier schema are read through vi_contract.upgrade and the files written as this one.
    `pack_ids` (trial id -> the id of its pack in the study's layout) names the packs of
    trials whose tables did not (schema 2). Returns how many were restored."""
    if not store.exists(schema.TRIALS_FILE) or not store.exists(schema.METRICS_FILE):
        return 0
    table = store.read_table(schema.TRIALS_FILE)
    version = schema.version_of(table.schema.metadata)
    labelled = schema.labelled_of(read_contract(store),
                                  json.loads((table.schema.metadata or {}).get(schema.CONTRACT_KEY, b"{}")))
    trials = table.to_pandas()
    have = {n.removesuffix(".parquet") for n in store.listdir(schema.TRIALS_DIR)}
    missing = trials[trials["status"].isin(schema.FINISHED) & ~trials["trial_id"].isin(have)]
    if missing.empty:
        return 0
    metrics = store.read_table(schema.METRICS_FILE).to_pandas()
    if version != schema.SCHEMA_VERSION:  # an export of an earlier version: its trial files are written as v3
        missing = upgrade.v2_frame(missing, labelled)
        metrics = upgrade.v2_frame(metrics, labelled)
    for _, trial in missing.iterrows():
        rows = metrics[metrics["trial_id"] == trial["trial_id"]].drop(columns="trial_id").dropna(axis=1, how="all")
        present = lambda c: c in trial.index and not _missing(trial[c])  # noqa: E731, B023 - used within the iteration
        settings = {name_of(c): trial[c] for c in trial.index if c.startswith(schema.CONFIG) and present(c)}
        labels = {name_of(c): trial[c] for c in trial.index if c.startswith(schema.AXIS) and present(c)}
        pack = trial.get("pack_id") if present("pack_id") else (pack_ids or {}).get(trial["trial_id"])
        table = trial_table({**settings, "trial_id": trial["trial_id"]}, labels, rows.to_dict("records"), trial["status"],
                            trial["study"], trial.get("search_trial"), pack)
        store.write_table(schema.trial_file(trial["trial_id"]), table)
    return len(missing)


def consolidate(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    return Consolidation(store).write()


def finished_ids(store: Store) -> set[str]:
    return Consolidation(store).finished_ids()


def record_error(store: Store, settings: dict, labels: dict, study: str, message: str, pack: str | None = None,
                 search_trial: int | None = None) -> None:
    blob = {"config": settings, "labels": labels, "study": study, "error": message, "pack_id": pack,
            "search_trial": search_trial}
    store.write_bytes(f"{schema.ERRORS_DIR}/{settings['trial_id']}.json", json.dumps(blob, default=str).encode())


def clear_error(store: Store, tid: str) -> None:
    store.delete(f"{schema.ERRORS_DIR}/{tid}.json")


def pack_of(trials: pd.DataFrame) -> pd.Series:
    """Each trial's pack id (a trial of no pack id, or a table without the column, is a pack of its own)."""
    return trials["pack_id"].fillna(trials["trial_id"]) if "pack_id" in trials else trials["trial_id"]


def pack_hours(trials: pd.DataFrame) -> tuple[float, int]:
    """(hours, packs): the sum of the packs' training wall times (a pack is one Ray trial with the
    study's resources; its members share its wall time, kept across resumes), every pack that
    trained counted, finished or not."""
    if not len(trials):
        return 0.0, 0
    wall = trials["wall_s"] if "wall_s" in trials else pd.Series(float("nan"), index=trials.index)
    packs = wall.groupby(pack_of(trials)).max()
    return float(packs.fillna(0).sum() / 3600), len(packs)
