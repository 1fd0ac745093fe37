"""A plugin is identified by its source, and no name is ever replaced (issue 34): an edited
installed (editable) package changes the ids of its trials; losses are registries that refuse a
name twice, and a plugin loss's source enters the id; versions.json keeps every run's plugins."""

import hashlib
import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from click.testing import CliRunner

from vi_contract import schema
from vi_sweeps.cli.commands import main
from vi_sweeps.core.plugins import load
from vi_sweeps.study.config import TrialConfig

PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "labplug-issue34"
        version = "0.1"
        [tool.setuptools]
        packages = ["labplug"]
    """,
    "labplug/__init__.py": """
        from vi_sweeps.study.config import register_key
        from vi_sweeps.gan.stabilisers import STABILISERS, Stabiliser

        from labplug.penalty import penalty

        register_key("lab_weight", 0.0, "weight of the lab's penalty")
        STABILISERS.register("lab", spec=Stabiliser(("lab_weight",), "the lab's penalty", d_penalty=penalty))
    """,
    "labplug/penalty.py": """
        def penalty(step):
            return step.family.cfg.lab_weight * step.real_logits.flatten(1).pow(2).mean(1)
    """,
}

STUDY = """
plugins: [labplug]
name: lab
base: {hidden: 16, mlp_layers: 2, batch_size: 16, eval_samples: 200, lab_weight: 0.01}
seeds: 2
pack_seeds: 2
budget: {iterations: 4, eval_every: 2}
"""


def vi_sweep(*args, cwd):
    return subprocess.run([sys.executable, "-m", "vi_sweeps.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def dry_run_ids(study, cwd) -> set[str]:
    r = vi_sweep("run", str(study), "--dry-run", cwd=cwd)
    assert r.returncode == 0, r.stderr
    return {line.split()[0] for line in r.stdout.splitlines()[1:] if len(line.split()[0]) == 16}


@pytest.fixture
def editable_package(tmp_path):
    root = tmp_path / "labplug-src"
    for name, text in PACKAGE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "--no-index", "-e", str(root)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    try:
        yield root
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "labplug-issue34"], capture_output=True,
                       timeout=300)


@pytest.mark.slow
@pytest.mark.ray
def test_an_edited_editable_plugin_changes_its_trials_ids_and_the_folder_refuses_it(tmp_path, editable_package):
    """Before: a package was identified by its version string, so editing it kept every id (the
    same 2 ids after the edit) and the resume ran the new code beside the old rows (exit 0)."""
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    results = tmp_path / "results"
    before = dry_run_ids(study, tmp_path)
    assert len(before) == 2
    for _ in range(2):  # a run, then the same command again (nothing left to run)
        r = vi_sweep("run", str(study), "--results", str(results), "--address", "local", "--no-report", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert set(pd.read_parquet(results / schema.TRIALS_FILE)["trial_id"]) == before
    versions = json.loads((results / schema.VERSIONS_FILE).read_text())
    assert len(versions["runs"]) == 2 and versions["runs"][-1]["plugins"] == versions["plugins"]
    assert versions["plugins"].startswith("labplug sha256:") and versions["plugins"].endswith(" (0.1)")

    penalty = editable_package / "labplug" / "penalty.py"
    penalty.write_text(penalty.read_text().replace(".pow(2)", ".abs()"))  # the version stays 0.1
    after = dry_run_ids(study, tmp_path)
    assert len(after) == 2 and not after & before
    r = vi_sweep("run", str(study), "--results", str(results), "--address", "local", "--no-report", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "was run with the plugins labplug sha256:" in r.stderr, r.stderr
    kept = json.loads((results / schema.VERSIONS_FILE).read_text())
    assert kept == versions  # nothing written by the refused run


LOSS_PLUGIN = """
from vi_sweeps.gan.losses import GAN_LOSSES, Adversarial, batch_mean
GAN_LOSSES.register({name!r}, spec=Adversarial(lambda r, f: batch_mean(f) - batch_mean(r), lambda r, f: -batch_mean(f),
                                               "a critic's loss"))
"""


@pytest.mark.usefixtures("isolated_plugins")
@pytest.mark.parametrize("body, says", [
    (LOSS_PLUGIN.format(name="hinge"), "ValueError: GAN loss 'hinge' is registered twice (a built-in or another plugin has it)"),
    ("from vi_sweeps.gan.losses import ALI_LOSSES\nALI_LOSSES.register('vi', spec=ALI_LOSSES.meta('minimax'))\n",
     "ValueError: ALI loss 'vi' is registered twice"),
    ("from torch import nn\nfrom vi_sweeps.gan.packing import PACK_RULES\nPACK_RULES[nn.Linear] = lambda mods: mods[0]\n",
     "ValueError: packing rule for Linear is registered twice"),
    ("raise SystemExit(0)\n", "ImportError: plug raised SystemExit(0) on import"),
])
def test_a_plugin_cannot_replace_a_name_and_cannot_exit(tmp_path, body, says):
    """Before: GAN_LOSSES, ALI_LOSSES and PACK_RULES were dicts: a plugin's `GAN_LOSSES["hinge"] = ...`
    replaced the built-in at a resume, under the same ids (loss/d off by 1.57), exit 0; a plugin
    raising SystemExit(0) made `run` exit 0 having done nothing."""
    (tmp_path / "plug.py").write_text(body)
    study = tmp_path / "study.yaml"
    study.write_text("plugins: [plug.py]\nname: x\n")
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(results), "--address", "local"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert f"{study}: plugins[0]: plug.py: cannot be loaded ({says}" in r.output, r.output
    assert not results.exists()


@pytest.mark.usefixtures("isolated_plugins")
def test_a_plugin_loss_s_source_enters_the_trial_id(tmp_path):
    """Before: only the model, data set, architecture, evaluator, stabilisers and keys counted:
    a trial with a plugin's loss kept its id whatever the loss computed."""
    path = tmp_path / "lossplug.py"
    path.write_text(LOSS_PLUGIN.format(name="critic"))
    load([str(path)])
    config = TrialConfig(loss="critic")
    assert config.identity()["plugins"] == {"lossplug": "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()}
    assert "plugins" not in TrialConfig(loss="hinge").identity()


DATA_PLUGIN = """
from vi_sweeps.data.datasets import DATASETS, DatasetSpec, describe_mixture

@DATASETS.register("broken6", spec=DatasetSpec("vector", "mixture"{describe}))
def broken6(cfg):
    raise RuntimeError("planted")
"""


@pytest.mark.usefixtures("isolated_plugins")
@pytest.mark.parametrize("describe", [", describe=describe_mixture", ""])
def test_a_plugin_data_set_that_raises_when_built_is_one_line_and_nothing_written(tmp_path, describe):
    """Before: with a describe hook, a RuntimeError traceback after study.yaml was written (the
    contract built it after); without one, every trial errored in its worker."""
    (tmp_path / "baddata.py").write_text(DATA_PLUGIN.format(describe=describe))
    study = tmp_path / "study.yaml"
    study.write_text("plugins: [baddata.py]\nname: x\ndatasets: [broken6]\nbudget: {iterations: 4, eval_every: 2}\n")
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(results)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert f"{study}: datasets: broken6 (plugin baddata) cannot be built (RuntimeError: planted)" in r.output, r.output
    assert not results.exists()


@pytest.mark.usefixtures("isolated_plugins")
def test_a_plugin_cannot_redeclare_a_result_key(tmp_path):
    """Before: a plugin objective declaring loss/d with another label replaced the built-in's
    declaration in contract.json, for every row."""
    (tmp_path / "keyplug.py").write_text(
        "from vi_sweeps.core.keys import Key\nfrom vi_sweeps.gan.families import GAN, LOSS_G, OBJECTIVES, ObjectiveSpec\n"
        "OBJECTIVES.register('keygan', spec=ObjectiveSpec((Key('loss/d', 'not the D loss'), LOSS_G)))(GAN)\n")
    study = tmp_path / "study.yaml"
    study.write_text("plugins: [keyplug.py]\nname: x\nbudget: {iterations: 4, eval_every: 2}\n")
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(tmp_path / "results")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "loss/d: declared by " in r.output and "and, otherwise, by keygan" in r.output, r.output
    assert not (tmp_path / "results").exists()
