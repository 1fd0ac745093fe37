"""Metrics, keyed by data set. Output keys are the constants below; tests import them.

Pipeline steps are named for what they turn into what: samples -> mode assignments ->
histogram statistics; samples -> features -> statistics -> Frechet distance.
- 2-D mixtures: a sample is high quality when within 3 sigma of its nearest centre; a mode is
  captured when it holds at least mode_min_share * n / n_modes high-quality samples;
  kl_uniform = KL(mode histogram of high-quality samples || uniform); fd_2d = Frechet distance
  between the samples and the mixture's exact mean and covariance, in data space.
- digits, stacked-digits: the reference classifier (vi_sweeps.refnet) labels each digit; a
  sample is high quality when every digit's top class has probability >= 0.5; fd_digits = the
  Frechet distance in that classifier's 128-d penultimate features (per digit, concatenated),
  against the training split. It is not FID and is not comparable with FID.
- image-folder: fid_inception = FID in Inception-v3 pool features through torch-fidelity, given
  `fid_weights` (or its cache); without them the metric is left empty, with one message.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch
from scipy import linalg

from vi_sweeps.registry import Registry

MODES = "eval/modes"
MODES_FRAC = "eval/modes_frac"
HQ_FRAC = "eval/hq_frac"
KL_UNIFORM = "eval/kl_uniform"
FD_2D = "eval/fd_2d"
FD_DIGITS = "eval/fd_digits"
FID_INCEPTION = "eval/fid_inception"
METRIC_KEYS = (MODES, MODES_FRAC, HQ_FRAC, KL_UNIFORM, FD_2D, FD_DIGITS, FID_INCEPTION)

EVALUATORS = Registry("evaluator")
log = logging.getLogger(__name__)


def assignments_to_stats(assign: np.ndarray, n_modes: int, min_share: float) -> dict[str, float]:
    """Mode index per sample (-1: low quality) -> modes captured, their share, the high-quality
    share and KL(mode histogram || uniform) in nats."""
    n = len(assign)
    good = assign[assign >= 0]
    counts = np.bincount(good, minlength=n_modes).astype(np.float64)
    captured = int((counts >= min_share * n / n_modes).sum())
    if len(good):
        p = counts / counts.sum()
        nz = p > 0
        kl = float((p[nz] * np.log(p[nz] * n_modes)).sum())
    else:
        kl = math.nan
    return {MODES: float(captured), MODES_FRAC: captured / n_modes, HQ_FRAC: len(good) / n, KL_UNIFORM: kl}


def samples_to_assignments(samples: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    d2 = ((samples[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    close = d2[np.arange(len(samples)), nearest] <= (3 * sigma) ** 2
    return np.where(close, nearest, -1)


def features_to_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(0), np.cov(feats, rowvar=False)


def statistics_to_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), as in pytorch-fid."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are handled just below
        warnings.simplefilter("ignore", RuntimeWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class MixtureEvaluator:
    def __init__(self, cfg, data):
        self.centres = data.centres.numpy().astype(np.float64)
        self.sigma, self.min_share = data.sigma, cfg.mode_min_share
        mu = self.centres.mean(0)
        dev = self.centres - mu
        self.ref = (mu, dev.T @ dev / len(dev) + data.sigma**2 * np.eye(2))

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        x = samples.double().numpy()
        out = assignments_to_stats(samples_to_assignments(x, self.centres, self.sigma), len(self.centres), self.min_share)
        out[FD_2D] = statistics_to_frechet(*features_to_statistics(x), *self.ref)
        return out


class DigitsEvaluator:
    def __init__(self, cfg, data):
        from vi_sweeps.refnet import reference_classifier

        self.net = reference_classifier(cfg.image_size)
        self.stack, self.n_modes, self.min_share = data.stack, data.n_modes, cfg.mode_min_share
        ref = data.images[:, 0]
        feats, _ = self.classify(ref.unsqueeze(1))
        self.ref = features_to_statistics(self._stack_feats(feats) if self.stack > 1 else feats)

    def _stack_feats(self, feats: np.ndarray) -> np.ndarray:
        # The reference for stacked digits: 3 independent digits per sample, fixed draw.
        idx = np.random.RandomState(0).randint(len(feats), size=(10000, self.stack))
        return feats[idx].reshape(len(idx), -1)

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        feats, probs = [], []
        for chunk in images.split(2000):
            f = self.net.features(chunk)
            feats.append(f.numpy())
            probs.append(torch.softmax(self.net.head(f), 1).numpy())
        return np.concatenate(feats), np.concatenate(probs)

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        n, s = len(samples), self.stack
        feats, probs = self.classify(samples.float().reshape(n * s, 1, *samples.shape[-2:]))
        labels = probs.argmax(1).reshape(n, s)
        confident = (probs.max(1) >= 0.5).reshape(n, s).all(1)
        mode = (labels * (10 ** np.arange(s - 1, -1, -1))).sum(1)
        out = assignments_to_stats(np.where(confident, mode, -1), self.n_modes, self.min_share)
        out[FD_DIGITS] = statistics_to_frechet(*features_to_statistics(feats.reshape(n, -1)), *self.ref)
        return out


class InceptionEvaluator:
    """FID with torch-fidelity's Inception-v3 (the TF-compatible port), given its weights."""

    def __init__(self, cfg, data):
        self.extractor, self.ref = None, None
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except Exception as err:  # torch-fidelity absent, or torchvision broken beside torch
            log.warning("fid_inception left empty: torch-fidelity unavailable (%s); "
                        "`pip install vi-sweeps[fid]` on a machine with a matching torchvision", err)
            return
        try:
            self.extractor = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048"], feature_extractor_weights_path=cfg.fid_weights or None)
        except Exception as err:  # no weights file and no cache: nothing can be downloaded here
            log.warning("fid_inception left empty: Inception weights unavailable (%s); "
                        "pass fid_weights=FILE or fill torch-fidelity's cache", err)
            return
        real = data.sample(max(cfg.eval_samples, 2048), torch.Generator().manual_seed(0))
        self.ref = features_to_statistics(self.features(real))

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        as_uint8 = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return np.concatenate([self.extractor(c)[0].numpy() for c in as_uint8.split(200)])

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        if self.extractor is None:
            return {FID_INCEPTION: math.nan}
        return {FID_INCEPTION: statistics_to_frechet(*features_to_statistics(self.features(samples)), *self.ref)}


for _name in ("ring8", "grid25"):
    EVALUATORS.register(_name)(MixtureEvaluator)
for _name in ("digits", "stacked-digits"):
    EVALUATORS.register(_name)(DigitsEvaluator)
EVALUATORS.register("image-folder")(InceptionEvaluator)


def build_evaluator(cfg, data):
    return EVALUATORS.get(cfg.dataset)(cfg, data)
