"""Metrics in a feature space that see coverage as well as quality: the pipeline steps from
features (and Inception's logits) to numbers, in float64 on the features' device.

- features -> k-NN radii -> precision, recall (Kynkaanniemi et al. 2019, k = 3) and density,
  coverage (Naeem et al. 2020, k = 5), with the definitions of the authors' `prdc` package:
  a point's radius is the distance to its k-th nearest neighbour in its own set (the point
  itself not counted), and "inside a ball" is strictly closer than its radius.
- features -> KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel (x.y / d + 1)^3,
  averaged over random subsets (torch-fidelity's draws: numpy RandomState(seed), generated
  first), with its standard deviation over the subsets.
- logits -> IS (Salimans et al. 2016): exp(E KL(p(y|x) || p(y))) per split, averaged over the
  splits of a fixed shuffle (torch-fidelity's: RandomState(seed).permutation).
Tests check each against the reference implementation on the same arrays (tests/test_feature_metrics.py).
"""

from __future__ import annotations

import numpy as np
import torch

CHUNK = 2048  # rows of a distance matrix at a time: 2048 x 10,000 float64 is 160 MB


def _as64(x, device=None) -> torch.Tensor:
    return torch.as_tensor(x).to(device=device, dtype=torch.float64)


def features_to_radii(feats: torch.Tensor, *ks: int) -> list[torch.Tensor]:
    """For each k, each row's distance to its k-th nearest other row (prdc's nearest-neighbour
    distance: the (k+1)-th smallest, the row itself being the first), from one pass over the
    distances (topk: 10x kthvalue's speed on a CPU)."""
    feats = _as64(feats)
    ks = [min(k, len(feats) - 1) for k in ks]
    nearest = torch.cat([torch.cdist(part, feats).topk(max(ks) + 1, dim=1, largest=False).values
                         for part in feats.split(CHUNK)])
    return [nearest[:, k] for k in ks]


def features_to_manifold_metrics(real, fake, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """Real and generated features -> precision, recall (k-NN balls of k_pr) and density,
    coverage (balls of k_dc), in one pass over the real-generated distances."""
    real = _as64(real)
    fake = _as64(fake, real.device)
    if len(real) < 2 or len(fake) < 2:
        return dict.fromkeys(("precision", "recall", "density", "coverage"), float("nan"))
    (r_pr, r_dc), (f_pr,) = features_to_radii(real, k_pr, k_dc), features_to_radii(fake, k_pr)
    in_real_ball = torch.zeros(len(fake), dtype=torch.bool, device=real.device)
    in_real_balls = torch.zeros(len(fake), dtype=torch.float64, device=real.device)
    recalled = covered = 0
    for start in range(0, len(real), CHUNK):
        d = torch.cdist(real[start:start + CHUNK], fake)  # (chunk of real, generated)
        pr, dc = r_pr[start:start + CHUNK, None], r_dc[start:start + CHUNK]
        in_real_ball |= (d < pr).any(0)
        in_real_balls += (d < dc[:, None]).sum(0)
        recalled += int((d < f_pr[None, :]).any(1).sum())
        covered += int((d.min(1).values < dc).sum())
    return {"precision": float(in_real_ball.double().mean()), "recall": recalled / len(real),
            "density": float(in_real_balls.mean()) / min(k_dc, len(real) - 1), "coverage": covered / len(real)}


def _unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d, m = x.shape[1], len(x)
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    within = kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()
    return within / (m * (m - 1)) - 2 * kxy.sum() / (m * m)


def features_to_kid(fake, real, subsets: int = 100, subset_size: int = 1000, seed: int = 2020) -> tuple[float, float]:
    """Generated and real features -> (KID, its standard deviation over `subsets` subsets of
    `subset_size` each, drawn without replacement; min(subset_size, both counts))."""
    real = _as64(real)
    fake = _as64(fake, real.device)
    size = min(subset_size, len(fake), len(real))
    if size < 2 or subsets < 1:
        return float("nan"), float("nan")
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        i = torch.from_numpy(rng.choice(len(fake), size, replace=False)).to(real.device)
        j = torch.from_numpy(rng.choice(len(real), size, replace=False)).to(real.device)
        mmds.append(_unbiased_mmd2(fake[i], real[j]))
    mmds = torch.stack(mmds)
    return float(mmds.mean()), float(mmds.std(unbiased=False))


def logits_to_inception_score(logits, splits: int = 10, seed: int = 2020) -> float:
    """Inception's (unbiased) logits of generated images -> IS, the mean over `splits` splits."""
    logits = _as64(logits)
    n = len(logits)
    if n < splits:
        return float("nan")
    logits = logits[torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(logits.device)]
    p, log_p = logits.softmax(1), logits.log_softmax(1)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        q = p[part].mean(0, keepdim=True)
        scores.append((p[part] * (log_p[part] - q.log())).sum(1).mean().exp())
    return float(torch.stack(scores).mean())
