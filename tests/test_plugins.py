"""Plugins written outside the package reach the driver's validation and every Ray worker
(issue 19): a study's `plugins:`, `--plugin`, entry points; failures are exit 2 naming them."""

import json
import textwrap

import pandas as pd
import pytest
import ray
from click.testing import CliRunner
from ray.cluster_utils import Cluster

from analysis.report import build_report
from vi_contract import schema
from vi_sweeps.cli.commands import main
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.driver import run_sweep

pytestmark = pytest.mark.usefixtures("isolated_plugins")  # what a test's plugins register goes with it

PLUGIN = '''
"""A plugin: a GAN that also reports the spread of its samples (a new loss key), and a
stabiliser with its own weight key."""
import os

import torch

from vi_sweeps.study.config import register_key
from vi_sweeps.core.keys import Key
from vi_sweeps.gan.families import GAN, LOSS_D, LOSS_G, LOSS_REG, OBJECTIVES, ObjectiveSpec
from vi_sweeps.gan.stabilisers import STABILISERS, Stabiliser

LOSS_SPREAD = Key("loss/spread", "spread of the generator's samples")
register_key("{stem}_weight", 0.0, "a plugin stabiliser's weight")
STABILISERS.register("{stem}-logit-decay", spec=Stabiliser(("{stem}_weight",), "E D(x)^2 on real logits",
    d_penalty=lambda s: s.family.cfg.{stem}_weight * s.real_logits.flatten(1).pow(2).mean(1)))

marker = os.environ.get("PLUGIN_MARKERS")
if marker:  # where each process imported this plugin from
    with open(os.path.join(marker, str(os.getpid())), "w") as f:
        f.write(__file__)


@OBJECTIVES.register("{stem}-gan", spec=ObjectiveSpec((LOSS_D, LOSS_G, LOSS_REG, LOSS_SPREAD)))
class SpreadGAN(GAN):
    def train_iteration(self):
        out = super().train_iteration()
        with torch.no_grad():
            fake = self.modules["G"](self.noise(self.cfg.batch_size))
        return {{**out, LOSS_SPREAD: fake.flatten(1).std(1)}}
'''

STUDY = """
plugins: [{stem}.py]
name: plugged
models: [{stem}-gan]
datasets: [ring8]
base: {{hidden: 16, mlp_layers: 2, batch_size: 16, eval_samples: 200}}
grid:
  {stem}_weight: [0.0, 0.01]
seeds: 2
pack_seeds: 2
budget: {{iterations: 20, eval_every: 10}}
resources: {{cpu: 1}}
"""


def plugin_folder(tmp_path, stem):
    folder = tmp_path / "lab"  # outside the package
    folder.mkdir()
    (folder / f"{stem}.py").write_text(PLUGIN.format(stem=stem))
    (folder / "study.yaml").write_text(STUDY.format(stem=stem))
    return folder


@pytest.mark.slow
@pytest.mark.ray
def test_a_plugin_from_outside_the_package_runs_its_trials_on_a_second_node(tmp_path, monkeypatch):
    """Before: a module registering an objective and calling run_sweep failed on every worker
    with `model: unknown` (workers never imported it)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("PLUGIN_MARKERS", str(markers))
    folder = plugin_folder(tmp_path, "spreadplug")
    study = load_study(folder / "study.yaml")
    # the head has no CPU for trials: every trial runs on the second node
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    results = tmp_path / "results"
    try:
        outcome = run_sweep(study, str(results), address=cluster.address, show_progress=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert outcome.exit_code == 0 and not outcome.unfinished
    metrics = pd.read_parquet(results / schema.METRICS_FILE)
    assert len(metrics) == 8 and (metrics["loss/spread"] > 0).all()
    trials = pd.read_parquet(results / schema.TRIALS_FILE)
    assert sorted(trials["config/spreadplug_weight"].unique()) == [0.0, 0.01]
    contract = json.loads((results / schema.CONTRACT_FILE).read_text())
    assert contract["keys"]["loss/spread"]["label"] == "spread of the generator's samples"
    assert "spreadplug_weight" in contract["config"]
    versions = json.loads((results / schema.VERSIONS_FILE).read_text())
    assert "spreadplug sha256:" in versions["plugins"]
    # the workers imported it through Ray's runtime_env (py_modules), not from the lab folder
    shipped = [p.read_text() for p in markers.iterdir()]
    assert any("runtime_resources" in path for path in shipped), shipped
    build_report([str(results)], str(tmp_path / "report"))
    assert "spread of the generator" in (tmp_path / "report" / "loss_curves.svg").read_text()


def test_without_the_plugin_the_study_is_exit_2_naming_the_unknown_name(tmp_path):
    folder = plugin_folder(tmp_path, "spreadplug2")
    bare = tmp_path / "bare.yaml"
    bare.write_text(STUDY.format(stem="spreadplug2").replace("plugins: [spreadplug2.py]\n", ""))
    r = CliRunner().invoke(main, ["validate", str(bare)])
    assert r.exit_code == 2 and "models[0]: unknown model 'spreadplug2-gan'" in r.output, r.output
    r = CliRunner().invoke(main, ["validate", str(folder / "study.yaml")])
    assert r.exit_code == 0, r.output
    keys = CliRunner().invoke(main, ["trial", "--list-keys"])
    assert "spreadplug2_weight" in keys.output  # a plugin's key is listed once it is loaded


@pytest.mark.parametrize("body, says", [
    ("raise RuntimeError('planted')", "broken.py: cannot be loaded (RuntimeError: planted)"),
    ("from vi_sweeps.gan.families import OBJECTIVES, GAN, ObjectiveSpec\nOBJECTIVES.register('gan', spec=ObjectiveSpec(()))(GAN)",
     "model 'gan' is registered twice (a built-in or another plugin has it)"),
    ("from vi_sweeps.study.config import register_key\nregister_key('lam', 1.0, 'x')", "config key 'lam' exists already"),
])
def test_a_plugin_that_fails_is_exit_2_naming_it(tmp_path, body, says, monkeypatch):
    (tmp_path / "broken.py").write_text(body + "\n")
    study = tmp_path / "study.yaml"
    study.write_text("plugins: [broken.py]\nname: x\n")
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert f"{study}: plugins[0]: " in r.output and says in r.output, r.output
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["trial", "--plugin", "broken.py", "--iterations", "1"])
    assert r.exit_code == 2 and "--plugin: " in r.output, r.output


def test_a_plugin_file_named_like_an_installed_module_is_refused(tmp_path):
    (tmp_path / "json.py").write_text("")
    r = CliRunner().invoke(main, ["trial", "--plugin", str(tmp_path / "json.py")])
    assert r.exit_code == 2 and "its name 'json' is a module Python already has" in r.output, r.output


def test_the_example_plugin_study_validates_from_a_copy_anywhere(tmp_path):
    import shutil

    from tests.conftest import ROOT

    shutil.copytree(ROOT / "examples" / "plugins", tmp_path / "copy")
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "copy" / "study.yaml")])
    assert r.exit_code == 0 and "valid, 24 trials" in r.output, r.output
    text = textwrap.dedent(CliRunner().invoke(main, ["trial", "--list-keys"]).output)
    assert "drift" in text
