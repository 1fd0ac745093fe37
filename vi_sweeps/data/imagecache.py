"""Decode once: an image folder, preprocessed (centre crop, resize, uint8 CHW), as one array on
disk that every trial on the node memory-maps.

The cache is keyed by the folder's content fingerprint and the preprocessing, so a changed file
builds a new cache and a moved folder reuses the old one. The first process to need it builds
it under a file lock (others wait, then open it), writes it to a temporary name and renames it,
and writes its metadata last: a cache with metadata is complete. An unreadable image stops the
build with one error naming the file, unless `skip_bad_images` is set, which leaves it out and
counts it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image

from vi_sweeps.core.paths import cache_dir

CACHE_VERSION = 1


class BadImage(ValueError):
    """An image that cannot be decoded; the message names the file and the way out."""


def preprocess(path: Path, image_size: int, crop: int) -> np.ndarray:
    """The one definition of the preprocessing: RGB, centre crop `crop` (0: the largest
    square), bilinear resize to image_size, as uint8 (3, S, S)."""

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        c = min(crop or min(w, h), w, h)
        left, top = (w - c) // 2, (h - c) // 2
        img = img.crop((left, top, left + c, top + c))
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.array(img, dtype=np.uint8).transpose(2, 0, 1)


@dataclass
class ImageCache:
    path: Path
    meta: dict

    @property
    def array(self) -> np.ndarray:
        """(N, 3, S, S) uint8, memory-mapped copy-on-write (never written back)."""
        n, s = self.meta["count"], self.meta["image_size"]
        return np.memmap(self.path, dtype=np.uint8, mode="c", shape=(n, 3, s, s))


def _decode_all(files: list[Path], image_size: int, crop: int, out: np.ndarray, skip_bad: bool,
                progress: bool) -> list[str]:
    """Decode every file into `out` (in order, bad ones left out when skipping); returns the
    skipped files."""

    def decode(path: Path):
        try:
            return preprocess(path, image_size, crop)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            if not skip_bad:
                raise BadImage(f"image-folder: cannot read {path}: {err}; remove it, or set "
                               "skip_bad_images: true to leave unreadable images out") from None
            return None

    skipped, row, start, last = [], 0, time.monotonic(), 0.0
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:  # PIL decodes without the GIL
        for i, image in enumerate(pool.map(decode, files, chunksize=64)):
            if image is None:
                skipped.append(str(files[i]))
            else:
                out[row] = image
                row += 1
            now = time.monotonic()
            if progress and (now - last > 2 or i + 1 == len(files)):
                last = now
                rate = (i + 1) / max(now - start, 1e-9)
                print(f"\rimage cache: {i + 1:,}/{len(files):,} images, {rate:,.0f}/s, "
                      f"ETA {(len(files) - i - 1) / rate:,.0f} s", end="" if i + 1 < len(files) else "\n",
                      file=sys.stderr, flush=True)
    return skipped


def build_or_open(files: list[Path], fingerprint: str, image_size: int, crop: int, skip_bad: bool,
                  progress: bool = False) -> ImageCache:

    folder = cache_dir() / "images"
    folder.mkdir(parents=True, exist_ok=True)
    key = f"v{CACHE_VERSION}-{fingerprint.replace(':', '-')}-{image_size}px-crop{crop}{'-skipbad' if skip_bad else ''}"
    data, meta_path = folder / f"{key}.u8", folder / f"{key}.json"
    if meta_path.exists():
        return ImageCache(data, json.loads(meta_path.read_text()))
    with FileLock(str(folder / f"{key}.lock")):
        if meta_path.exists():  # another process built it while this one waited
            return ImageCache(data, json.loads(meta_path.read_text()))
        tmp = folder / f"{key}.u8.tmp-{os.getpid()}"
        try:
            out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(len(files), 3, image_size, image_size))
            skipped = _decode_all(files, image_size, crop, out, skip_bad, progress)
            count = len(files) - len(skipped)
            out.flush()
            del out
            os.truncate(tmp, count * 3 * image_size * image_size)  # rows are contiguous: keep the decoded ones
            os.replace(tmp, data)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {"count": count, "image_size": image_size, "crop": crop, "fingerprint": fingerprint,
                "skipped": skipped, "built_by": f"{os.uname().nodename}:{os.getpid()}", "built_at": time.time()}
        meta_tmp = meta_path.with_suffix(f".json.tmp-{os.getpid()}")
        meta_tmp.write_text(json.dumps(meta))
        os.replace(meta_tmp, meta_path)
        if skipped:
            print(f"image cache: left out {len(skipped)} unreadable image(s), e.g. {skipped[0]}", file=sys.stderr)
        return ImageCache(data, meta)
