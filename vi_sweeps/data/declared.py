"""What the data sets declare, without torch: the registry, the spec of each built-in data set
(its builder a "module:function" reference into vi_sweeps.data.datasets, imported at its first
use), the content fingerprint of an image folder (part of a trial's id, so computed when a
study is checked) and the config keys the data sets read."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from vi_sweeps.core.registry import Lazy, Registry
from vi_sweeps.core.settings import Setting, declare

if TYPE_CHECKING:
    import torch


@runtime_checkable
class DataSource(Protocol):
    """What a data set's builder (`cfg -> DataSource`) returns, the one contract of the 2-D
    mixtures, the digits and image folders: its sample shape, its number of modes (0: none
    counted) and batches drawn with the member's own generator, so a seed fixes every draw."""

    shape: tuple[int, ...]
    n_modes: int

    def sample(self, n: int, gen: torch.Generator, device: torch.device | None = None) -> torch.Tensor:
        """(n, *shape) real samples, drawn with `gen` (a CPU generator), on `device`."""
        ...


@dataclass(frozen=True)
class DatasetSpec:
    """What a data set declares at its registration, checked there: its kind (vector or image:
    which architectures fit), the evaluator that scores it (vi_sweeps.metrics.evaluators), the config keys
    it needs set, and optional hooks: `describe(cfg)` (its geometry, for sample plots),
    `fingerprint(cfg)` (its content, in the trial id), `prepare(cfg)` (built once before trials)."""

    kind: str
    evaluator: str
    requires: tuple[str, ...] = ()
    describe: Callable | None = None
    fingerprint: Callable | None = None
    prepare: Callable | None = None

    def __post_init__(self):
        if self.kind not in ("vector", "image"):
            raise TypeError(f"kind: 'vector' or 'image', not {self.kind!r}")
        if not isinstance(self.evaluator, str) or not self.evaluator:
            raise TypeError("evaluator: the name of a registered evaluator")

    def problems(self, cfg, name: str) -> list[str]:
        return [f"{key}: {name} needs it set" for key in self.requires if not getattr(cfg, key)]


DATASETS = Registry("dataset", spec=DatasetSpec)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def image_files(data_root: str) -> list[Path]:
    try:
        root = Path(data_root).expanduser()
        readable = root.is_dir()
    except (RuntimeError, ValueError, OSError):  # ~nosuchuser, a NUL byte, a name too long
        readable = False
    if not readable:
        raise FileNotFoundError(f"data_root: {data_root!r} is not a readable folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


@functools.cache
def _fingerprint(data_root: str) -> str:
    files = image_files(data_root)
    listing = "\n".join(f"{p.relative_to(data_root).as_posix()}\t{p.stat().st_size}" for p in files)
    return f"{len(files)}:{hashlib.sha256(listing.encode()).hexdigest()[:16]}"


def folder_fingerprint(cfg) -> str:
    """The identity of an image folder: its file count and a hash of every image's relative
    name and size. The same images give the same trial ids wherever the folder is mounted."""
    try:  # a folder that cannot be read is named before its path is resolved
        readable = Path(cfg.data_root).expanduser().is_dir()
    except (RuntimeError, ValueError, OSError):
        readable = False
    if not readable:
        raise FileNotFoundError(f"data_root: {cfg.data_root!r} is not a readable folder")
    return _fingerprint(str(Path(cfg.data_root).expanduser().resolve()))


def _built(name: str) -> str:
    return f"vi_sweeps.data.datasets:{name}"


_mixture = {"describe": Lazy(_built("describe_mixture"))}
DATASETS.declare("ring8", DatasetSpec("vector", "mixture", **_mixture), _built("ring8"))
DATASETS.declare("ring8-r1", DatasetSpec("vector", "mixture", **_mixture), _built("ring8_r1"))
DATASETS.declare("grid25", DatasetSpec("vector", "mixture", **_mixture), _built("grid25"))
DATASETS.declare("digits", DatasetSpec("image", "digits"), _built("digits"))
DATASETS.declare("stacked-digits", DatasetSpec("image", "digits"), _built("stacked_digits"))
DATASETS.declare("image-folder", DatasetSpec("image", "inception", requires=("data_root",), fingerprint=folder_fingerprint,
                                             prepare=Lazy(_built("prepare_image_folder"))), _built("image_folder"))

# the config keys of the data sets (their order in TrialConfig: vi_sweeps.study.config)
declare("data sets",
        Setting("image_size", Literal[8, 16, 32, 64], 16, "side of image data in pixels"),
        Setting("crop", int, 108, "image-folder centre crop before resizing (0: none)", bounds={"ge": 0, "le": 100_000}),
        Setting("data_root", str, "", "image-folder: the folder of images (e.g. aligned CelebA); identity is its "
                "content fingerprint", kind="execution"),
        Setting("skip_bad_images", bool, False, "image-folder: leave unreadable images out (counted) instead of "
                "stopping", kind="added"))
