"""FID's Inception weights placed where trials find them (`vi-sweep fetch-weights`): downloaded
or copied from a file (nodes without internet), checked against their sha256 before they are
moved into place, so a wrong file is never every trial's FID."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from vi_contract.files import write_problem
from vi_sweeps.core.errors import ConfigError
from vi_sweeps.metrics.evaluators import INCEPTION_FILE, INCEPTION_URL, default_weights_path


class WeightsMismatch(ValueError):
    """The file fetched is not the weights asked for; nothing was written."""


class FetchFailed(OSError):
    """The download or the copy failed (the network, the disk); nothing was written."""


def expected_digest(prefix: str | None) -> str:
    """The sha256 prefix asked for: the given one, or the one torch-fidelity's file name carries."""
    return (prefix or INCEPTION_FILE.rsplit("-", 1)[1].removesuffix(".pth")).lower()


def fetch_weights(url: str | None = None, source: str | None = None, dest: str | None = None,
                  digest_prefix: str | None = None) -> tuple[Path, str]:
    """(where the weights are now, their sha256). Raises ConfigError for a destination that
    cannot be written, WeightsMismatch for a file of another digest, FetchFailed for a download
    or copy that failed."""
    if dest is not None and not dest.strip():
        raise ConfigError("--to", ["an empty path; name the weights file, or leave --to out for "
                                   f"torch-fidelity's cache ({default_weights_path()})"])
    problem = write_problem(dest) if dest else None
    if problem:
        raise ConfigError("--to", [f"{dest}: cannot be written there ({problem})"])
    target = Path(dest).expanduser().absolute() if dest else default_weights_path()
    problem = write_problem(str(target))
    if problem and dest is None:
        raise FetchFailed(f"cannot fetch the weights to {target}: {problem}")
    expected = expected_digest(digest_prefix)
    fd, fetched = tempfile.mkstemp(suffix=".part")  # outside the destination: nothing there until it is checked
    os.close(fd)
    tmp = None
    try:
        if source:
            shutil.copyfile(source, fetched)
        else:
            torch.hub.download_url_to_file(url or INCEPTION_URL, fetched, progress=sys.stderr.isatty())
        digest = hashlib.sha256(Path(fetched).read_bytes()).hexdigest()
        if not digest.startswith(expected):  # a copy too: garbage there would be every trial's FID
            where = f"--from {source}" if source else f"--url {url or INCEPTION_URL}"
            raise WeightsMismatch(f"{where}: not the weights asked for (sha256 {digest[:8]}..., expected {expected}..., "
                                  f"{'--sha256' if digest_prefix else 'torch-fidelity Inception'}); nothing written")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        os.close(fd)
        shutil.copyfile(fetched, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # readable as any new file is (mkstemp's are 0600): a shared disk's workers read it
        os.replace(tmp, target)
    except OSError as err:
        raise FetchFailed(f"cannot fetch the weights to {target}: {err}") from None
    finally:
        Path(fetched).unlink(missing_ok=True)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return target, digest
