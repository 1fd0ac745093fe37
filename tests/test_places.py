"""Where a config key may be set (issue 36, item 3): one table (vi_sweeps.study.places.PLACES),
one check, one message, whichever place of a study or the command line names the key."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT
from vi_sweeps.cli.commands import main
from vi_sweeps.study.config import ConfigError, config_keys
from vi_sweeps.study.load import load_study_text
from vi_sweeps.study.places import PLACES
from vi_sweeps.study.schema import Budget

KEYS = "valid keys: " + ", ".join(config_keys())  # every config key, in TrialConfig's order
assert KEYS.startswith("valid keys: model, dataset, seed, iterations, eval_every,")

# the place, the study text, --set overrides, the line expected
CASES = {
    "base, unknown": ("base: {lamda: 1}", None, f"base.lamda: unknown key; {KEYS}"),
    "axis, unknown": ("grid: {lamda: [1.0]}", None, f"grid.lamda: unknown axis; {KEYS}"),
    "labelled axis, unknown": ("grid: {r: {a: {lamda: 1}, b: {bn: false}}}", None, f"grid.r.a.lamda: unknown key; {KEYS}"),
    "budget, unknown": ("budget: {iterations: 4, eval_every: 2, lamda: 1}", None,
                        "budget.lamda: unknown key; valid keys: iterations, eval_every"),
    "search, unknown": ("search: {space: {lamda: {type: uniform, low: 0, high: 1}}}", None,
                        f"search.space.lamda: not a searchable config key; {KEYS}"),
    "--set, unknown": ("grid: {lam: [0.0]}", {"lamda": 1}, f"lamda: unknown key; {KEYS}"),
    # a config key that another field of the study sets: where it is set, and where it is not
    "base, the seed": ("base: {seed: 3}", None, "base.seed: set by `seeds:`, not in base"),
    "axis, the seed": ("grid: {seed: [1, 2]}", None, "grid.seed: set by `seeds:`, not as an axis"),
    "labelled axis, the seed": ("grid: {r: {a: {seed: 1}, b: {seed: 2}}}", None,
                                "grid.r.a.seed: set by `seeds:`, not in a labelled axis"),
    "search, the model": ("search: {space: {model: {type: categorical, choices: [gan, vae]}}}", None,
                          "search.space.model: set by `models:`, not in a search space"),
    "--set, the data set": ("grid: {lam: [0.0]}", {"dataset": "grid25"}, "dataset: set by `datasets:`, not by --set"),
    "axis, an execution key": ("grid: {threads: [1, 4]}", None, "grid.threads: an execution key, not an axis: it does "
                               "not change the experiment, so its values would be one trial run twice; set it in base"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_place_answers_a_misplaced_key_with_the_one_message(case):
    """Before: four functions with their own copies; a labelled axis listed other keys than base,
    `grid.seed` was an 'unknown axis', and the search space called the model 'not searchable'."""
    text, overrides, expected = CASES[case]
    with pytest.raises(ConfigError) as err:
        load_study_text(f"name: x\n{text}\n", "s.yaml", overrides)
    source = "--set" if overrides else "s.yaml"
    assert f"{source}: {expected}" in str(err.value).splitlines(), str(err.value)


def test_the_budget_row_is_the_budget_s_schema():
    assert PLACES["budget"].only == tuple(Budget.model_fields)


def test_a_misplaced_key_is_exit_2_with_one_line_naming_the_file_and_nothing_written(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("name: x\ngrid: {seed: [1, 2]}\n")
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(tmp_path / "results"), "--dry-run"])
    assert r.exit_code == 2 and r.output.strip() == f"{study}: grid.seed: set by `seeds:`, not as an axis", r.output
    assert not (tmp_path / "results").exists()


def test_no_other_copy_of_the_unknown_key_message_is_left():
    """Before: eight copies of "unknown key; valid keys: ..." in vi_sweeps.study and the CLI."""
    lines = [(str(path.relative_to(ROOT)), line) for folder in ("study", "cli", "engine")
             for path in sorted(Path(ROOT, "vi_sweeps", folder).glob("*.py")) for line in path.read_text().splitlines()]
    assert [p for p, line in lines if "valid keys: {" in line] == ["vi_sweeps/study/config.py"]  # config.unknown
    assert {p for p, line in lines if re.search(r"[\"']unknown (key|axis)\b", line)} == {
        "vi_sweeps/study/config.py", "vi_sweeps/study/places.py"}  # its default wording, and the table's
