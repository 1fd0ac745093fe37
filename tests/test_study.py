from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT
from vi_sweeps.cli import main
from vi_sweeps.config import ConfigError
from vi_sweeps.study import load_study

GOOD = """
name: ok
datasets: [ring8, grid25]
grid:
  lam: [0.0, 5.0]
  regime:
    paper-bn: {bn: true, d_steps: 1, g_steps: 1}
    paper-nobn: {bn: false, d_steps: 5, g_steps: 5}
seeds: 3
budget: {iterations: 100, eval_every: 50}
"""

BAD = {
    "unknown key": ("name: x\nbudget: {iterations: 10, eval_every: 5}\ngrid: {lam: [0.0]}\nfoo: 1\n",
                    "foo: unknown key; valid keys: name, description"),
    "unknown base key": ("name: x\nbase: {lamda: 1}\n", "base.lamda: unknown key; valid keys: model, dataset"),
    "wrong type": ("name: x\nbase: {iterations: many}\n", "base.iterations: Input should be a valid integer"),
    "unknown model": ("name: x\nmodels: [gan, wgan]\n", "models[1]: unknown model 'wgan'; valid choices: aae, ali, em, gan, vae"),
    "unknown dataset": ("name: x\ndatasets: [mnist]\n",
                        "datasets[0]: unknown dataset 'mnist'; valid choices: digits, grid25, image-folder, ring8, stacked-digits"),
    "empty grid": ("name: x\ngrid: {lam: []}\n", "grid.lam: empty axis"),
    "negative lam": ("name: x\ngrid: {lam: [0.0, -1.0]}\n", "grid.lam[1]: Input should be greater than or equal to 0"),
    "unknown axis": ("name: x\ngrid: {lamda: [1.0]}\n", "grid.lamda: unknown axis; valid keys:"),
    "bad choice": ("name: x\nbase: {penalty: median}\n", "base.penalty: Input should be 'mean' or 'sum'"),
    "impossible combination": ("name: x\nmodels: [em]\ndatasets: [digits]\n", "em runs on the 2-D mixtures only"),
    "bad collapse rule": ("name: x\ncollapse_rule: fid<3\n", "collapse_rule: unknown metric 'fid'"),
    "empty models": ("name: x\nmodels: []\n", "models: Value error, must name at least one"),
}


def test_labelled_axes_cross_with_plain_ones():
    path = Path(__file__).parent / "_good.yaml"
    study = load_from_text(GOOD, path)
    assert len(study.trials) == 2 * 2 * 2 * 3
    t = [t for t in study.trials if t.labels["regime"] == "paper-nobn"][0]
    assert (t.config.bn, t.config.d_steps, t.config.g_steps) == (False, 5, 5)
    assert len({t.trial_id for t in study.trials}) == len(study.trials)


def load_from_text(text, path):
    path.write_text(text)
    try:
        return load_study(path)
    finally:
        path.unlink()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_study_exits_2_names_file_key_and_choices(case, tmp_path):
    text, expected = BAD[case]
    study = tmp_path / "bad.yaml"
    study.write_text(text)
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(results)])
    assert r.exit_code == 2, r.output
    assert str(study) in r.output and expected in r.output, r.output
    assert not results.exists()


def test_all_problems_are_listed_together(tmp_path):
    study = tmp_path / "bad.yaml"
    study.write_text("name: x\nmodels: [wgan]\nbase: {lamda: 1}\ngrid: {lam: [-1.0]}\nbudget: {iterations: 0, eval_every: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_study(study)
    assert len(err.value.problems) == 4


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_validate(path):
    r = CliRunner().invoke(main, ["validate", str(path)])
    assert r.exit_code == 0, r.output


def test_dry_run_prints_the_table_and_writes_nothing(tmp_path):
    r = CliRunner().invoke(main, ["run", str(ROOT / "studies/quickstart.yaml"), "--dry-run", "--results", str(tmp_path / "r")])
    assert r.exit_code == 0
    assert "16 trials" in r.output and "lam" in r.output and "g_steps" in r.output
    assert not (tmp_path / "r").exists()
