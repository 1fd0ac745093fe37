"""The reference classifier for digits and stacked-digits: a small CNN trained here on the
training split of scikit-learn's 8x8 digits, checked on the 500 held-out digits.

It is the feature space of `fd_digits` and the labeller of modes. Training is deterministic
(seed 0, one thread) and the weights are cached on disk (VI_SWEEPS_CACHE, default
~/.cache/vi-sweeps), keyed by image size and version, written atomically so that concurrent
trials can share the cache.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from vi_sweeps.core.paths import cache_dir
from vi_sweeps.data.datasets import digits_split

VERSION = 1
MIN_ACCURACY = 0.97


class DigitsCNN(nn.Module):
    def __init__(self, image_size: int):
        super().__init__()
        side = image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def train_reference_classifier(image_size: int, epochs: int = 40) -> tuple[DigitsCNN, float]:
    """Returns the trained net and its held-out accuracy. Light augmentation (one-pixel
    shifts at 8 px scale) keeps it honest on generated digits."""
    x, y, x_test, y_test = digits_split(image_size)
    with one_thread():
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        net = DigitsCNN(image_size)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        shift = max(1, image_size // 8)
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for idx in order.split(64):
                dx, dy = torch.randint(-shift, shift + 1, (2,), generator=gen).tolist()
                batch = torch.roll(x[idx], shifts=(dy, dx), dims=(2, 3))
                loss = F.cross_entropy(net(batch), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        return net, accuracy(net, x_test, y_test)


@cache
def reference_classifier(image_size: int) -> DigitsCNN:
    path = cache_dir() / f"digits-cnn-{image_size}px-v{VERSION}.pt"
    net = DigitsCNN(image_size)
    if path.exists():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net.eval()
    net, acc = train_reference_classifier(image_size)
    if acc < MIN_ACCURACY:
        raise RuntimeError(f"reference classifier held-out accuracy {acc:.3f} < {MIN_ACCURACY}")
    print(f"reference classifier ({image_size}px digits): held-out accuracy {acc:.4f}, cached at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, path)
    return net
