"""Per-trial files -> the two tables of the contract (analysis/schema.py), with pyarrow and
pandas alone: the driver writes trials.parquet and metrics.parquet with it, and readers use it
to see a running sweep as it is, never a stale consolidation.

`TrialFiles` lists trials/ once per call and re-reads only the files whose size or
modification time changed since the last call, so a driver that consolidates every 30 s does
not re-read 10,000 unchanged files. A file that cannot be read as Parquet (truncated,
corrupt) is skipped and reported in `corrupt`; the driver moves such files to quarantine/,
readers say which ones they skipped.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analysis import schema

RECENT_NS = 5 * 10**9
CORRUPT = object()


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has that pid (a driver's lease, a report's building folder)."""
    if pid <= 0:  # 0 and -1 would ask about a process group, not a driver
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


RESOURCE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)  # the machine failed, not the input


def exit_code_for(err: OSError) -> int:
    """A write that failed: 1 when the machine ran out (a full disk, a quota, an I/O error),
    2 when the destination is bad input (no permission, a file in the way)."""
    return 1 if err.errno in RESOURCE_ERRNOS else 2


class LocationError(ValueError):
    """A location that is neither a folder path nor a URI pyarrow can open."""


def open_location(location: str) -> tuple[pafs.FileSystem, str]:
    """A folder path or a URI (s3://, gs://, file://) -> (filesystem, root path)."""
    try:
        if "://" not in location:
            location = str(Path(location).expanduser().resolve())
        return pafs.FileSystem.from_uri(location)
    except (RuntimeError, ValueError, pa.ArrowInvalid) as err:  # ~nosuchuser, a NUL byte, foo://, "://"
        raise LocationError(f"{location}: not a folder or a URI pyarrow can open ({err}); valid: a path, "
                            "s3://BUCKET/PATH, gs://BUCKET/PATH, file:///PATH") from None


def read_parquet(fs: pafs.FileSystem, path: str, columns: list[str] | None = None, tries: int = 4) -> pa.Table:
    """A Parquet file, read whole. On object storage a reader that sizes an object and then
    fetches it can meet a newer version in between (a trial file rewritten at an evaluation)
    and see bytes that do not parse; so an unparsable read is tried again, and only a file
    that fails every time is taken for corrupt."""
    def read() -> pa.Table:
        with fs.open_input_stream(path) as f:
            return pq.read_table(pa.BufferReader(f.read()), columns=columns)

    for attempt in range(tries - 1):
        try:
            return read()
        except FileNotFoundError:
            raise
        except (pa.ArrowInvalid, OSError):
            time.sleep(0.1 * (attempt + 1))
    return read()


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


@dataclass
class TrialFiles:
    fs: pafs.FileSystem
    root: str
    cache: dict[str, tuple[tuple[int, int], pa.Table]] = field(default_factory=dict)
    corrupt: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)  # could not be read this time (permissions, the store)

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
        self.corrupt, self.unread = [], []
        for name, table in zip(stale, fresh, strict=True):
            if table is CORRUPT:
                self.corrupt.append(name)
                self.cache.pop(name, None)
            elif table is not None:
                self.cache[name] = (current[name], table)
            elif name not in self.cache:  # None: not read now; what was read before stands until the next call
                self.unread.append(name)
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


def read_errors(fs: pafs.FileSystem, root: str, skipped: list[str] | None = None) -> list[dict]:
    """The error records of errored trials; one that is unreadable or not a record is left
    out and named in `skipped`."""
    folder = posixpath.join(root, schema.ERRORS_DIR)
    out = []
    for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
        if info.type == pafs.FileType.File and info.path.endswith(".json"):
            try:
                with fs.open_input_stream(info.path) as f:
                    blob = json.loads(f.read())
                if not (isinstance(blob, dict) and isinstance(blob.get("config"), dict) and "trial_id" in blob["config"]
                        and isinstance(blob.get("labels", {}), dict)):
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
    trials["error"] = ""
    done = set(trials.loc[trials["status"].isin(schema.FINISHED), "trial_id"])
    errored = []
    for blob in errors:
        tid = blob["config"]["trial_id"]
        if tid in done:
            continue
        steps = trials.loc[trials["trial_id"] == tid, "steps_done"]
        errored.append({**blob["config"], **blob["labels"], "trial_id": tid, "study": blob["study"],
                        "status": "error", "error": blob["error"], "search_trial": blob.get("search_trial", -1),
                        "pack": blob.get("pack", 1), "steps_done": int(steps.iloc[0]) if len(steps) else 0,
                        "collapsed": False, "diverged": False})
    if errored:
        frame = pd.DataFrame(errored)
        trials = pd.concat([trials[~trials["trial_id"].isin(frame["trial_id"])], frame], ignore_index=True)
    trials = trials.sort_values(["study", "trial_id"]).reset_index(drop=True)
    return trials, metrics


def with_metadata(frame: pd.DataFrame, contract: dict) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.replace_schema_metadata({schema.SCHEMA_KEY: schema.SCHEMA_VERSION.encode(),
                                          schema.CONTRACT_KEY: json.dumps(contract).encode()})
