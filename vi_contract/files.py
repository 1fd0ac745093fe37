"""Where results live and how they are read and written, for the writer and the readers
alike: a folder path or URI opened with pyarrow (local disks and object storage), a Parquet
read that survives a concurrent rewrite on object storage, and what exit code a failed write
earns (a full disk is the machine's fault, not the user's)."""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

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


def subfolder(location: str, *parts: str) -> str:
    """A folder inside `location`, a path or a URI: the parts go before a URI's query string
    (s3://b/p?endpoint_override=...: p/tune, not the query's last value/tune)."""
    base, mark, query = location.partition("?") if "://" in location else (location, "", "")
    return posixpath.join(base.rstrip("/") or base, *parts) + mark + query


def report_folder(location: str) -> str:
    """Where the report of `location` goes when no folder is named: RESULTS/report for a local
    folder; for results on object storage, whose report is written as local files,
    report-BUCKET-PATH-HASH in the working directory (the URI's bucket and path joined by '-', any
    other character than letters, digits, '.', '_' and '-' as '_', at most 80 characters, and 8 hex
    digits of the whole URI's SHA-256, so that no two URIs share a folder: s3://b/x-y and
    s3://b/x/y, gs:// and s3://, two endpoints). Before, a local path was made of the URI
    (`s3:/bucket/sweep?endpoint_override=.../report`), and then report-NAME of its last part
    alone, one folder for s3://b/x/sweep and s3://b/y/sweep."""
    if location.startswith("file://"):  # a local folder, written as a URI
        location = location.removeprefix("file://").partition("?")[0]
    if "://" not in location:
        return f"{location}/report"
    parts = [p for p in location.partition("?")[0].split("://", 1)[1].split("/") if p]
    readable = "-".join(re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in parts)[:80] or "results"
    return f"report-{readable}-{hashlib.sha256(location.encode()).hexdigest()[:8]}"


class StillChanging(OSError):
    """A file that did not parse while it was being replaced: no evidence that it is corrupt."""


RECENT_NS = 5 * 10**9  # object stores stamp modification to the second: a file this recent may still be moving


def _stamp(fs: pafs.FileSystem, path: str) -> tuple[int, int] | None:
    try:
        info = fs.get_file_info(path)
    except OSError:
        return None
    return (info.mtime_ns or 0, info.size or 0) if info.type == pafs.FileType.File else None


def read_parquet(fs: pafs.FileSystem, path: str, columns: list[str] | None = None, tries: int = 4) -> pa.Table:
    """A Parquet file, read whole. On object storage a reader that sizes an object and then
    fetches it can meet a newer version in between (a trial file rewritten at an evaluation)
    and see bytes that do not parse; so an unparsable read is tried again, and a file that
    still fails is taken for corrupt only if it held still: the bytes read are its whole
    current size, its stamp did not move while it was read, and (on object storage, whose
    stamps are to the second) it was last written more than a few seconds ago. Otherwise
    StillChanging (an OSError: not read this time) is raised."""
    for attempt in range(tries):
        before, blob = _stamp(fs, path), b""
        try:
            with fs.open_input_stream(path) as f:
                blob = f.read()
            return pq.read_table(pa.BufferReader(blob), columns=columns)
        except FileNotFoundError:
            raise
        except (pa.ArrowInvalid, OSError) as err:
            if attempt < tries - 1:
                time.sleep(0.1 * (attempt + 1))
                continue
            if not isinstance(err, pa.ArrowInvalid):
                raise
            after = _stamp(fs, path)
            if (after is None or before != after or after[1] != len(blob)
                    or (not isinstance(fs, pafs.LocalFileSystem) and after[0] > time.time_ns() - RECENT_NS)):
                raise StillChanging(f"{path} changed while it was read") from None
            raise
    raise ValueError(f"tries must be at least 1, got {tries}")


def write_problem(path: str, want: str = "file") -> str | None:
    """Why a local `path` cannot be written as a `want` ("file" or "folder"), or None when it
    can: the one check of every output the commands write (a trial's rows, a weights file, a
    results folder). Creates nothing."""
    if not str(path).strip():
        return "an empty path"
    if want == "file" and str(path).endswith(("/", os.sep)):
        return f"{path} names a folder (it ends with /), not a file"
    try:
        target = Path(path).expanduser().absolute()
        if want == "file" and target.is_symlink():  # replacing it would replace the link, not its target
            return f"{target} is a symbolic link; name the file it points to"
        existing = next(p for p in [target, *target.parents] if p.exists())
    except (RuntimeError, ValueError, OSError) as err:  # ~nosuchuser, a NUL byte
        return f"not a usable {want} path ({err})"
    if existing == target:
        if want == "file" and target.is_dir():
            return f"{target} is a folder"
        if want == "file" and not target.is_file():  # a device, a FIFO, a socket: never replaced by a file
            return f"{target} is not a regular file"
        if want == "folder" and not target.is_dir():
            return f"{target} is a file, not a folder"
        writable = target if want == "folder" else target.parent
    elif not existing.is_dir():
        return f"{existing} is a file, not a folder"
    else:
        writable = existing
    if not os.access(writable, os.W_OK | os.X_OK):
        return f"{writable} is not writable"
    return None
