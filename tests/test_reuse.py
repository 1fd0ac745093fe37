"""--reuse: a trial another study finished is this study's trial when the ids agree (the same
experiment keys, pack size and place), so it is taken, not run, and its rows are those a run
here would give."""

import pandas as pd
import pytest

from vi_contract import schema
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.load import load_study_text
from vi_sweeps.sweep.driver import run_sweep

pytestmark = pytest.mark.ray

BASE = """
datasets: [ring8]
base: {hidden: 16, mlp_layers: 2, batch_size: 16, eval_samples: 200}
seeds: 2
pack_seeds: 2
budget: {iterations: 20, eval_every: 10}
"""
A = "name: first\ngrid: {lam: [0.0, 5.0]}\n" + BASE
B = "name: second\ngrid:\n  arm: {none: {}, anchor: {lam: 5.0}, strong: {lam: 50.0}}\n" + BASE


def rows(folder):
    m = pd.read_parquet(folder / schema.METRICS_FILE).drop(columns="wall_s")
    return m.sort_values(["trial_id", "step"]).reset_index(drop=True)


@pytest.mark.slow
def test_reused_trials_are_the_rows_a_run_gives_and_carry_this_studys_labels(tmp_path, capfd):
    first = load_study_text(A, "first.yaml")
    second = load_study_text(B, "second.yaml")
    assert run_sweep(first, str(tmp_path / "a"), show_progress=False).exit_code == 0
    outcome = run_sweep(second, str(tmp_path / "b"), show_progress=False, reuse=str(tmp_path / "a"))
    assert outcome.exit_code == 0 and not outcome.unfinished
    assert "reused 4 finished trials of" in capfd.readouterr().err
    fresh = run_sweep(second, str(tmp_path / "c"), show_progress=False)
    assert fresh.exit_code == 0
    pd.testing.assert_frame_equal(rows(tmp_path / "b"), rows(tmp_path / "c"), check_like=True)  # reused rows = run rows
    trials = pd.read_parquet(tmp_path / "b" / schema.TRIALS_FILE).set_index("trial_id")
    assert sorted(trials["axis/arm"]) == ["anchor", "anchor", "none", "none", "strong", "strong"]
    assert all((tmp_path / "b" / schema.SAMPLES_DIR / tid).is_dir() for tid in trials.index)


def test_reuse_of_a_folder_that_is_not_results_is_refused_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="--reuse: .*nowhere"):
        run_sweep(load_study_text(A, "first.yaml"), str(tmp_path / "a"), show_progress=False,
                  reuse=str(tmp_path / "nowhere"))
    assert not (tmp_path / "a").exists()
