import math

import numpy as np
import pytest
import torch

from tests.conftest import tiny
from vi_contract.rules import Rule, collapse_rule, is_collapsed
from vi_sweeps.data.datasets import build_dataset, digits_split
from vi_sweeps.metrics import evaluators as metrics
from vi_sweeps.metrics import keys as eval_keys


@pytest.fixture
def ring():
    cfg = tiny(dataset="ring8")
    data = build_dataset(cfg)
    return data, metrics.MixtureEvaluator(cfg, data)


def test_samples_from_the_ring_capture_all_8_modes(ring):
    data, evaluate = ring
    out = evaluate(data.sample(4000, torch.Generator().manual_seed(1)))
    assert out[eval_keys.MODES] == 8 and out[eval_keys.MODES_FRAC] == 1.0
    # a 2-D Gaussian holds 1 - exp(-9/2) = 98.9% of its mass within 3 sigma of its centre
    assert out[eval_keys.HQ_FRAC] == pytest.approx(1 - math.exp(-4.5), abs=0.006)
    assert out[eval_keys.KL_UNIFORM] < 0.01
    assert out[eval_keys.FD_2D] < 0.01


def test_a_single_mode_is_one_mode_with_kl_log8(ring):
    data, evaluate = ring
    x = data.centres[3] + data.sigma * torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    out = evaluate(x)
    assert out[eval_keys.MODES] == 1 and out[eval_keys.MODES_FRAC] == 1 / 8
    assert out[eval_keys.KL_UNIFORM] == pytest.approx(math.log(8))


def test_points_far_from_every_mode_capture_nothing(ring):
    _, evaluate = ring
    out = evaluate(torch.full((500, 2), 10.0))
    assert out[eval_keys.MODES] == 0 and out[eval_keys.HQ_FRAC] == 0.0
    assert math.isnan(out[eval_keys.KL_UNIFORM])


def test_half_the_modes_and_the_share_threshold():
    # 4 modes with 250 samples each out of n=1000 -> 4 captured; a mode with 10 samples
    # (below 0.1 * 1000 / 8 = 12.5) does not count.
    assign = np.array([0] * 250 + [1] * 250 + [2] * 250 + [3] * 240 + [4] * 10)
    out = metrics.assignments_to_stats(assign, 8, 0.1)
    assert out[eval_keys.MODES] == 4
    p = np.array([250, 250, 250, 240, 10]) / 1000
    assert out[eval_keys.KL_UNIFORM] == pytest.approx(float((p * np.log(p * 8)).sum()))


def test_frechet_equal_covariances_is_squared_mean_distance():
    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    assert metrics.statistics_to_frechet([0, 0], cov, [3, 4], cov) == pytest.approx(25.0)


def test_frechet_diagonal_gaussians_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = metrics.statistics_to_frechet([1, 0, 0], np.diag(a), [0, 0, 0], np.diag(b))
    assert got == pytest.approx(expected)


def test_frechet_of_sample_statistics_does_not_depend_on_chunking():
    x = np.random.RandomState(0).randn(3000, 4)
    full = metrics.features_to_statistics(x)
    assert metrics.statistics_to_frechet(*full, *full) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.slow
def test_reference_classifier_holds_97_percent_on_held_out_digits():
    from vi_sweeps.metrics.refnet import accuracy, reference_classifier

    net = reference_classifier(16)
    _, _, x_test, y_test = digits_split(16)
    acc = accuracy(net, x_test, y_test)
    print(f"reference classifier held-out accuracy: {acc:.4f}")
    assert acc >= 0.97


@pytest.mark.slow
def test_real_digits_cover_all_modes_and_real_stacks_most():
    cfg = tiny(dataset="digits", image_size=16, eval_samples=2000)
    data = build_dataset(cfg)
    out = metrics.DigitsEvaluator(cfg, data)(data.sample(2000, torch.Generator().manual_seed(0)))
    assert out[eval_keys.MODES] == 10 and out[eval_keys.KL_UNIFORM] < 0.05
    assert out[eval_keys.FD_DIGITS] < 5.0
    cfg = tiny(dataset="stacked-digits", image_size=16)
    data = build_dataset(cfg)
    ev = metrics.DigitsEvaluator(cfg, data)
    real = ev(data.sample(10000, torch.Generator().manual_seed(0)))
    one_digit = ev(data.images[:1, 0].expand(3, -1, -1).unsqueeze(0).expand(500, -1, -1, -1).clone())
    assert real[eval_keys.MODES] > 900  # 10000 draws of 1000 modes with share 0.1: nearly all
    assert one_digit[eval_keys.MODES] == 1
    assert one_digit[eval_keys.FD_DIGITS] > 10 * real[eval_keys.FD_DIGITS]


def test_collapse_rule():
    assert collapse_rule("modes_frac<0.5") == Rule("eval/modes_frac", "<", 0.5)
    assert is_collapsed("modes_frac<0.5", {eval_keys.MODES_FRAC: 0.25}, diverged=False)
    assert not is_collapsed("modes_frac<0.5", {eval_keys.MODES_FRAC: 0.5}, diverged=False)
    assert is_collapsed("kl_uniform>1", {eval_keys.KL_UNIFORM: 1.2}, diverged=False)
    assert is_collapsed("modes_frac<0.5", {}, diverged=True)
    declared = metrics.EVALUATORS.meta("mixture").metrics
    with pytest.raises(ValueError, match="valid choices: modes, modes_frac, modes_lit"):
        collapse_rule("fid<3", declared)


def test_a_collapse_rule_must_name_a_metric_of_its_data_set():
    from vi_sweeps.study.config import ConfigError, make_config

    with pytest.raises(ConfigError, match="unknown metric 'fid_inception'; valid choices: modes"):
        make_config({"dataset": "ring8", "collapse_rule": "fid_inception>100"})
    assert make_config({"dataset": "ring8"}).collapse_rule == "modes_frac<0.5"  # auto: the data set's rule


def test_every_evaluator_declares_keys_the_contract_carries():
    from vi_sweeps.core.keys import Key

    for name in metrics.EVALUATORS.names():
        declared = metrics.EVALUATORS.meta(name).metrics
        assert declared and all(isinstance(k, Key) and k.startswith("eval/") and k.label for k in declared)
        assert metrics.EVALUATORS.meta(name).collapse_rule.split("<")[0].split(">")[0] in [k.short for k in declared]


def test_the_literature_mode_count_needs_one_sample_ours_needs_a_share():
    # 8 modes: 7 with 300 samples, the eighth with 2 (among 2,102): the literature counts 8, ours 7
    assign = np.array([m for m in range(7) for _ in range(300)] + [7, 7])
    out = metrics.assignments_to_stats(assign, 8, 0.1, lit_samples=2500)
    assert out[eval_keys.MODES_LIT] == 8 and out[eval_keys.MODES] == 7 and out[eval_keys.MODES_LIT_FRAC] == 1.0
    # the literature scores only the first 2,500 samples: a mode seen only after them is not counted
    late = np.concatenate([np.zeros(2500, dtype=int), np.full(500, 3)])
    assert metrics.assignments_to_stats(late, 8, 0.1, lit_samples=2500)[eval_keys.MODES_LIT] == 1


@pytest.mark.parametrize("case", ["equal", "diagonal", "random", "singular"])
def test_the_eigenvalue_frechet_equals_scipy_sqrtm(case):
    from scipy import linalg

    rng = np.random.RandomState(3)
    a, b = rng.randn(40, 6), rng.randn(40, 6) * 2 + 1
    s1, s2 = {"equal": (np.cov(a.T), np.cov(a.T)), "diagonal": (np.diag([1.0, 4, 9, 2, 3, 5]), np.diag([4.0, 1, 1, 2, 2, 2])),
              "random": (np.cov(a.T), np.cov(b.T)), "singular": (np.cov(a[:4].T), np.cov(b.T))}[case]
    mu1, mu2 = a.mean(0), b.mean(0)
    root = linalg.sqrtm(s1 @ s2).real
    reference = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))
    assert metrics.statistics_to_frechet(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-6)


def test_digits_precision_recall_density_coverage_in_the_classifiers_features_equal_prdc():
    """Stacked digits: real stacks cover the reference stacks, one repeated stack covers almost
    none; and the four numbers are prdc's on the same features."""
    prdc = pytest.importorskip("prdc")
    cfg = tiny(dataset="stacked-digits", image_size=16, eval_samples=1000, prdc_samples=1000)
    data = build_dataset(cfg)
    ev = metrics.DigitsEvaluator(cfg, data)
    real = data.sample(1000, torch.Generator().manual_seed(1))
    out = ev(real)
    feats = ev.classify(real.reshape(3000, 1, 16, 16))[0].reshape(1000, -1).astype(np.float64)
    ref = ev.ref_feats[:1000].cpu().numpy()
    pr, dc = prdc.compute_prdc(ref, feats, 3), prdc.compute_prdc(ref, feats, 5)
    for key, want in ((eval_keys.PRECISION, pr["precision"]), (eval_keys.RECALL, pr["recall"]),
                      (eval_keys.DENSITY, dc["density"]), (eval_keys.COVERAGE, dc["coverage"])):
        assert out[key] == pytest.approx(float(want), abs=1e-6), key
    one = ev(data.images[:1, 0].expand(3, -1, -1).unsqueeze(0).expand(500, -1, -1, -1).clone())
    print("real stacks:", {k.short: round(out[k], 3) for k in eval_keys.MANIFOLD_KEYS},
          "one stack:", {k.short: round(one[k], 3) for k in eval_keys.MANIFOLD_KEYS})
    assert out[eval_keys.COVERAGE] > 0.9 and out[eval_keys.RECALL] > 0.8 and out[eval_keys.PRECISION] > 0.8
    assert one[eval_keys.COVERAGE] < 0.05 and one[eval_keys.RECALL] == 0.0


def test_digits_manifold_metrics_use_min_of_prdc_samples_generated_and_real():
    cfg = tiny(dataset="digits", image_size=16, eval_samples=2000, prdc_samples=5000)
    data = build_dataset(cfg)
    ev = metrics.DigitsEvaluator(cfg, data)
    assert len(ev.ref_feats) == 1297  # the training split
    seen = {}
    real = metrics.features_to_manifold_metrics

    def spy(r, f, k_pr, k_dc):
        seen.update(n_real=len(r), n_fake=len(f), k=(k_pr, k_dc))
        return real(r, f, k_pr, k_dc)

    import unittest.mock

    with unittest.mock.patch.object(metrics, "features_to_manifold_metrics", spy):
        ev(data.sample(2000, torch.Generator().manual_seed(0)))
    assert seen == {"n_real": 1297, "n_fake": 1297, "k": (3, 5)}


def test_versions_name_the_gpu_cuda_and_driver_where_there_is_one(monkeypatch):
    from vi_sweeps.engine import results

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert results.gpu_versions() == {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "NVIDIA H200")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)

    class Smi:
        stdout = "570.86.15\n570.86.15\n"

    monkeypatch.setattr(results.subprocess, "run", lambda *a, **k: Smi())
    assert results.gpu_versions() == {"gpu": "NVIDIA H200", "gpu_count": "2", "cuda": "12.8", "cudnn": "91000",
                                      "nvidia_driver": "570.86.15"}


def test_a_trials_rows_record_the_resolved_device_never_auto(monkeypatch):
    from vi_sweeps.engine import trial as trial_module

    run = trial_module.Trial(tiny(dataset="ring8"))
    rows = [e.row for evals in trial_module.evaluations(run) for e in evals]
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert run.cfg.device == "auto" and {r["device_resolved"] for r in rows} == {expected}
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: f"GPU {i}")
    assert trial_module.device_provenance(torch.device("cuda")) == {"device_resolved": "cuda:3", "device_name": "GPU 3"}
    # on a CPU the rows name its model and torch's vector kernels (float32's last bits depend on
    # them: a committed trial's numbers moved on another CPU); read here from /proc/cpuinfo
    import re
    model = re.search(r"^model name\s*:\s*(.+)$", open("/proc/cpuinfo").read(), re.M).group(1).strip()
    name = f"{model} ({torch.backends.cpu.get_cpu_capability()})"
    assert trial_module.device_provenance(torch.device("cpu")) == {"device_resolved": "cpu", "device_name": name}
    if not torch.cuda.is_available():
        assert {r["device_name"] for r in rows} == {name}
