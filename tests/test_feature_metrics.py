"""Precision, recall, density, coverage, KID and IS (vi_sweeps.metrics.features) against the
reference implementations on the same feature arrays: the `prdc` package (Naeem et al.'s own
code) and torch-fidelity's feature-to-metric functions; and their closed forms."""

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from vi_sweeps.metrics import features as fm

prdc = pytest.importorskip("prdc")


@pytest.fixture(scope="module")
def fidelity():
    """torch-fidelity's metric_kid and metric_isc. Its package __init__ (and its utils module)
    import torchvision, which does not import beside this torch: the two modules are loaded
    from their files with a stand-in for torch_fidelity.utils, whose names they import but
    their feature-to-metric functions never call."""
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None:
        pytest.skip("torch-fidelity is not installed")
    folder = spec.submodule_search_locations[0]
    saved = {name: sys.modules.get(name) for name in ("torch_fidelity", "torch_fidelity.utils")}
    package = types.ModuleType("torch_fidelity")
    package.__path__ = [folder]
    utils = types.ModuleType("torch_fidelity.utils")
    for name in ("create_feature_extractor", "extract_featuresdict_from_input_id_cached",
                 "resolve_feature_extractor", "resolve_feature_layer_for_metric"):
        setattr(utils, name, None)
    sys.modules.update({"torch_fidelity": package, "torch_fidelity.utils": utils})
    try:
        loaded = {}
        for name in ("metric_kid", "metric_isc"):
            mod_spec = importlib.util.spec_from_file_location(f"torch_fidelity.{name}", f"{folder}/{name}.py")
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
            loaded[name] = module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return types.SimpleNamespace(**loaded)


def two_sets(n_real=300, n_fake=250, d=16, shift=0.5, seed=0):
    rng = np.random.RandomState(seed)
    real = rng.randn(n_real, d)
    fake = rng.randn(n_fake, d) * 1.3 + shift
    return real, fake


@pytest.mark.parametrize("case", ["overlapping", "unequal counts", "narrow fake", "wide fake"])
def test_precision_recall_density_coverage_equal_prdc(case):
    real, fake = {"overlapping": two_sets(), "unequal counts": two_sets(400, 120, 8, 0.2, 1),
                  "narrow fake": two_sets(300, 300, 8, 0.3, 2), "wide fake": two_sets(200, 350, 4, 1.0, 3)}[case]
    if case == "narrow fake":
        fake = fake * 0.5
    ours = fm.features_to_manifold_metrics(torch.from_numpy(real), torch.from_numpy(fake), k_pr=3, k_dc=5)
    pr = prdc.compute_prdc(real, fake, nearest_k=3)
    dc = prdc.compute_prdc(real, fake, nearest_k=5)
    want = {"precision": pr["precision"], "recall": pr["recall"], "density": dc["density"], "coverage": dc["coverage"]}
    print(case, {k: round(v, 4) for k, v in ours.items()})
    for name, value in want.items():
        assert ours[name] == pytest.approx(float(value), abs=1e-6), name
    assert 0 < ours["precision"] < 1 and 0 < ours["coverage"] < 1  # the cases are not trivial


def test_the_chunked_distances_equal_one_matrix(monkeypatch):
    real, fake = two_sets(300, 280, 8)
    whole = fm.features_to_manifold_metrics(real, fake)
    monkeypatch.setattr(fm, "CHUNK", 37)
    assert fm.features_to_manifold_metrics(real, fake) == whole


def test_closed_forms_of_precision_recall_coverage():
    real, _ = two_sets(300, 1, 16)
    same = fm.features_to_manifold_metrics(real, real.copy())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = fm.features_to_manifold_metrics(real, real + 1000.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # one generated point repeated (a collapsed generator), at a real point: it lies in at most
    # the balls of the real points whose k-NN reach it, and its own radius is 0, so recall is 0
    one = fm.features_to_manifold_metrics(real, np.repeat(real[:1], 200, 0))
    assert one["recall"] == 0.0 and one["coverage"] < 0.1 and one["precision"] == 1.0


@pytest.mark.parametrize("sizes", [(300, 250, 100, 20), (120, 150, 120, 7), (60, 60, 1000, 5)])
def test_kid_equals_torch_fidelity(fidelity, sizes):
    n_fake, n_real, subset, subsets = sizes
    real, fake = two_sets(n_real, n_fake, 12, 0.3, 4)
    size = min(subset, n_fake, n_real)
    want = fidelity.metric_kid.kid_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=subsets,
                                                      kid_subset_size=size, verbose=False, rng_seed=2020)
    mean, std = fm.features_to_kid(fake, real, subsets, subset, seed=2020)
    print(sizes, mean, std)
    assert mean == pytest.approx(want["kernel_inception_distance_mean"], abs=1e-6, rel=1e-9)
    assert std == pytest.approx(want["kernel_inception_distance_std"], abs=1e-6, rel=1e-9)
    assert mean > 3 * std > 0  # the sets differ, and KID sees it


def test_kid_of_a_set_against_another_draw_of_its_distribution_is_zero_within_its_deviation():
    rng = np.random.RandomState(5)
    a, b = rng.randn(600, 12), rng.randn(600, 12)
    mean, std = fm.features_to_kid(a, b, 50, 200)
    assert abs(mean) < 2 * std
    mean, std = fm.features_to_kid(a, a, 50, 200)  # the same set: zero within its deviation
    assert abs(mean) < 2 * std


@pytest.mark.parametrize("n", [100, 257])
def test_inception_score_equals_torch_fidelity(fidelity, n):
    logits = torch.from_numpy(np.random.RandomState(n).randn(n, 10) * 3)
    want = fidelity.metric_isc.isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    got = fm.logits_to_inception_score(logits, 10, seed=2020)
    assert got == pytest.approx(want["inception_score_mean"], abs=1e-6, rel=1e-9)
    assert 1 < got < 10


def test_inception_score_closed_forms():
    # every image certain of one class, the classes uniform over each split: IS = number of classes
    # (labels placed so that the splits of the score's fixed shuffle each hold every class equally)
    order = torch.from_numpy(np.random.RandomState(2020).permutation(1000))
    certain = torch.full((1000, 10), -1e4, dtype=torch.float64)
    certain[order, torch.arange(1000) % 10] = 0.0
    assert fm.logits_to_inception_score(certain, 10, seed=2020) == pytest.approx(10.0)
    # every image the same prediction: IS = 1
    assert fm.logits_to_inception_score(torch.randn(1, 10).expand(500, 10), 10) == pytest.approx(1.0)


def test_the_inception_loaded_on_its_own_leaves_torch_fidelity_findable():
    # The stand-in package vi_sweeps.metrics.evaluators puts in sys.modules had no __spec__, so any later
    # importlib.util.find_spec("torch_fidelity") in the process raised "ValueError:
    # torch_fidelity.__spec__ is None" (seen when pytest-xdist ran this file after
    # test_images in one worker: five errors at the fixture above).
    if importlib.util.find_spec("torch_fidelity") is None:
        pytest.skip("torch-fidelity is not installed")
    from vi_sweeps.metrics.evaluators import inception_class

    saved = sys.modules.pop("torch_fidelity", None)
    try:
        inception_class()
        assert importlib.util.find_spec("torch_fidelity").submodule_search_locations
    finally:
        if saved is not None:
            sys.modules["torch_fidelity"] = saved
