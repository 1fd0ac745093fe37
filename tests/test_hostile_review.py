"""Findings of a hostile review of the trust, stabiliser and plugin changes, each pinned by a
test that failed before its fix (the wrong behaviour named in each docstring)."""

import shutil

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from tests.conftest import ROOT, tiny
from vi_sweeps.cli.commands import main
from vi_sweeps.core import plugins
from vi_sweeps.gan import losses
from vi_sweeps.gan.packing import pack
from vi_sweeps.study.config import ConfigError, make_config, register_key
from vi_sweeps.study.load import definition_differences, load_study_text

pytestmark = pytest.mark.usefixtures("isolated_plugins")  # what a test's plugins register goes with it


def test_status_of_a_results_folder_runs_none_of_its_plugins(tmp_path):
    """Before: `vi-sweep status` imported the plugins its study.yaml named (a file beside it
    wrote /tmp/rv/PWNED)."""
    folder = tmp_path / "st"
    shutil.copytree(ROOT / "docs" / "reproduction" / "pacgan_baseline", folder)
    marker = tmp_path / "PWNED"
    (folder / "evil.py").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')\n")
    text = (folder / "study.yaml").read_text()
    (folder / "study.yaml").write_text("plugins: [evil.py]\n" + text)
    r = CliRunner().invoke(main, ["status", str(folder)])
    assert r.exit_code == 0, r.output
    assert not marker.exists()


def _plugin(tmp_path, stem, body):
    path = tmp_path / f"{stem}.py"
    path.write_text(body)
    plugins.load([str(path)])
    return path


def test_a_plugins_source_is_part_of_the_ids_of_the_trials_that_use_it(tmp_path):
    """Before: editing a plugin's data set kept every trial id (fd_2d 1.568 then 30.35 under one id)."""
    _plugin(tmp_path, "idsrc_plugin", "from vi_sweeps.data.datasets import DATASETS, DatasetSpec, describe_mixture, ring\n"
            "DATASETS.register('idsrc-ring', spec=DatasetSpec('vector', 'mixture', describe=describe_mixture))"
            "(lambda cfg: ring(3.0, 0.05))\n")
    mine = make_config({"dataset": "idsrc-ring"})
    assert list(mine.identity()["plugins"]) == ["idsrc_plugin"]
    assert mine.identity()["plugins"]["idsrc_plugin"].startswith("sha256:")
    assert "plugins" not in make_config({"dataset": "ring8"}).identity()  # built-ins: ids unchanged


@pytest.mark.parametrize("name", ["trial_id", "study", "search_trial", "model_config", "identity", "_x"])
def test_a_plugin_key_named_like_an_attribute_or_a_run_parameter_is_refused(name):
    with pytest.raises(ValueError, match=f"config key {name!r}"):
        register_key(name, 0, "a knob")


def test_a_config_key_named_like_a_result_column_never_touches_it():
    """Before schema 3: register_key('step') overwrote every row's step (7 instead of 20 and 40),
    so such names were refused; now a config key's column is config/NAME."""
    from vi_contract.tables import trial_table

    rows = [{"step": s, "wall_s": 1.0, "status": "x", "collapsed": False, "diverged": False} for s in (20, 40)]
    table = trial_table({"trial_id": "t", "step": 7, "status": 1, "collapsed": 2}, {"diverged": "a"}, rows, "finished")
    frame = table.to_pandas()
    assert list(frame["step"]) == [20, 40] and list(frame["config/step"]) == [7, 7]
    assert list(frame["status"]) == ["finished"] * 2 and list(frame["config/status"]) == [1, 1]
    assert list(frame["collapsed"]) == [False] * 2 and list(frame["axis/diverged"]) == ["a"] * 2


def test_a_plugin_penalty_of_the_wrong_shape_is_refused_naming_it(tmp_path):
    """Before: a scalar penalty broadcast into every member's loss (loss/d 0.7682 packed vs 0.7214 alone)."""
    from tests.helpers import as_pack
    from vi_sweeps.engine.trial import Trial

    _plugin(tmp_path, "scalar_plugin", "from vi_sweeps.study.config import register_key\n"
            "from vi_sweeps.gan.stabilisers import STABILISERS, Stabiliser\n"
            "register_key('scalar_w', 0.0, 'a scalar penalty')\n"
            "STABILISERS.register('scalar', spec=Stabiliser(('scalar_w',), 'wrong shape', "
            "d_penalty=lambda s: s.family.cfg.scalar_w * s.real_logits.pow(2).mean()))\n")
    trial = Trial(as_pack([tiny(scalar_w=0.1, seed=s) for s in range(2)]))
    with pytest.raises(ValueError, match=r"stabiliser scalar: its penalty has shape \(\), not one value per member \(2,\)"):
        trial.model.train_iteration()


def test_a_data_set_naming_an_unknown_evaluator_is_bad_input(tmp_path):
    """Before: an UnknownName traceback, exit 1."""
    path = tmp_path / "badeval_plugin.py"
    path.write_text("from vi_sweeps.data.datasets import DATASETS, DatasetSpec, ring\n"
                    "DATASETS.register('badeval6', spec=DatasetSpec('vector', 'nosuch-evaluator'))(lambda cfg: ring(1, 0.1))\n")
    r = CliRunner().invoke(main, ["trial", "--plugin", str(path), "--dataset", "badeval6", "--iterations", "1"])
    assert r.exit_code == 2 and "unknown evaluator 'nosuch-evaluator'; valid choices:" in r.output, r.output


def test_one_and_one_point_zero_of_a_plugin_float_key_are_one_trial():
    """Before: TrialConfig(drift=1) and TrialConfig(drift=1.0) had two ids."""
    register_key("onefloat_w", 0.0, "a float knob")
    assert make_config({"onefloat_w": 1}).trial_id == make_config({"onefloat_w": 1.0}).trial_id


def test_fid_off_changes_ids_only_where_fid_is_measured():
    """Before: --set fid_weights=none changed every ring8 id (and a resume was refused)."""
    assert make_config({"fid_weights": "none"}).trial_id == make_config({}).trial_id


BASE = "datasets: [ring8]\ngrid: {lam: [0.0, 5.0]}\nbudget: {iterations: 4, eval_every: 2}\n"


@pytest.mark.parametrize("other", [
    "name: s\n" + BASE + "seeds: [0, 1, 2, 3]\n",
    "name: s\n" + BASE + "seeds: 4\ncompare: {axis: lam, baseline: 0.0}\n",
    "name: s\ndatasets: [ring8]\ngrid: {lam: [0.0, 5.0]}\nbase: {iterations: 4, eval_every: 2}\nseeds: 4\n",
])
def test_the_same_trials_spelled_another_way_are_the_same_study(other):
    """Before: each was refused, "holds a different study"."""
    before = load_study_text("name: s\n" + BASE + "seeds: 4\n", "a.yaml")
    assert definition_differences(before, load_study_text(other, "b.yaml")) == []


def test_another_experiment_is_still_named():
    before = load_study_text("name: s\n" + BASE + "seeds: 4\n", "a.yaml")
    after = load_study_text("name: s\n" + BASE.replace("5.0", "50.0") + "seeds: 4\n", "b.yaml")
    assert definition_differences(before, after) == ["grid: {'lam': [0.0, 5.0]} there, {'lam': [0.0, 50.0]} here"]


def test_a_run_on_a_folder_with_a_trial_file_of_schema_99_is_refused(tmp_path):
    """Before: only contract.json's version was checked by run; a v99 trial file was consolidated."""
    import pyarrow.parquet as pq

    from analysis.synthetic import synthetic_results
    from vi_contract import schema
    from vi_sweeps.sweep.driver import run_sweep

    folder = tmp_path / "live"
    synthetic_results(folder, {(True, 1, 0.0): 0.5}, 2, per_trial_files=True)
    path = sorted((folder / "trials").iterdir())[0]
    pq.write_table(pq.read_table(path).replace_schema_metadata({schema.SCHEMA_KEY: b"99"}), path)
    with pytest.raises(ConfigError, match="schema version '99'"):
        run_sweep(load_study_text("name: s\n" + BASE, "s.yaml"), str(folder), show_progress=False)


def test_the_gradient_penalty_of_a_zeroed_critic_has_finite_gradients():
    """Before: sqrt's infinite derivative at 0 gave a frozen stand-in NaN gradients."""
    w = torch.zeros(3, requires_grad=True)
    x = torch.randn(1, 5, 3, requires_grad=True)
    losses.gp_penalty((x @ w).unsqueeze(-1), x).sum().backward()
    assert torch.isfinite(w.grad).all()


def test_pack_refuses_backward_pre_hooks_and_hooked_layers_inside_spectral_norm():
    from vi_sweeps.gan.architectures import SpectralNorm

    hooked = nn.Linear(2, 2)
    hooked.register_full_backward_pre_hook(lambda m, g: None)
    with pytest.raises(TypeError, match="_backward_pre_hooks"):
        pack([hooked, nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="cannot pack Linear"):
        pack([SpectralNorm(nn.utils.spectral_norm(nn.Linear(2, 2))) for _ in range(2)])


def test_a_plugin_file_must_have_a_module_name(tmp_path):
    for name in ("a.b.py", "__init__.py"):
        (tmp_path / name).write_text("")
        r = CliRunner().invoke(main, ["trial", "--plugin", str(tmp_path / name)])
        assert r.exit_code == 2 and "must be a module name" in r.output, r.output


def test_migrate_of_a_folder_that_is_not_results_is_one_line(tmp_path, capsys):
    from vi_sweeps.engine.migrate import main as migrate_main

    assert migrate_main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'nowhere'}") and len(err.strip().splitlines()) == 1


def test_a_base_key_set_on_one_side_only_is_named_with_the_default_on_the_other():
    # issue 39: the mismatch message said "base.lr: None there, 0.001 here" for the default 2e-4
    before = load_study_text("name: s\n" + BASE + "seeds: 4\n", "a.yaml")
    after = load_study_text("name: s\n" + BASE + "base: {lr: 0.001}\nseeds: 4\n", "b.yaml")
    assert "base.lr: 0.0002 (the default) there, 0.001 here" in definition_differences(before, after)
