"""Data sets, keyed by the names study files use.

Every data set draws batches with the trial's own torch.Generator, so a seed fixes every draw.
- ring8: 8 Gaussians, centres on a circle of radius 2, sigma 0.02 (Unrolled GAN, VEEGAN).
- ring8-r1: PacGAN's ring: radius 1, sigma 0.01.
- grid25: 25 Gaussians, centres on the 5x5 grid {-4,-2,0,2,4}^2, sigma 0.05 (VEEGAN, PacGAN).
- digits: scikit-learn's 8x8 digits scaled to [-1, 1], resized to image_size (bilinear).
- stacked-digits: three independent digits as three channels, 1000 modes (Stacked MNIST's
  construction on the 8x8 digits).
- image-folder: a user's folder of images (aligned CelebA for the paper's protocol): centre
  crop `crop`, resize to image_size, [-1, 1], decoded once into a node cache.
Digits are split once (fixed permutation, seed 0): 1297 for training, 500 held out for the
reference classifier's accuracy. Each is declared by name in vi_sweeps.data.declared (no
torch); its builder is the function of its name here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# the registry, the spec, the declarations of the built-in data sets and the folder fingerprint, torch-free
from vi_sweeps.data.declared import (  # noqa: F401 - their former home
    DATASETS,
    IMAGE_SUFFIXES,
    DatasetSpec,
    DataSource,
    _fingerprint,
    folder_fingerprint,
    image_files,
)
from vi_sweeps.data.imagecache import build_or_open

DIGITS_TRAIN = 1297


@dataclass
class Mixture:
    centres: torch.Tensor
    sigma: float
    shape: tuple[int, ...] = (2,)

    @property
    def n_modes(self) -> int:
        return len(self.centres)

    def sample(self, n: int, gen: torch.Generator, device: torch.device | None = None) -> torch.Tensor:
        idx = torch.randint(len(self.centres), (n,), generator=gen)
        return (self.centres[idx] + self.sigma * torch.randn(n, 2, generator=gen)).to(device or "cpu")


@dataclass
class Digits:
    images: torch.Tensor  # the training split, (N, 1, S, S) in [-1, 1]
    labels: torch.Tensor
    stack: int = 1
    n_modes: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_modes = 10**self.stack

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.stack, *self.images.shape[-2:])

    def sample(self, n: int, gen: torch.Generator, device: torch.device | None = None) -> torch.Tensor:
        idx = torch.randint(len(self.images), (n, self.stack), generator=gen)
        return self.images[idx, 0].to(device or "cpu")


class ImageFolder:
    """A user's folder of images through the node's decode-once cache (vi_sweeps.data.imagecache).
    Batches are index draws on the trial's CPU generator (so CPU and GPU runs draw the same
    images) gathered from the cached uint8 array: in device memory when it fits, else from
    pinned memory with non-blocking copies. All packs and trials of a process share one copy."""

    _resident: dict = {}  # (cache file, device) -> uint8 tensor, per process

    def __init__(self, cache):
        self.cache = cache
        self.n_modes = 0
        self.shape = (3, cache.meta["image_size"], cache.meta["image_size"])
        if cache.meta["count"] == 0:
            raise FileNotFoundError("image-folder: no readable images")

    def __len__(self) -> int:
        return self.cache.meta["count"]

    def images(self, device: torch.device | None = None) -> torch.Tensor:
        device = torch.device(device or "cpu")
        key = (str(self.cache.path), str(device))
        if key not in self._resident:
            host = torch.from_numpy(self.cache.array)
            if device.type == "cuda":
                fits = host.numel() < 0.5 * torch.cuda.mem_get_info(device)[0]
                host = host.to(device) if fits else host.pin_memory()
            self._resident[key] = host
        return self._resident[key]

    def sample(self, n: int, gen: torch.Generator, device: torch.device | None = None) -> torch.Tensor:
        idx = torch.randint(len(self), (n,), generator=gen)
        source = self.images(device)
        batch = source.index_select(0, idx.to(source.device)).to(device or "cpu", non_blocking=True)
        # in place, as `batch.float() / 127.5 - 1` computes it: temporaries of a memory-mapped
        # source's batch cost 10x the gather (2.2 vs 0.23 ms a batch of 64 at 64 px here)
        return batch.float().div_(127.5).sub_(1.0)


def describe_mixture(cfg) -> dict:
    """What the analysis needs to draw samples over the true modes (no torch there)."""
    data = build_dataset(cfg)
    return {"kind": "mixture", "centres": data.centres.tolist(), "sigma": data.sigma}


def ring(radius: float, sigma: float) -> Mixture:
    angles = torch.arange(8, dtype=torch.float32) * (2 * math.pi / 8)
    return Mixture(torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], 1), sigma)


def ring8(cfg) -> Mixture:
    return ring(2.0, 0.02)


def ring8_r1(cfg) -> Mixture:
    """PacGAN's ring (its synthetic_data_experiments/2DRing config): radius 1, sigma 0.01."""
    return ring(1.0, 0.01)


def grid25(cfg) -> Mixture:
    ticks = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
    centres = torch.cartesian_prod(ticks, ticks)
    return Mixture(centres, 0.05)


def digits_split(image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, held-out images, held-out labels), fixed for all time."""
    from sklearn.datasets import load_digits  # costly: 2 s at import, in every Ray worker, for the digits only

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.from_numpy(np.random.RandomState(0).permutation(len(x)))
    tr, te = order[:DIGITS_TRAIN], order[DIGITS_TRAIN:]
    return x[tr], y[tr], x[te], y[te]


def digits(cfg) -> Digits:
    x, y, _, _ = digits_split(cfg.image_size)
    return Digits(x, y, stack=1)


def stacked_digits(cfg) -> Digits:
    x, y, _, _ = digits_split(cfg.image_size)
    return Digits(x, y, stack=3)


def image_cache(cfg, progress: bool = False):
    files = image_files(cfg.data_root)
    if not files:
        raise FileNotFoundError(f"data_root: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {cfg.data_root}")
    return build_or_open(files, folder_fingerprint(cfg), cfg.image_size, cfg.crop, cfg.skip_bad_images, progress)


def prepare_image_folder(cfg) -> None:
    """Once per sweep, in the driver: build the image cache (with a progress line), so no
    trial waits for it (its evaluator's FID weights are checked by the evaluator's own hook)."""
    image_cache(cfg, progress=True)


def image_folder(cfg) -> ImageFolder:
    return ImageFolder(image_cache(cfg))


def build_dataset(cfg) -> DataSource:
    return DATASETS.get(cfg.dataset)(cfg)
