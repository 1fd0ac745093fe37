"""Every result and checkpoint goes through a pyarrow filesystem, so RESULTS may be a local
folder or a URI (s3://, gs://, ...). Writes are atomic where the filesystem allows: a temporary
name, then a move, so a crash never leaves a half-written file under the final name."""

from __future__ import annotations

import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Store:
    fs: pafs.FileSystem
    root: str
    uri: str

    @classmethod
    def open(cls, location: str) -> Store:
        if "://" not in location:
            location = str(Path(location).expanduser().resolve())
        fs, root = pafs.FileSystem.from_uri(location)
        fs.create_dir(root, recursive=True)
        return cls(fs, root, location)

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
                      if i.type == pafs.FileType.File and ".tmp-" not in i.path)

    def _atomic(self, final: str, write) -> None:
        self.fs.create_dir(posixpath.dirname(final), recursive=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        write(tmp)
        self.fs.move(tmp, final)

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

    def read_table(self, rel: str) -> pa.Table:
        return pq.read_table(self.path(rel), filesystem=self.fs)

    def delete(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_file(self.path(rel))
