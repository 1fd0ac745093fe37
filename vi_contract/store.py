"""Every result and checkpoint goes through a pyarrow filesystem, so RESULTS may be a local
folder or a URI (s3://, gs://, ...). Writes are atomic where the filesystem allows: a temporary
name, then a move, so a crash never leaves a half-written file under the final name, and a
failed write (a full disk, say) removes its temporary file and raises one StoreError naming
the path."""

from __future__ import annotations

import errno
import posixpath
import re
import shutil
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vi_contract.files import open_location, read_parquet


class StoreError(OSError):
    """A write or read of the results store failed; the message names the path."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _free_space(path: str) -> str:
    try:
        return f"{shutil.disk_usage(posixpath.dirname(path) or '/').free / 2**20:.1f} MiB free"
    except OSError:
        return "free space unknown"


TEMP_MARK = ".tmp-"  # a write in progress: FINAL.tmp-<8 hex>, moved to FINAL when whole
TEMPORARY = re.compile(re.escape(TEMP_MARK) + r"[0-9a-f]{8}$")


@dataclass(frozen=True)
class Store:
    fs: pafs.FileSystem
    root: str
    uri: str

    @classmethod
    def open(cls, location: str, create: bool = True) -> Store:
        """A writer's store (the folder is created) or, with create=False, a reader's: a
        location that does not exist raises FileNotFoundError and nothing is created."""
        fs, root = open_location(location)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File:
            raise NotADirectoryError(f"{location} is a file, not a results folder")
        if info.type == pafs.FileType.NotFound:
            if not create:
                raise FileNotFoundError(f"{location}: no such results folder")
            fs.create_dir(root, recursive=True)
        # A local folder is named by its absolute path: Ray workers run in their own working
        # directory, so a relative name handed to them would write somewhere else.
        uri = location if "://" in location else root
        return cls(fs, root, uri)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def listdir(self, *parts: str) -> list[str]:
        sel = pafs.FileSelector(self.path(*parts), allow_not_found=True)
        return sorted(posixpath.basename(i.path) for i in self.fs.get_file_info(sel)
                      if i.type == pafs.FileType.File and TEMP_MARK not in i.path)

    def remove_leftovers(self) -> list[str]:
        """Delete the temporary files of writes that never finished (a driver or worker killed
        between writing and moving; on object storage the move is a copy, so the window is
        wide) and return their paths. Only for the driver holding the lease, before it starts
        any trial: no writer of this folder is alive then, and a stray one would only lose a
        write its trial redoes."""
        sel = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        left = [i.path for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File
                and TEMPORARY.search(posixpath.basename(i.path))]
        for path in left:
            try:
                self.fs.delete_file(path)
            except (OSError, pa.ArrowException):
                pass  # gone meanwhile
        return left

    def _atomic(self, final: str, write) -> None:
        tmp = f"{final}{TEMP_MARK}{uuid.uuid4().hex[:8]}"
        try:
            self.fs.create_dir(posixpath.dirname(final), recursive=True)
            write(tmp)
            self.fs.move(tmp, final)
        except (OSError, pa.ArrowException) as err:
            try:
                self.fs.delete_file(tmp)
            except (OSError, pa.ArrowException):
                pass
            full = getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err)
            why = f"no space left on the device ({_free_space(final)})" if full else str(err)
            raise StoreError(errno.ENOSPC if full else getattr(err, "errno", None) or errno.EIO,
                             f"cannot write {final}: {why}") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        def write(tmp: str) -> None:
            with self.fs.open_output_stream(tmp) as out:
                out.write(data)

        self._atomic(self.path(rel), write)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def write_table(self, rel: str, table: pa.Table) -> None:
        self._atomic(self.path(rel), lambda tmp: pq.write_table(table, tmp, filesystem=self.fs))

    def read_table(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        return read_parquet(self.fs, self.path(rel), columns)

    def delete(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_file(self.path(rel))

    def quarantine(self, rel: str) -> str:
        """Move a corrupt file aside to quarantine/ (never deleted); returns where it went."""
        dest = f"quarantine/{rel}.{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        self.fs.create_dir(posixpath.dirname(self.path(dest)), recursive=True)
        self.fs.move(self.path(rel), self.path(dest))
        return dest
