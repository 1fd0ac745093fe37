import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT, tmpfs
from vi_sweeps.cli.commands import main
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.load import load_study

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
    # before: true was taken as lam 1.0 and "5" as 5.0
    "a boolean for a number": ("name: x\nbase: {lam: true}\n", "base.lam: Input should be a valid number (got True)"),
    "text for a number": ("name: x\ngrid: {lam: [0.0, \"5\"]}\n", "grid.lam[1]: Input should be a valid number (got '5')"),
    # before: "trials gan/ring8/a and gan/ring8/b are the same experiment", naming no axis, once per lam value
    "labels that are one experiment": ("name: x\ngrid:\n  regime:\n    a: {bn: true}\n    b: {hidden: 128}\n"
                                       "  lam: [0.0, 5.0]\n",
                                       "grid.regime: regime='a' and regime='b' set the same experiment"),
    "pack_size set by hand": ("name: x\nbase: {pack_size: 4}\n", "base.pack_size: set by `pack_seeds:`, not in base"),
    "unknown model": ("name: x\nmodels: [gan, wgan]\n", "models[1]: unknown model 'wgan'; valid choices: aae, ali, em, gan, vae"),
    "unknown dataset": ("name: x\ndatasets: [mnist]\n", "datasets[0]: unknown dataset 'mnist'; valid choices: "
                        "digits, grid25, image-folder, ring8, ring8-r1, stacked-digits"),
    "empty grid": ("name: x\ngrid: {lam: []}\n", "grid.lam: empty axis"),
    "negative lam": ("name: x\ngrid: {lam: [0.0, -1.0]}\n", "grid.lam[1]: Input should be greater than or equal to 0"),
    "unknown axis": ("name: x\ngrid: {lamda: [1.0]}\n", "grid.lamda: unknown axis; valid keys:"),
    "bad choice": ("name: x\nbase: {penalty: median}\n", "base.penalty: Input should be 'mean' or 'sum'"),
    "unknown arch": ("name: x\nbase: {arch: resnet}\n", "arch: unknown 'resnet'; valid choices: auto, dcgan, mlp, pacgan, paper-64"),
    "impossible combination": ("name: x\nmodels: [em]\ndatasets: [digits]\n", "em runs on the 2-D mixtures only"),
    "bad collapse rule": ("name: x\ncollapse_rule: fid<3\n", "collapse_rule: unknown metric 'fid'; valid choices: modes"),
    "empty models": ("name: x\nmodels: []\n", "models: must name at least one"),
    # issue 9: each of these was accepted, or ended in a traceback
    "duplicate yaml key": ("name: x\ngrid:\n  lam: [0.0]\n  lam: [5.0]\n", "not valid YAML: line 4, column 3: duplicate key 'lam'"),
    "duplicate top-level key": ("name: x\nseeds: 2\nseeds: 3\n", "not valid YAML: line 3, column 1: duplicate key 'seeds'"),
    "not yaml": ("name: [x\n", "not valid YAML: line 2, column 1"),
    "duplicate seeds": ("name: x\nseeds: [0, 1, 1]\n", "seeds: seed(s) [1] appear more than once"),
    "negative seed": ("name: x\nseeds: [0, -1]\n", "seeds: seeds are non-negative, got [-1]"),
    "zero seeds": ("name: x\nseeds: 0\n", "seeds: a seed count must be at least 1, got 0"),
    "minus one seeds": ("name: x\nseeds: -1\n", "seeds: a seed count must be at least 1, got -1"),
    "duplicate grid value": ("name: x\ngrid: {lam: [0.0, 5, 5.0]}\n", "grid.lam: value 5.0 appears more than once"),
    "duplicate model": ("name: x\nmodels: [gan, gan]\n", "models: 'gan' appears more than once"),
    "labels with equal settings": ("name: x\ngrid:\n  r: {a: {bn: true}, b: {bn: true}}\n",
                                   "grid.r: labels 'a' and 'b' set the same values"),
    "name dot dot": ("name: ..\n", "name: String should match pattern"),
    "name dot": ("name: .\n", "name: String should match pattern"),
    "name with slash": ("name: a/b\n", "name: String should match pattern"),
    "base key also an axis": ("name: x\nbase: {lam: 1.0}\ngrid: {lam: [0.0, 5.0]}\n",
                              "grid.lam: an axis of a key that base.lam also sets"),
    "two axes set one key": ("name: x\ngrid:\n  bn: [true, false]\n  r: {a: {bn: true, g_steps: 1}, b: {bn: false, g_steps: 5}}\n",
                             "grid.r: sets bn, which grid.bn also sets"),
    "budget and base": ("name: x\nbase: {iterations: 50}\nbudget: {iterations: 100, eval_every: 50}\n",
                        "budget: sets iterations, which base.iterations also sets"),
    "labelled axis and datasets": ("name: x\ndatasets: [ring8]\ngrid:\n  d: {a: {dataset: grid25}, b: {dataset: ring8}}\n",
                                   "grid.d: sets dataset, which datasets also sets"),
    "base seed": ("name: x\nbase: {seed: 3}\n", "base.seed: set by `seeds:`"),
    "an execution key as an axis": ("name: x\ngrid: {threads: [1, 4]}\n",
                                    "grid.threads: an execution key, not an axis"),
    "compare axis": ("name: x\ngrid: {lam: [0.0, 5.0]}\ncompare: {axis: bn, baseline: true}\n",
                     "compare.axis: 'bn' is not an axis; valid choices: model, dataset, lam"),
    "compare baseline": ("name: x\ngrid: {lam: [0.0, 5.0]}\ncompare: {axis: lam, baseline: 1.0}\n",
                         "compare.baseline: 1.0 is not a value of lam; valid choices: 0.0, 5.0"),
    "search metric": ("name: x\nsearch:\n  space: {lam: {type: uniform, low: 0, high: 1}}\n  objective: {metric: fid_inception}\n",
                      "search.objective.metric: 'fid_inception' is not a metric of these data sets; valid choices: modes"),
    # a hostile tester's finds: each was accepted, or ended in a traceback or in pydantic's words
    "a seed count beyond max_trials": ("name: x\nseeds: 100000000000\n", "the grid has 100,000,000,000 trials"),
    "a seed beyond int64": ("name: x\nseeds: [18446744073709551616]\n", "seeds: seeds are at most 2**63 - 1"),
    "seeds as text": ("name: x\nseeds: abc\n", "seeds: a count (seeds 0..n-1) or a list of distinct integer seeds, got 'abc'"),
    "seeds as booleans": ("name: x\nseeds: [true, false]\n", "seeds: a count (seeds 0..n-1) or a list of distinct"),
    "a name too long for a folder": ("name: " + "a" * 300 + "\n", "name: String should have at most 100 characters"),
    "no name": ("datasets: [ring8]\n", "name: missing; give one (letters, digits"),
    "an axis that is one value": ("name: x\ngrid: {lam: 5}\n", "grid.lam: expected a list or a mapping (got 5)"),
    "an axis name with a slash": ("name: x\ngrid:\n  a/b: {a: {lam: 0.0}, b: {lam: 1.0}}\n",
                                  "grid.a/b: a labelled axis's name must be non-empty and without '/'"),
    "a label that breaks tables": ("name: x\ngrid:\n  r: {'a|b': {lam: 0.0}, c: {lam: 1.0}}\n",
                                   "grid.r: label 'a|b' must be non-empty text without '|'"),
    "a search choice the key refuses": ("name: x\nsearch:\n  space: {bn: {type: categorical, choices: [maybe, true]}}\n",
                                        "search.space.bn.choices[0]: Input should be a valid boolean"),
    "cuda without a gpu": ("name: x\nbase: {device: cuda}\n", "device: cuda, but resources.gpu is 0"),
    "max_trials past its bound": ("name: x\nseeds: 100000000000000000000\nmax_trials: 1000000000000000000000\n",
                                  "max_trials: Input should be less than or equal to 100000000"),
    "nested too deep": ("name: x\nbase: {lr: " + "[" * 3000 + "]" * 3000 + "}\n", "nested too deeply to be a study file"),
    "labels that are numbers": ("name: x\ngrid:\n  r: {1: {lam: 1.0}, 2: {lam: 2.0}}\n", "grid.r: label 1 must be text"),
    "an infinite value": ("name: x\nbase: {lr: .inf}\n", "base.lr: Input should be a finite number"),
    "a size past its bound": ("name: x\nbase: {hidden: 100000000000000000000000}\n",
                              "base.hidden: Input should be less than or equal to 65536"),
    "a huge value shown short": ("name: x\nbase: {lr: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}\n",
                                 "...)"),
    "huge grid": ("name: x\ngrid:\n" + "".join(f"  {k}: [{', '.join(str(v) for v in range(1, 11))}]\n"
                                             for k in ("hidden", "z_dim", "width", "g_repeats", "d_steps",
                                                       "g_steps", "mlp_layers", "batch_size")) + "seeds: 10\n",
                  "the grid has 1,000,000,000 trials, more than max_trials (100,000)"),
}


def load_from_text(text, path):
    path.write_text(text)
    try:
        return load_study(path)
    finally:
        path.unlink()


def test_labelled_axes_cross_with_plain_ones():
    path = Path(__file__).parent / "_good.yaml"
    study = load_from_text(GOOD, path)
    assert len(study.trials) == 2 * 2 * 2 * 3
    t = [t for t in study.trials if t.labels["regime"] == "paper-nobn"][0]
    assert (t.config.bn, t.config.d_steps, t.config.g_steps) == (False, 5, 5)
    assert len({t.trial_id for t in study.trials}) == len(study.trials)
    assert study.axes == ["model", "dataset", "lam", "regime", "seed"]
    assert study.compare == {"axis": "lam", "baseline": 0.0}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_study_exits_2_names_file_key_and_choices(case, tmp_path):
    text, expected = BAD[case]
    study = tmp_path / "bad.yaml"
    study.write_text(text)
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(results)])  # its time: benchmarks/bounds.py refusals
    assert r.exit_code == 2, r.output
    assert str(study) in r.output and expected in r.output, r.output
    assert r.output.count(expected) == 1, r.output  # each problem once
    assert not results.exists()


def test_binary_garbage_is_refused_in_one_line(tmp_path):
    study = tmp_path / "garbage.yaml"
    study.write_bytes(bytes(range(256)) * 4)
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 2 and r.output.strip().count("\n") == 0
    assert f"{study}: not a UTF-8 text file (byte 0x80 at offset 128)" in r.output


SET_CASES = {
    "a grid axis": ("lam=1", "--set: lam: a grid axis of"),
    "a labelled axis key": ("bn=false", "--set: bn: set by the labelled axis grid.regime of"),
    "an unknown key": ("lamda=1", "--set: lamda: unknown key; valid keys: model"),
    "a bad value": ("lr=-1", "--set: lr: Input should be greater than 0"),
    "the seed": ("seed=3", "--set: seed: set by `seeds:`"),
    "no equals sign": ("lr", "--set: 'lr': expected KEY=VALUE"),
    "a budget key": ("iterations=3", "--set: iterations: set by budget.iterations of"),
}


@pytest.mark.parametrize("case", list(SET_CASES))
def test_a_set_mistake_is_blamed_on_set(case, tmp_path):
    assignment, expected = SET_CASES[case]
    study = tmp_path / "s.yaml"
    study.write_text(GOOD)
    r = CliRunner().invoke(main, ["run", str(study), "--set", assignment, "--results", str(tmp_path / "r")])
    assert r.exit_code == 2 and expected in r.output, r.output
    assert f"{study}:" not in r.output.split(expected)[0]
    assert not (tmp_path / "r").exists()


def test_a_set_override_of_a_base_key_lands_in_the_study_as_run(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(GOOD)
    loaded = load_study(study, {"lr": 0.01})
    assert all(t.config.lr == 0.01 for t in loaded.trials) and "lr: 0.01" in loaded.text


def test_all_problems_are_listed_together(tmp_path):
    study = tmp_path / "bad.yaml"
    study.write_text("name: x\nmodels: [wgan]\nbase: {lamda: 1}\ngrid: {lam: [-1.0]}\nbudget: {iterations: 0, eval_every: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_study(study)
    assert len(err.value.problems) == 4


def test_every_problem_of_a_search_section_is_listed_not_only_the_first(tmp_path):
    """A bad `search.trials` dropped the whole section from the second pass, so its space's
    problems (an unknown key, low above high) went unreported until the next attempt."""
    study = tmp_path / "bad.yaml"
    study.write_text("name: x\nsearch:\n  trials: 0\n  space:\n    lamm: {type: uniform, low: 0, high: 1}\n"
                     "    lam: {type: uniform, low: 1, high: 0}\n")
    with pytest.raises(ConfigError) as err:
        load_study(study)
    assert [p.split(":")[0] for p in err.value.problems] == ["search.trials", "search.space.lamm", "search.space.lam"]


def test_yaml_anchors_and_merge_keys_are_yaml(tmp_path):
    study = tmp_path / "merge.yaml"
    study.write_text("name: x\nbase: {lr: 0.001}\ngrid:\n  r:\n    a: &common {bn: false, g_steps: 5}\n"
                     "    b: {<<: *common, g_steps: 1}\n")
    loaded = load_study(study)
    assert sorted((t.labels["r"], t.config.bn, t.config.g_steps) for t in loaded.trials) == [("a", False, 5), ("b", False, 1)]


BAD_PLACES = {
    "empty": ([], "--results", "", "--results: an empty path"),
    "unknown scheme": ([], "--results", "foo://bar", "--results: foo://bar: not a filesystem URI pyarrow knows; valid schemes"),
    "uncreatable": ([], "--results", "/proc/vi-sweeps/r", "--results: /proc/vi-sweeps/r: cannot create the results folder"),
    "address": (["--results", "RESULTS"], "--address", "garbage", "--address: garbage: not a Ray address; valid forms: HOST:PORT"),
    "concurrency": (["--results", "RESULTS"], "--max-concurrent", "0", "'--max-concurrent': 0 is not in the range x>=1"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_PLACES))
def test_a_bad_place_to_run_exits_2_and_writes_nothing(case, tmp_path):
    extra, option, value, expected = BAD_PLACES[case]
    study = tmp_path / "s.yaml"
    study.write_text("name: s\nbudget: {iterations: 4, eval_every: 2}\n")
    args = [a.replace("RESULTS", str(tmp_path / "r")) for a in extra]
    r = subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "run", str(study), *args, option, value],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and expected in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_a_report_that_cannot_be_written_exits_2_naming_the_folder(tmp_path):
    from analysis.synthetic import synthetic_results

    synthetic_results(tmp_path / "results", {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5}, seeds=4)
    (tmp_path / "out").write_text("a file where the report folder would go")
    r = CliRunner().invoke(main, ["report", str(tmp_path / "results"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and f"cannot write the report to {tmp_path / 'out'}" in r.output, r.output


def test_a_large_grid_validates(tmp_path):
    """Its time (under 10 s): benchmarks/bounds.py large-grid."""
    study = tmp_path / "big.yaml"
    study.write_text("name: big\ngrid:\n  hidden: [" + ", ".join(str(8 + i) for i in range(100)) + "]\n"
                     "  lam: [" + ", ".join(str(i / 10) for i in range(100)) + "]\nseeds: 10\n")
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 0 and "100000 trials" in r.output


def test_max_trials_is_the_study_s_to_raise(tmp_path):
    study = tmp_path / "wide.yaml"
    grid = "name: wide\ngrid:\n  lam: [" + ", ".join(str(i) for i in range(1000)) + "]\nseeds: 101\n"
    study.write_text(grid)
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 2 and "the grid has 101,000 trials, more than max_trials (100,000)" in r.output
    study.write_text(grid + "max_trials: 200000\n")
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 0 and "101000 trials" in r.output


def test_torch_threads_beyond_the_cpus_ray_reserves_are_warned_of_by_validate_and_run(tmp_path):
    """Nothing said that threads=2 packs, Ray reserving 1 CPU each, share cores: the threads=2 resume
    of tests/test_sweep.py ran 113 s beside one busy core, 21 s alone."""
    study = tmp_path / "s.yaml"
    study.write_text(GOOD)
    warning = (f"warning: {study}: threads 2 > resources.cpu 1: each pack runs 2 torch threads on the 1 CPU(s) Ray "
               "reserves for it, so packs side by side oversubscribe the cores and run slower; set resources: {cpu: 2}")
    plain = CliRunner().invoke(main, ["validate", str(study)])
    assert plain.exit_code == 0 and "oversubscribe" not in plain.output
    for command in (["validate"], ["run", "--dry-run", "--results", str(tmp_path / "r")]):
        r = CliRunner().invoke(main, [*command, str(study), "--set", "threads=2"])
        assert r.exit_code == 0 and warning in r.stderr, r.output
    assert not (tmp_path / "r").exists()
    study.write_text(GOOD + "resources: {cpu: 2}\n")
    r = CliRunner().invoke(main, ["validate", str(study), "--set", "threads=2"])
    assert r.exit_code == 0 and "oversubscribe" not in r.output


@pytest.mark.parametrize("path", sorted((ROOT / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_validate(path):
    r = CliRunner().invoke(main, ["validate", str(path)])
    assert r.exit_code == 0, r.output


def test_dry_run_prints_the_table_and_writes_nothing(tmp_path):
    r = CliRunner().invoke(main, ["run", str(ROOT / "studies/quickstart.yaml"), "--dry-run", "--results", str(tmp_path / "r")])
    assert r.exit_code == 0
    assert "trials (dry run: nothing written)" in r.output and "lam" in r.output and "g_steps" in r.output
    assert not (tmp_path / "r").exists()


def test_a_results_path_that_is_a_file_is_refused(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(GOOD)
    (tmp_path / "taken").write_text("not a folder")
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(tmp_path / "taken")])
    assert r.exit_code == 2 and f"--results {tmp_path / 'taken'}: {tmp_path / 'taken'} is a file" in r.output
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(tmp_path / "taken" / "sub")])
    assert r.exit_code == 2 and "is a file, not a folder" in r.output


def test_a_read_only_results_folder_is_refused(tmp_path):
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as ro:
        study = tmp_path / "s.yaml"
        study.write_text(GOOD)
        out = CliRunner().invoke(main, ["run", str(study), "--results", str(ro / "results")])
        assert out.exit_code == 2 and f"{ro} is not writable" in out.output, out.output


def test_status_of_a_missing_folder_exits_2_and_creates_nothing(tmp_path):
    r = CliRunner().invoke(main, ["status", str(tmp_path / "no" / "such" / "dir")])
    assert r.exit_code == 2 and "no such results folder" in r.output
    assert not (tmp_path / "no").exists()
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no such results folder" in r.output


def test_resume_of_a_folder_without_a_sweep_is_refused(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(GOOD)
    r = CliRunner().invoke(main, ["run", str(study), "--resume", "--results", str(tmp_path / "typo")])
    assert r.exit_code == 2 and f"--resume: {tmp_path / 'typo'} holds no sweep to resume" in r.output
    assert not (tmp_path / "typo").exists()


def test_an_endless_or_huge_file_is_refused_without_reading_it_all(tmp_path):
    """`validate /dev/zero` read for ever; a file past a page of YAML is not a study."""
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n" + "# padding\n" * 200_000)
    for path in (big, "/dev/zero"):
        r = CliRunner().invoke(main, ["validate", str(path)])
        assert r.exit_code == 2 and "larger than 1,048,576 bytes" in r.output, r.output


def test_set_on_a_study_whose_base_is_not_a_mapping_names_base(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("name: x\nbase: [1, 2]\n")
    r = CliRunner().invoke(main, ["validate", str(study), "--set", "hidden=8"])
    assert r.exit_code == 2 and "base: expected a mapping of config keys (got [1, 2])" in r.output, r.output


def test_a_study_without_a_treatment_to_compare_validates_with_a_warning(tmp_path):
    # issue 39: such a study validated silently and only its finished report said "no findings"
    study = tmp_path / "plain.yaml"
    study.write_text("name: plain\ngrid:\n  lam: [0, 5]\nseeds: 2\n")
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 0 and "valid, 4 trials" in r.output
    assert f"warning: {study}: no `compare:` (axis, baseline): the report will describe each condition" in r.output
    study.write_text("name: plain\ngrid:\n  lam: [0, 5]\nseeds: 2\ncompare: {axis: lam, baseline: 0}\n")
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 0 and "warning" not in r.output
