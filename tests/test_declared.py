"""A config assembled from what each part declares (issue 36, item 2): checking a study and
listing the keys read the torch-free declarations only; every declared builder reference
resolves to the module that trains; --list-keys names the registries' names as they are now."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT
from vi_sweeps.cli.commands import main
from vi_sweeps.core.registry import Lazy
from vi_sweeps.core.settings import OWNERS, SETTINGS
from vi_sweeps.data.declared import DATASETS
from vi_sweeps.gan.declared import ALI_LOSSES, ARCHITECTURES, GAN_LOSSES, OBJECTIVES, STABILISERS
from vi_sweeps.metrics.declared import EVALUATORS
from vi_sweeps.study.config import ADDED_KEYS, EXECUTION_KEYS, ORDER, TrialConfig

NO_TORCH = """
import sys
from vi_sweeps.cli.commands import main
for args in (["validate", "studies/bn_ablation.yaml"], ["trial", "--list-keys"]):
    try:
        main(args)
    except SystemExit as stop:
        assert stop.code == 0, (args, stop.code)
print(sorted(m for m in ("torch", "sklearn", "ray") if m in sys.modules))
"""


def test_validating_a_shipped_study_and_listing_the_keys_import_neither_torch_nor_sklearn_nor_ray():
    """Before: config imported the model zoo, so both loaded torch (about 1.5 s of 2 s here)."""
    r = subprocess.run([sys.executable, "-c", NO_TORCH], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bn_ablation.yaml: valid, 640 trials" in r.stdout and "model family (choices: " in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout[-500:]


def test_the_fields_are_the_declared_keys_in_the_order_ids_were_first_written_with():
    assert list(TrialConfig.model_fields) == list(ORDER)
    assert set(TrialConfig.model_fields) == set(SETTINGS)
    assert EXECUTION_KEYS == ("data_root", "device", "threads", "fid_weights")
    assert ADDED_KEYS == ("loss", "r1", "r2", "gp", "sn", "ema", "ema_start", "lr_d", "lr_g", "fid_samples",
                          "prdc_samples", "pr_k", "dc_k", "kid_subsets", "kid_subset_size", "skip_bad_images",
                          "pack_size", "pack_index", "compile")
    assert OWNERS["r1"] == "stabilisers" and OWNERS["image_size"] == "data sets" and OWNERS["fid_weights"] == "evaluators"


@pytest.mark.parametrize("registry", [OBJECTIVES, ARCHITECTURES, DATASETS, EVALUATORS, GAN_LOSSES, ALI_LOSSES, STABILISERS],
                         ids=lambda r: r.kind)
def test_every_declared_reference_resolves_to_a_callable_of_the_module_that_trains(registry):
    for name in registry.names():
        builder = registry.get(name)
        assert builder is None or (callable(builder) and not isinstance(builder, Lazy)), name
        spec = registry.meta(name)
        hooks = [v for v in vars(spec).values() if isinstance(v, Lazy)]
        for hook in hooks:
            assert callable(hook.resolve()), f"{registry.kind} {name}: {hook.ref}"
    if registry in (OBJECTIVES, ARCHITECTURES, DATASETS, EVALUATORS):  # the others register specs only
        assert all(registry.get(n) is not None for n in registry.names())


@pytest.mark.usefixtures("isolated_plugins")
def test_list_keys_names_what_the_registries_hold_now_a_plugin_s_loss_included():
    from vi_sweeps.gan.losses import Adversarial, critic_g, wasserstein_d

    GAN_LOSSES.register("critic-test", spec=Adversarial(wasserstein_d, critic_g, "a plugin's loss"))
    out = CliRunner().invoke(main, ["trial", "--list-keys"]).output
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["loss"].endswith("(choices: critic-test, hinge, least-squares, minimax, nonsaturating, wasserstein)")
    assert lines["arch"].endswith("(choices: auto, dcgan, mlp, pacgan, paper-64)")
    assert lines["ali_loss"].endswith("(choices: minimax, nonsaturating, vi)")


def test_every_family_data_source_and_evaluator_keeps_its_protocol_em_included():
    """Issue 36 item 3: one contract per kind of extension (typing.Protocol), EM a family like
    the others (before: EM was a duck type beside Family, and no contract was written down)."""
    import torch

    from vi_sweeps.data.datasets import build_dataset
    from vi_sweeps.data.declared import DataSource
    from vi_sweeps.gan.declared import ModelFamily
    from vi_sweeps.gan.families import EM, Family, build_objective
    from vi_sweeps.metrics.declared import Evaluator
    from vi_sweeps.metrics.evaluation import build_evaluator
    from vi_sweeps.study.config import make_config

    assert ModelFamily in EM.__mro__ and ModelFamily in Family.__mro__  # declared, not only duck-typed
    for model in OBJECTIVES.names():
        cfg = make_config({"model": model, "dataset": "ring8", "iterations": 2, "eval_every": 1})
        data = build_dataset(cfg)
        family = build_objective([cfg], data, torch.device("cpu"), [torch.Generator().manual_seed(0)])
        assert isinstance(data, DataSource) and isinstance(build_evaluator(cfg, data), Evaluator)
        assert isinstance(family, ModelFamily), model
        losses = family.train_iteration()
        assert set(losses) == set(OBJECTIVES.meta(model).losses) and all(v.shape == (1,) for v in losses.values())
        assert family.sample(5, [torch.Generator().manual_seed(1)]).shape == (1, 5, 2)
