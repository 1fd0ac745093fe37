"""TensorBoard on request (`vi-sweep run --tensorboard`): at every evaluation, each trial's
declared loss and metric keys as scalars and its sample snapshot as an image, through
tensorboardX, one run per trial named by its axes and seed. The results contract does not
depend on it; it is a window for people who watch runs there."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from tensorboardX import SummaryWriter

SIDE = 256


def points_image(points: np.ndarray, side: int = SIDE) -> np.ndarray:
    """2-D samples drawn as dark pixels on white, axes fixed to the samples' own range."""
    img = np.full((side, side, 3), 255, dtype=np.uint8)
    finite = points[np.isfinite(points).all(1)].astype(np.float64)
    if len(finite):
        lim = max(1.0, float(np.abs(finite).max()) * 1.05)
        px = np.clip(((finite + lim) / (2 * lim) * (side - 1)).round().astype(int), 0, side - 1)
        img[side - 1 - px[:, 1], px[:, 0]] = (0, 114, 178)
    return img


def snapshot_image(suffix: str, data: bytes) -> np.ndarray:
    """A sample snapshot (vi_sweeps.engine.trial.snapshot) as an HWC uint8 image."""
    if suffix == ".npy":
        return points_image(np.load(io.BytesIO(data)))

    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return img


class Board:
    """One tensorboardX writer per trial, opened on its first evaluation."""

    def __init__(self, logdir: str):
        self.logdir, self.writers = logdir, {}

    def write(self, tid: str, name: str, config: dict, row: dict, snapshot: tuple[str, bytes]) -> None:
        if tid not in self.writers:
            self.writers[tid] = SummaryWriter(logdir=f"{self.logdir.rstrip('/')}/{name}")
            self.writers[tid].add_text("config", "  \n".join(f"{k}: {v}" for k, v in sorted(config.items())), 0)
        writer, step = self.writers[tid], int(row["step"])
        for key, value in row.items():
            if key.startswith(("loss/", "eval/")) and value == value:
                writer.add_scalar(key, float(value), step)
        writer.add_scalar("eval/collapsed", float(row["collapsed"]), step)
        writer.add_image("samples", snapshot_image(*snapshot), step, dataformats="HWC")
        writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
