"""Metrics. An evaluator turns one member's samples into its declared `eval/*` keys; a data
set names its evaluator when it registers. Output keys are the constants below; tests import
them, and the results contract, the collapse rule, the search objective and the figures read
their declarations.

Pipeline steps are named for what they turn into what: samples -> mode assignments ->
histogram statistics; samples -> features -> statistics -> Frechet distance.
- 2-D mixtures: a sample is high quality when within 3 sigma of its nearest centre. `modes`
  counts a mode as captured when it holds at least mode_min_share * n / n_modes high-quality
  samples (this project's count, robust to stray samples); `modes_lit` is the literature's
  count (VEEGAN's code, reused by PacGAN): a mode is captured when at least one high-quality
  sample among the first 2,500 is nearest to it. kl_uniform = KL(mode histogram of
  high-quality samples || uniform), the literature's "reverse KL". fd_2d = Frechet distance
  between the samples and the mixture's exact mean and covariance: it compares the first two
  moments only, so a blurred ring can score well while covering few modes.
- digits, stacked-digits: the reference classifier (vi_sweeps.metrics.refnet) labels each digit; a
  sample is high quality when every digit's top class has probability >= 0.5; modes_lit counts
  modes with at least one such sample among all samples; fd_digits = the Frechet distance in
  that classifier's 128-d penultimate features (per digit, concatenated), against the training
  split. It is not FID and is not comparable with FID.
- image-folder: fid_inception = FID in Inception-v3 pool features (torch-fidelity's network) on
  the trial's device, from `fid_samples` generated and real images; the weights come from
  `fid_weights` or torch-fidelity's cache (`vi-sweep fetch-weights`); `fid_weights: none` turns
  every image metric off. `fid_weights` may also name a TorchScript feature extractor (uint8
  images -> (features, logits)), which the tests use: its numbers are then not Inception's.
- coverage of the real data (vi_sweeps.metrics.features), in the same features: on image
  folders Inception's pool features, on digits and stacked-digits the reference classifier's
  (per digit, concatenated). precision and recall (k-NN balls of k = pr_k, default 3;
  Kynkaanniemi et al. 2019), density and coverage (k = dc_k, default 5; Naeem et al. 2020),
  from min(prdc_samples, samples, real set) generated and as many real samples (image folders:
  the first of the fid_samples of the reference draw, since every image metric reads the images
  FID passes through Inception, in one pass; digits: the training digits in the split's random
  order; stacked: the fixed reference stacks). Image folders also: kid and kid_std (Binkowski et al. 2018; kid_subsets subsets of
  kid_subset_size from fid_samples each side) and `is` (Inception Score, 10 splits of the
  fid_samples generated images' logits). The image-folder collapse rule is coverage<0.5:
  fewer than half of the real images have a generated one inside their k-NN ball.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import math
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from vi_contract.schema import REFERENCES_DIR
from vi_sweeps.core.keys import Key  # noqa: F401 - a name of the former vi_sweeps.metrics
from vi_sweeps.core.registry import Registry  # noqa: F401 - a name of the former vi_sweeps.metrics
from vi_sweeps.data.imagecache import cache_dir

# the registry, the spec and the declarations of the built-in evaluators, torch-free (their builders are the classes here)
from vi_sweeps.metrics.declared import EVALUATORS, EvaluatorSpec  # noqa: F401 - their former home
from vi_sweeps.metrics.features import features_to_kid, features_to_manifold_metrics, logits_to_inception_score
from vi_sweeps.metrics.keys import (
    FD_2D,
    FD_DIGITS,
    FID_INCEPTION,
    HQ_FRAC,
    IMAGE_KEYS,
    INCEPTION_SCORE,
    KID,
    KID_STD,
    KL_UNIFORM,
    MANIFOLD_KEYS,
    MODE_KEYS,  # noqa: F401 - a name of the former vi_sweeps.metrics
    MODES,
    MODES_FRAC,
    MODES_LIT,
    MODES_LIT_FRAC,
)
from vi_sweeps.metrics.refnet import reference_classifier

IS_SPLITS = 10
LITERATURE_SAMPLES = 2500  # VEEGAN/PacGAN score 2,500 samples on the 2-D mixtures

log = logging.getLogger(__name__)


def assignments_to_stats(assign: np.ndarray, n_modes: int, min_share: float,
                         lit_samples: int | None = None) -> dict[str, float]:
    """Mode index per sample (-1: low quality) -> modes captured (both counts), their share,
    the high-quality share and KL(mode histogram || uniform) in nats."""
    n = len(assign)
    good = assign[assign >= 0]
    counts = np.bincount(good, minlength=n_modes).astype(np.float64)
    captured = int((counts >= min_share * n / n_modes).sum())
    head = assign[:lit_samples]
    lit = len(np.unique(head[head >= 0]))
    if len(good):
        p = counts / counts.sum()
        nz = p > 0
        kl = float((p[nz] * np.log(p[nz] * n_modes)).sum())
    else:
        kl = math.nan
    return {MODES: float(captured), MODES_FRAC: captured / n_modes, MODES_LIT: float(lit), MODES_LIT_FRAC: lit / n_modes,
            HQ_FRAC: len(good) / n, KL_UNIFORM: kl}


def samples_to_assignments(samples: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    d2 = ((samples[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    close = d2[np.arange(len(samples)), nearest] <= (3 * sigma) ** 2
    return np.where(close, nearest, -1)


def features_to_statistics(feats) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance in float64, on the features' device (numpy arrays: the CPU)."""
    feats = torch.as_tensor(feats).to(torch.float64)
    return feats.mean(0), torch.cov(feats.T).reshape(feats.shape[1], feats.shape[1])


def _psd_sqrt(sigma: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(sigma)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def statistics_to_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64 on the inputs' device.

    Tr (S1 S2)^(1/2) is the sum of the square roots of the eigenvalues of S1 S2, which equal
    those of the symmetric PSD matrix S1^(1/2) S2 S1^(1/2): two symmetric eigen-decompositions
    instead of a general matrix square root (scipy's sqrtm): exact for PSD inputs, and at 2048
    dimensions several times faster (benchmarks/RESULTS.md)."""
    device = next((a.device for a in (mu1, sigma1) if isinstance(a, torch.Tensor)), torch.device("cpu"))
    mu1, sigma1, mu2, sigma2 = (torch.atleast_1d(torch.as_tensor(a, dtype=torch.float64, device=device))
                                for a in (mu1, sigma1, mu2, sigma2))
    sigma1, sigma2 = torch.atleast_2d(sigma1), torch.atleast_2d(sigma2)
    diff = mu1 - mu2
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    trace_covmean = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_covmean)


def manifold_metrics(cfg, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Real and generated features -> precision, recall, density and coverage, from the first
    min(prdc_samples, both counts) of each."""
    n = min(cfg.prdc_samples, len(real), len(fake))
    out = features_to_manifold_metrics(real[:n], fake[:n].to(real.device), cfg.pr_k, cfg.dc_k)
    return {key: out[key.short] for key in MANIFOLD_KEYS}


class MixtureEvaluator:
    def __init__(self, cfg, data, device=None, store=None):
        self.centres = data.centres.numpy().astype(np.float64)
        self.sigma, self.min_share = data.sigma, cfg.mode_min_share
        mu = self.centres.mean(0)
        dev = self.centres - mu
        self.ref = (mu, dev.T @ dev / len(dev) + data.sigma**2 * np.eye(2))

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        x = samples.double().cpu().numpy()
        assign = samples_to_assignments(x, self.centres, self.sigma)
        out = assignments_to_stats(assign, len(self.centres), self.min_share, LITERATURE_SAMPLES)
        out[FD_2D] = statistics_to_frechet(*features_to_statistics(x), *self.ref)
        return out


class DigitsEvaluator:
    def __init__(self, cfg, data, device=None, store=None):
        self.device = torch.device(device or "cpu")
        # a copy on the trial's device (the cached classifier stays on the CPU for the others)
        self.net = copy.deepcopy(reference_classifier(cfg.image_size)).to(self.device).eval()
        self.cfg, self.stack, self.n_modes, self.min_share = cfg, data.stack, data.n_modes, cfg.mode_min_share
        feats, _ = self.classify(data.images)
        feats = self._stack_feats(feats) if self.stack > 1 else feats
        self.ref = features_to_statistics(feats)
        # the real features of precision/recall/density/coverage: the training digits (in the
        # split's fixed random order) or the fixed reference stacks, on the trial's device
        self.ref_feats = torch.from_numpy(feats[: cfg.prdc_samples]).to(self.device, torch.float64)

    def _stack_feats(self, feats: np.ndarray) -> np.ndarray:
        # The reference for stacked digits: 3 independent digits per sample, fixed draw.
        idx = np.random.RandomState(0).randint(len(feats), size=(10000, self.stack))
        return feats[idx].reshape(len(idx), -1)

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        feats, probs = [], []
        for chunk in images.split(2000):
            f = self.net.features(chunk.to(self.device))
            feats.append(f.cpu().numpy())
            probs.append(torch.softmax(self.net.head(f), 1).cpu().numpy())
        return np.concatenate(feats), np.concatenate(probs)

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        n, s = len(samples), self.stack
        feats, probs = self.classify(samples.float().reshape(n * s, 1, *samples.shape[-2:]))
        labels = probs.argmax(1).reshape(n, s)
        confident = (probs.max(1) >= 0.5).reshape(n, s).all(1)
        mode = (labels * (10 ** np.arange(s - 1, -1, -1))).sum(1)
        out = assignments_to_stats(np.where(confident, mode, -1), self.n_modes, self.min_share)
        feats = feats.reshape(n, -1)
        out[FD_DIGITS] = statistics_to_frechet(*features_to_statistics(feats), *self.ref)
        out.update(manifold_metrics(self.cfg, self.ref_feats, torch.from_numpy(feats)))
        return out


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in 0..255, as an image file would hold them (the inverse of
    the data's x / 127.5 - 1: a real image goes through both unchanged)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class InceptionEvaluator:
    """FID, precision/recall/density/coverage, KID and IS with torch-fidelity's Inception-v3
    (the TF-compatible port) on the trial's device: generated samples go to uint8 and through
    the network in batches without leaving the device; the features of `fid_samples` real
    images (drawn without replacement) and their FID
    statistics are computed once per (data, preprocessing, weights, count, precision) and
    cached on the node and in the results store."""

    def __init__(self, cfg, data, device=None, store=None):
        self.device = torch.device(device or "cpu")
        self.cfg = cfg
        weights = inception_weights(cfg)
        self.extractor, self.n_samples = None, 0
        if weights is None:
            return
        self.n_samples = cfg.fid_samples  # every image metric reads these: one pass through the network
        self.extractor = inception_network(weights).to(self.device).eval()
        self.ref, self.ref_feats = reference_statistics(cfg, data, self, weights, store)

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3, S, S) in [-1, 1] -> (n, 2048) pool features and (n, 1008) logits, float64 on
        the device."""
        feats, logits = [], []
        for chunk in images.split(200):
            f, lg = self.extractor(images_to_uint8(chunk.to(self.device)))
            feats.append(f.to(torch.float64))
            logits.append(lg.to(torch.float64))
        return torch.cat(feats), torch.cat(logits)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[0]

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        if self.extractor is None:
            return dict.fromkeys(IMAGE_KEYS, math.nan)
        cfg = self.cfg
        feats, logits = self.features_and_logits(samples[: self.n_samples])
        out = {FID_INCEPTION: statistics_to_frechet(*features_to_statistics(feats[: cfg.fid_samples]), *self.ref)}
        out.update(manifold_metrics(cfg, self.ref_feats[: cfg.prdc_samples], feats))
        out[KID], out[KID_STD] = features_to_kid(feats[: cfg.fid_samples], self.ref_feats[: cfg.fid_samples],
                                                 cfg.kid_subsets, cfg.kid_subset_size)
        out[INCEPTION_SCORE] = logits_to_inception_score(logits[: cfg.fid_samples], IS_SPLITS)
        return out


INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's converted TF weights
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


def default_weights_path() -> Path:
    """Where torch-fidelity (and `vi-sweep fetch-weights`) keep the Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_weights(cfg) -> Path | None:
    """The weights file a trial's FID uses; None when the study turned FID off (fid_weights:
    none); a clear error when it needs them and they are not on this node."""
    if cfg.fid_weights == "none":
        return None
    path = Path(cfg.fid_weights).expanduser() if cfg.fid_weights else default_weights_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"fid_weights: FID needs the Inception weights at {path}, and they are not on this node; run "
            f"`vi-sweep fetch-weights` (or copy {INCEPTION_FILE} there), pass fid_weights=FILE, or set "
            "fid_weights=none to train without FID")
    return path


def inception_class():
    """torch-fidelity's FeatureExtractorInceptionV3. Its package imports torchvision for other
    extractors, which fails beside some torch builds; the Inception module needs torch alone,
    so it is loaded on its own when the package cannot be."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        spec = importlib.util.find_spec("torch_fidelity")
        if spec is None:
            raise ImportError("fid_inception needs torch-fidelity: pip install 'vi-sweeps[fid]' "
                              "(or pip install --no-deps torch-fidelity beside a CPU torch)") from None
        stand_in = importlib.machinery.ModuleSpec("torch_fidelity", None, origin=spec.origin, is_package=True)
        stand_in.submodule_search_locations = list(spec.submodule_search_locations)  # find_spec works after
        sys.modules["torch_fidelity"] = importlib.util.module_from_spec(stand_in)
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    return FeatureExtractorInceptionV3


class BadWeights(ValueError):
    """A weights file that is there but cannot be loaded."""


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (torch.jit.save) holds its code; torch.save's archives do not."""

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/")[1:2] == ["code"] for name in archive.namelist())


def inception_network(weights: Path):
    """torch-fidelity's Inception-v3 with the weights given, returning (pool features, logits)
    of uint8 images; or the TorchScript extractor the file holds, with the same interface."""
    if is_torchscript(weights):
        return torch.jit.load(str(weights), map_location="cpu")
    try:
        return inception_class()("inception-v3-compat", ["2048", "logits_unbiased"],
                                 feature_extractor_weights_path=str(weights))
    except ImportError:
        raise
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file fails in pickle, zip or load_state_dict
        raise BadWeights(f"fid_weights: {weights} cannot be loaded as torch-fidelity's Inception weights "
                         f"({type(err).__name__}: {err}); fetch them again with `vi-sweep fetch-weights`") from None


REFERENCE_VERSION = 2  # 2: the features too (precision/recall/density/coverage, KID)


def reference_statistics(cfg, data, evaluator: InceptionEvaluator, weights: Path, store=None):
    """((mean, covariance), features) of `fid_samples` real images drawn without replacement,
    computed once per (data, preprocessing, weights, count, arithmetic precision: tf32 changes
    the network's numbers): kept in the node's cache under a lock, and in the results store
    (`references/`) where there is one, so the other nodes of a cluster read them instead of
    computing them again. The features are kept as float32, as the network gives them."""
    stat = weights.stat()
    key = hashlib.sha256(json.dumps([REFERENCE_VERSION, data.cache.meta["fingerprint"], cfg.image_size, cfg.crop,
                                     cfg.skip_bad_images, weights.name, stat.st_size, cfg.fid_samples,
                                     cfg.precision]).encode()).hexdigest()[:20]
    folder = cache_dir() / "fid-reference"
    folder.mkdir(parents=True, exist_ok=True)
    path, shared = folder / f"{key}.pt", f"{REFERENCES_DIR}/{key}.pt"
    with FileLock(str(folder / f"{key}.lock")):
        if not path.exists():
            tmp = path.with_suffix(f".tmp-{os.getpid()}")
            if store is not None and store.exists(shared):
                tmp.write_bytes(store.read_bytes(shared))
            else:
                order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:cfg.fid_samples]
                source = data.images(evaluator.device)
                feats = torch.cat([evaluator.features(source[idx.to(source.device)].float() / 127.5 - 1.0)
                                   for idx in order.split(1000)])
                mu, sigma = features_to_statistics(feats)
                torch.save({"mu": mu.cpu(), "sigma": sigma.cpu(), "n": len(order),
                            "feats": feats.to(torch.float32).cpu()}, tmp)
                if store is not None:
                    try:
                        store.write_bytes(shared, tmp.read_bytes())
                    except OSError as err:  # the node's copy serves; the other nodes compute their own
                        warnings.warn(f"FID reference statistics not shared through the results store: {err}",
                                      stacklevel=2)
            os.replace(tmp, path)
        saved = torch.load(path, map_location=evaluator.device, weights_only=True)
    return (saved["mu"], saved["sigma"]), saved["feats"].to(torch.float64)
