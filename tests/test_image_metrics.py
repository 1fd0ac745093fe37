"""Image-folder metrics through the real evaluations() path (uint8 conversion, value range,
device, reference cache) with a feature extractor whose features vary with the image: a fixed
random projection of the pixels followed by a cosine, saved as TorchScript and given as
`fid_weights`. The random-weight Inception of tests/test_images.py has practically constant
features (FID ~2e-12 between unrelated sets), so it cannot fail on a wrong FID; this one can.

Every number is checked against an independent computation from the images' own pixels
(numpy, scipy's sqrtm, the prdc package), and the collapse rule against a planted collapse."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from analysis.load import load_results
from tests.conftest import tiny
from vi_sweeps.data.datasets import _fingerprint
from vi_sweeps.engine.trial import cpu_name
from vi_sweeps.metrics import evaluators as metrics
from vi_sweeps.metrics import keys as eval_keys

SIDE, DIMS, CLASSES, SCALE = 8, 64, 10, 8.0


class Projection(nn.Module):
    """uint8 images (n, 3, H, W) -> (cos(pixels / 255 @ W + b), those @ V): features and logits."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.side = SIDE
        gen = torch.Generator().manual_seed(seed)
        d = 3 * SIDE * SIDE
        self.register_buffer("w", torch.randn(d, DIMS, generator=gen) * (SCALE / math.sqrt(d)))
        self.register_buffer("b", torch.rand(DIMS, generator=gen) * 2 * math.pi)
        self.register_buffer("v", torch.randn(DIMS, CLASSES, generator=gen))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.adaptive_avg_pool2d(x.float(), self.side).flatten(1) / 255.0
        f = torch.cos(x @ self.w + self.b)
        return f, f @ self.v


def numpy_features(pixels: np.ndarray, net: Projection) -> tuple[np.ndarray, np.ndarray]:
    """The same features in float64 from uint8 pixels (n, 3, 8, 8), without torch's path."""
    x = pixels.reshape(len(pixels), -1).astype(np.float64) / 255.0
    f = np.cos(x @ net.w.double().numpy() + net.b.double().numpy())
    return f, f @ net.v.double().numpy()


def numpy_fid(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))


def pixels(n: int, seed: int, low: int = 0, high: int = 256) -> np.ndarray:
    """n images (n, 3, 8, 8) uint8: smooth random blobs plus noise, in low..high-1."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    cx, cy, r = rng.rand(3, n, 1, 1, 1)
    colour = rng.rand(n, 3, 1, 1)
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.2 * r)) * colour
    img = blob + 0.15 * rng.rand(n, 3, SIDE, SIDE)
    img = (img - img.min()) / (img.max() - img.min())
    return (low + img * (high - 1 - low)).round().astype(np.uint8)


def save_folder(root, images: np.ndarray):
    root.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img.transpose(1, 2, 0)).save(root / f"{i:04d}.png")  # lossless: the pixels are known
    return root


@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    net = Projection().eval()
    path = tmp_path_factory.mktemp("extractor") / "projection.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    return net, path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VI_SWEEPS_CACHE", str(tmp_path / "cache"))
    _fingerprint.cache_clear()


N = 300
REAL = pixels(N, 0)


def as_samples(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float() / 127.5 - 1.0  # as a generator gives them: [-1, 1]


def evaluate(tmp_path, extractor, samples: torch.Tensor, **kw):
    """The rows of a trial on the folder of REAL whose generator is `samples`, through
    Trial and evaluations() as a sweep runs them."""
    from vi_sweeps.engine.trial import Trial, evaluations

    root = tmp_path / "faces"
    if not root.exists():
        save_folder(root, REAL)
    cfg = tiny(dataset="image-folder", data_root=str(root), image_size=8, crop=0, fid_samples=N, prdc_samples=N,
               kid_subset_size=100, kid_subsets=20, iterations=2, eval_every=2, **kw)
    cfg = cfg.model_copy(update={"fid_weights": str(extractor[1])})
    trial = Trial(cfg)
    trial.model.sample = lambda n, gens: samples.unsqueeze(0)  # the planted generator
    (row,) = [e.row for evals in evaluations(trial) for e in evals]
    return row, trial


def test_the_folder_holds_the_known_pixels(tmp_path, cache, extractor):
    _, trial = evaluate(tmp_path, extractor, as_samples(REAL))
    assert torch.equal(trial.data.images(), torch.from_numpy(REAL))


def test_fid_of_the_real_set_against_itself_is_zero_and_other_sets_are_the_independent_fid(tmp_path, cache, extractor):
    net, _ = extractor
    itself, _ = evaluate(tmp_path, extractor, as_samples(REAL[::-1].copy()))  # the same images, another order
    held_out = pixels(N, 1)
    narrow = pixels(N, 2, low=64, high=192)  # the same kind of image at half the contrast
    same_kind, _ = evaluate(tmp_path, extractor, as_samples(held_out))
    other, _ = evaluate(tmp_path, extractor, as_samples(narrow))
    f_real = numpy_features(REAL, net)[0]
    want_same, want_other = numpy_fid(f_real, numpy_features(held_out, net)[0]), numpy_fid(f_real, numpy_features(narrow, net)[0])
    fid = eval_keys.FID_INCEPTION
    print(f"FID itself {itself[fid]:.3g}, held-out {same_kind[fid]:.7f} (numpy {want_same:.7f}), "
          f"half contrast {other[fid]:.7f} (numpy {want_other:.7f})")
    assert abs(itself[fid]) < 1e-9
    assert same_kind[fid] == pytest.approx(want_same, rel=1e-6)
    assert other[fid] == pytest.approx(want_other, rel=1e-6)
    assert other[fid] > 10 * same_kind[fid] > 0


@pytest.mark.parametrize("bug", ["one too high", "floor, not round", "reference one level up"])
def test_a_planted_off_by_one_in_the_value_range_changes_fid(tmp_path, cache, extractor, monkeypatch, bug):
    net, _ = extractor
    narrow = pixels(N, 2, low=64, high=192)
    want = numpy_fid(numpy_features(REAL, net)[0], numpy_features(narrow, net)[0])
    if bug == "one too high":
        monkeypatch.setattr(metrics, "images_to_uint8", lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().clamp(max=254).to(torch.uint8) + 1)
    elif bug == "floor, not round":
        monkeypatch.setattr(metrics, "images_to_uint8", lambda x: ((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8))
    else:  # the reference's images one level too bright (x / 127.5 - 1 + 1 / 127.5), the samples' right
        real_features = metrics.InceptionEvaluator.features
        monkeypatch.setattr(metrics.InceptionEvaluator, "features", lambda self, x: real_features(self, x + 1 / 127.5))
    row, _ = evaluate(tmp_path, extractor, as_samples(narrow))
    itself, _ = evaluate(tmp_path / "again", extractor, as_samples(REAL))
    print(f"{bug}: FID {row[eval_keys.FID_INCEPTION]:.5f} against {want:.5f}; itself {itself[eval_keys.FID_INCEPTION]:.3g}")
    # the correct conversion gives want to 1e-6 (measured: 1e-8; the test above); each bug moves it
    # beyond that (by 0.4% for one level too high), or moves the real set's FID against itself off zero
    assert row[eval_keys.FID_INCEPTION] != pytest.approx(want, rel=1e-6) or abs(itself[eval_keys.FID_INCEPTION]) > 1e-6


def test_precision_recall_density_coverage_kid_and_is_equal_the_references_on_the_pixels(tmp_path, cache, extractor):
    import prdc

    from vi_sweeps.metrics.features import features_to_kid, logits_to_inception_score

    net, _ = extractor
    held_out = pixels(N, 1)
    row, _ = evaluate(tmp_path, extractor, as_samples(held_out))
    f_real = numpy_features(REAL, net)[0]
    f_fake, logits = numpy_features(held_out, net)
    # the reference draw is all N real images in the order of its fixed permutation
    order = torch.randperm(N, generator=torch.Generator().manual_seed(0)).numpy()
    pr, dc = prdc.compute_prdc(f_real[order], f_fake, 3), prdc.compute_prdc(f_real[order], f_fake, 5)
    for key, want in ((eval_keys.PRECISION, pr["precision"]), (eval_keys.RECALL, pr["recall"]),
                      (eval_keys.DENSITY, dc["density"]), (eval_keys.COVERAGE, dc["coverage"])):
        assert row[key] == pytest.approx(float(want), abs=1e-6), key
    kid, kid_std = features_to_kid(f_fake, f_real[order], 20, 100)
    assert row[eval_keys.KID] == pytest.approx(kid, abs=1e-6) and row[eval_keys.KID_STD] == pytest.approx(kid_std, abs=1e-6)
    assert row[eval_keys.INCEPTION_SCORE] == pytest.approx(logits_to_inception_score(logits, 10), rel=1e-5)
    assert row[eval_keys.COVERAGE] > 0.9 and row[eval_keys.RECALL] > 0.5 and abs(row[eval_keys.KID]) < 3 * row[eval_keys.KID_STD]
    assert row["device_resolved"] == "cpu" and row["device_name"] == cpu_name()


def test_one_image_is_collapsed_by_the_image_rule_and_held_out_real_images_are_not(tmp_path, cache, extractor):
    one, trial = evaluate(tmp_path, extractor, as_samples(np.repeat(pixels(1, 7), N, 0)))
    assert trial.cfg.collapse_rule == "coverage<0.5"  # auto: the image-folder rule
    real, _ = evaluate(tmp_path, extractor, as_samples(pixels(N, 1)))
    keys = (eval_keys.FID_INCEPTION, eval_keys.COVERAGE, eval_keys.RECALL, eval_keys.PRECISION, eval_keys.KID, eval_keys.INCEPTION_SCORE)
    print("one image:", {k.short: round(one[k], 4) for k in keys}, "held out:", {k.short: round(real[k], 4) for k in keys})
    assert one["collapsed"] and not real["collapsed"]
    assert one[eval_keys.COVERAGE] < 0.05 and real[eval_keys.COVERAGE] > 0.9
    assert one[eval_keys.RECALL] == 0.0 and one[eval_keys.INCEPTION_SCORE] == pytest.approx(1.0)
    assert one[eval_keys.FID_INCEPTION] > real[eval_keys.FID_INCEPTION]  # FID beside it says worse, not "collapsed"


def test_the_reference_features_are_cached_and_their_key_holds_the_precision(tmp_path, cache, extractor):
    _, first = evaluate(tmp_path, extractor, as_samples(REAL))
    files = sorted((tmp_path / "cache" / "fid-reference").glob("*.pt"))
    assert len(files) == 1 and torch.load(files[0], weights_only=True)["feats"].shape == (N, DIMS)
    evaluate(tmp_path, extractor, as_samples(REAL), seed=3)  # another trial: the same reference
    assert len(list((tmp_path / "cache" / "fid-reference").glob("*.pt"))) == 1
    _, bf16 = evaluate(tmp_path, extractor, as_samples(REAL), precision="bf16")
    assert len(list((tmp_path / "cache" / "fid-reference").glob("*.pt"))) == 2
    assert torch.equal(bf16.evaluator.ref_feats, first.evaluator.ref_feats)  # on a CPU bf16 autocast trains only


def test_no_fid_weights_turns_every_image_metric_off(tmp_path, cache):
    from vi_sweeps.engine.trial import Trial, evaluations

    root = save_folder(tmp_path / "faces", REAL[:20])
    trial = Trial(tiny(dataset="image-folder", data_root=str(root), image_size=8, crop=0, fid_weights="none"))
    rows = [e.row for evals in evaluations(trial) for e in evals]
    assert all(math.isnan(r[k]) for r in rows for k in eval_keys.IMAGE_KEYS) and not any(r["collapsed"] for r in rows)


@pytest.mark.slow
def test_a_five_seed_stacked_digits_study_and_an_image_folder_study_report_every_new_metric(tmp_path, cache, extractor):
    """One `vi-sweep run` (embedded Ray) of both data sets, 5 seeds a condition, then the
    report: every new metric has values for every seed, a figure with a dot per seed and a
    column in the conditions table beside the data set's quality metric."""
    import json

    import pandas as pd
    from click.testing import CliRunner

    from analysis import tables
    from vi_sweeps.cli.commands import main

    root = save_folder(tmp_path / "faces", REAL[:120])
    study = tmp_path / "coverage.yaml"
    study.write_text(
        "name: coverage\nmodels: [gan]\ndatasets: [stacked-digits, image-folder]\n"
        f"base: {{data_root: {root}, fid_weights: {extractor[1]}, image_size: 8, crop: 0, fid_samples: 100, "
        "prdc_samples: 200, kid_subsets: 10, kid_subset_size: 50, eval_samples: 200, batch_size: 16, width: 8, z_dim: 4}\n"
        "grid: {lam: [0.0, 5.0]}\nseeds: 5\npack_seeds: 5\nbudget: {iterations: 4, eval_every: 2}\n")
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    trials = pd.read_parquet(tmp_path / "r" / "trials.parquet")
    new = {"stacked-digits": eval_keys.MANIFOLD_KEYS, "image-folder": eval_keys.IMAGE_KEYS}
    for dataset, keys in new.items():
        sub = trials[trials["config/dataset"] == dataset]
        assert len(sub) == 10 and sub["status"].eq("finished").all()
        for key in keys:
            assert sub[key].notna().all(), (dataset, key)
            assert key == eval_keys.KID or (sub[key] >= 0).all(), (dataset, key)  # KID alone may be below 0
        assert (sub["device_resolved"] == "cpu").all()
    assert trials.loc[trials["config/dataset"] == "image-folder", "config/collapse_rule"].eq("coverage<0.5").all()
    assert trials.loc[trials["config/dataset"] == "stacked-digits", eval_keys.KID].isna().all()
    versions = json.loads((tmp_path / "r" / "versions.json").read_text())
    assert ("gpu" in versions) == torch.cuda.is_available()
    report = tmp_path / "r" / "report"
    text = (report / "REPORT.md").read_text()
    conditions = pd.read_csv(report / "conditions.csv")
    for key in eval_keys.IMAGE_KEYS:
        name = key.short
        assert (report / f"{tables.figure_name('metric', name)}.png").exists(), name
        assert f"{tables.figure_name('metric', name)}.png" in text, name
        assert f"{name}_median" in conditions, name
    for dataset, quality in (("stacked-digits", "eval/fd_digits"), ("image-folder", "eval/fid_inception")):
        sub = trials[trials["config/dataset"] == dataset]
        keys = load_results([str(tmp_path / "r")]).contract["keys"]
        assert tables.quality_metric(sub, keys) == quality  # the findings' quality metric: one per data set
        rows = conditions[conditions["dataset"] == dataset]
        assert rows[f"{quality.removeprefix('eval/')}_median"].notna().all()  # FID (fd) beside coverage
        assert rows["coverage_median"].notna().all()
