"""Publishing a folder whole (a report, an export): built beside its destination, then renamed
into place, the previous one moved aside and removed after, so a reader never sees half a
report; folders a killed process left are cleaned up, and a destination that holds anything no
report wrote, or a results folder, is refused."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import tempfile
from pathlib import Path

from vi_contract.lease import pid_alive
from vi_contract.read import ResultsError

REPORT_FILES = (".png", ".svg", ".csv", ".md", ".html")  # what a report folder holds


def check_destination(final: Path, locations: list[str], option: str, kinds: tuple[str, ...]) -> None:
    """A folder that will be replaced whole must be new, empty or a previous one of its kind
    (only files ending in `kinds`), and must not be, hold or sit inside a results folder read."""
    if final.exists() and not final.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(final))
    for location in locations:
        if "://" in location:
            continue
        source = Path(location).expanduser().resolve()
        if final.resolve() == source or final.resolve() in source.parents:
            raise ResultsError(f"{option} {final}: is or holds the results folder {location}; pick another folder")
    if final.is_dir():
        foreign = [p.name for p in final.iterdir() if p.is_dir() or not p.name.endswith(kinds)]
        if foreign:
            raise ResultsError(f"{option} {final}: holds {', '.join(sorted(foreign)[:3])}, which no report wrote; "
                               "it would be replaced whole, so pick a new folder")


def new_folder_beside(final: Path) -> Path:
    """An empty folder beside `final`, with the permissions a new folder gets (mkdtemp's are 0700).
    Its name says which process builds it, so that a later call can tell a folder left by a
    killed process from one a live process is still writing (remove_stale_beside, which the
    callers run before they check the destination)."""
    building = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-{owner()}-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(building, 0o777 & ~umask)
    return building


def owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def remove_stale_beside(final: Path) -> list[Path]:
    """The folders a killed report or export left beside `final` (SIGKILL runs no `finally`):
    a half-built `.NAME.building-HOST-PID-*` is removed, and a `.NAME.old-HOST-PID` (the
    previous folder, moved aside just before the new one took its name) is put back where no
    `final` exists, else removed. Only this host's folders of processes that are gone are
    touched; a folder another process is writing is left alone. Returns what was removed."""
    host = socket.gethostname()
    removed = []
    if not final.parent.is_dir():
        return removed
    for path in sorted(final.parent.glob(f".{glob.escape(final.name)}.*-*")):
        kind, _, rest = path.name[len(final.name) + 2:].partition("-")
        if kind == "building":
            rest = rest.rpartition("-")[0]  # mkdtemp's random part has no '-'
        elif kind != "old":
            continue
        owner, _, pid = rest.rpartition("-")
        if owner != host or not pid.isdigit() or pid_alive(int(pid)) or not path.is_dir():
            continue
        try:
            if kind == "old" and not final.exists():
                os.replace(path, final)
                continue
            shutil.rmtree(path)
            removed.append(path)
        except OSError:  # another user's folder, or another process cleaning up the same one
            continue
    return removed


def replace_folder(new: Path, final: Path) -> None:
    """`new` renamed to `final`, the old `final` (if any) out of the way first and removed
    after; if the rename fails the old one is put back."""
    old = final.with_name(f".{final.name}.old-{owner()}") if final.exists() or final.is_symlink() else None
    if old is not None:
        os.replace(final, old)
    try:
        os.replace(new, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None and old.is_symlink():  # a link to the previous report: the link goes, its target stays
        old.unlink()
    elif old is not None:
        shutil.rmtree(old, ignore_errors=True)

