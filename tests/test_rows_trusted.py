"""A trial file's rows are its trial's only when they say so in every way: its name, its
`trial_id`, the config that id hashes, its study, one row per evaluation of its budget. A file
that contradicts any of these is quarantined with one warning and its trial runs, so a crafted
folder resumes to a clean run's rows; `--reuse` takes a trial only after the same checks."""

import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vi_contract import schema
from vi_contract.read import load_location
from vi_sweeps.study.load import load_study_text
from vi_sweeps.sweep.driver import run_sweep

pytestmark = pytest.mark.ray

BASE = """
datasets: [ring8]
base: {hidden: 16, mlp_layers: 2, batch_size: 16, eval_samples: 200}
seeds: 2
pack_seeds: 2
budget: {iterations: 20, eval_every: 5}
"""
STUDY = "name: first\ngrid: {lam: [0.0, 5.0]}\n" + BASE
OTHER = "name: other\ngrid: {lam: [50.0]}\n" + BASE
FOREIGN = "0123456789abcdef"  # a name no trial of the study has


@pytest.fixture(scope="module")
def runs(local_ray, tmp_path_factory):
    """A clean run of the study and a run of another study, each done once."""
    root = tmp_path_factory.mktemp("runs")
    study = load_study_text(STUDY, "first.yaml")
    assert run_sweep(study, str(root / "clean"), show_progress=False).exit_code == 0
    assert run_sweep(load_study_text(OTHER, "other.yaml"), str(root / "other"), show_progress=False).exit_code == 0
    return study, root


def rows(folder):
    m = pd.read_parquet(folder / schema.METRICS_FILE).drop(columns="wall_s")
    return m.sort_values(["trial_id", "step"]).reset_index(drop=True)


def ids_by_lam(study):
    return {(t.config.lam, t.config.seed): t.trial_id for t in study.trials}


def trial_path(folder, tid):
    return folder / schema.trial_file(tid)


def rewrite(path, change):
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def set_column(name, value):
    return lambda t: t.set_column(t.schema.get_field_index(name), name, pa.array([value] * len(t)))


def craft(kind, study, folder, other):
    """Break `folder` (a copy of the clean run) as a hostile user would; returns the file crafted."""
    ids = ids_by_lam(study)
    a, b = ids[(0.0, 0)], ids[(5.0, 0)]
    if kind == "other-trials-rows":
        shutil.copy(trial_path(folder, b), trial_path(folder, a))
        return trial_path(folder, a)
    if kind in ("copied", "renamed"):
        (shutil.copy if kind == "copied" else shutil.move)(trial_path(folder, a), trial_path(folder, FOREIGN))
        return trial_path(folder, FOREIGN)
    foreign = next((other / schema.TRIALS_DIR).glob("*.parquet"))
    if kind in ("other-studys-file", "other-studys-trial-under-this-name"):
        shutil.copy(foreign, folder / schema.TRIALS_DIR / foreign.name)
        if kind == "other-studys-trial-under-this-name":
            rewrite(folder / schema.TRIALS_DIR / foreign.name, set_column("study", study.name))
        return folder / schema.TRIALS_DIR / foreign.name
    if kind == "duplicated-rows":
        rewrite(trial_path(folder, a), lambda t: pa.concat_tables([t, t]))
    if kind == "config-of-another-id":
        rewrite(trial_path(folder, a), set_column("config/lam", 5.0))
    return trial_path(folder, a)


KINDS = ["other-trials-rows", "copied", "renamed", "other-studys-file", "other-studys-trial-under-this-name",
         "duplicated-rows", "config-of-another-id"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_crafted_trial_file_is_quarantined_and_the_run_ends_at_the_clean_rows(runs, kind, tmp_path, capfd):
    """Before: other-trials-rows left its trial unfinished on every run (exit 0, 3 of 4 finished);
    copied and duplicated-rows doubled a trial's rows in metrics.parquet (40 rows, not 32 / 36); the
    other study's file made 5 finished trials of a 4-trial study; config-of-another-id was kept."""
    study, root = runs
    folder = tmp_path / "crafted"
    shutil.copytree(root / "clean", folder)
    crafted = craft(kind, study, folder, root / "other")
    capfd.readouterr()
    outcome = run_sweep(study, str(folder), show_progress=False)
    assert outcome.exit_code == 0 and not outcome.unfinished
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning: trial file")]
    assert len(warnings) == 1 and crafted.name in warnings[0], warnings
    assert [p.name.split(".parquet")[0] for p in (folder / schema.QUARANTINE_DIR / schema.TRIALS_DIR).iterdir()] \
        == [crafted.stem]
    pd.testing.assert_frame_equal(rows(folder), rows(root / "clean"), check_like=True, check_exact=True)
    trials = pd.read_parquet(folder / schema.TRIALS_FILE)
    assert sorted(trials["trial_id"]) == sorted(t.trial_id for t in study.trials)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["other-trials-rows", "copied", "duplicated-rows"])
def test_readers_leave_out_a_trial_file_that_contradicts_itself_and_say_so(runs, kind, tmp_path):
    """Before: report and status counted the copied trial twice (8 evaluations of 4 steps)."""
    study, root = runs
    folder = tmp_path / "crafted"
    shutil.copytree(root / "clean", folder)
    crafted = craft(kind, study, folder, root / "other")
    trials, metrics, _, notes = load_location(str(folder))
    assert not metrics.duplicated(["trial_id", "step"]).any()
    assert trials["trial_id"].is_unique
    assert any(crafted.name in note for note in notes), notes


def swap_ids(folder, a, b):
    """Two trials' files, each given the other's id and named by it: every file agrees with its name."""
    pa_, pb = trial_path(folder, a), trial_path(folder, b)
    ta, tb = pq.read_table(pa_), pq.read_table(pb)
    pq.write_table(set_column("trial_id", b)(ta), pb)
    pq.write_table(set_column("trial_id", a)(tb), pa_)


@pytest.mark.slow
def test_reuse_takes_no_trial_whose_config_or_evaluations_contradict_its_id(runs, tmp_path, capfd):
    """Before: with two ids swapped --reuse took the lam=5 numbers for the lam=0 trial, and took a
    'finished' trial holding 2 of its 4 evaluations."""
    study, root = runs
    ids = ids_by_lam(study)
    source = tmp_path / "source"
    shutil.copytree(root / "clean", source)
    swap_ids(source, ids[(0.0, 0)], ids[(5.0, 0)])
    rewrite(trial_path(source, ids[(0.0, 1)]), lambda t: t.slice(0, 2))
    capfd.readouterr()
    outcome = run_sweep(study, str(tmp_path / "here"), show_progress=False, reuse=str(source))
    assert outcome.exit_code == 0 and not outcome.unfinished
    err = capfd.readouterr().err
    assert "reused 1 finished trials" in err
    for tid in (ids[(0.0, 0)], ids[(5.0, 0)], ids[(0.0, 1)]):
        assert f"--reuse {source}: trial {tid} not taken" in err
    pd.testing.assert_frame_equal(rows(tmp_path / "here"), rows(root / "clean"), check_like=True, check_exact=True)


@pytest.mark.slow
def test_reuse_of_an_export_with_duplicated_rows_runs_that_trial_here(runs, tmp_path, capfd):
    """Before: --reuse copied the duplicated rows (8 rows of a 4-evaluation trial), and report read them."""
    study, root = runs
    tid = ids_by_lam(study)[(5.0, 1)]
    source = tmp_path / "export"
    shutil.copytree(root / "clean", source)
    shutil.rmtree(source / schema.TRIALS_DIR)  # an export: the consolidated tables only
    m = pq.read_table(source / schema.METRICS_FILE)
    twice = m.filter(pa.compute.equal(m["trial_id"], tid))
    pq.write_table(pa.concat_tables([m, twice]).replace_schema_metadata(m.schema.metadata), source / schema.METRICS_FILE)
    _, metrics, _, _ = load_location(str(source))  # what report and status read: the other 3 trials' 12 rows
    assert len(metrics) == 12 and tid not in set(metrics["trial_id"])
    capfd.readouterr()
    outcome = run_sweep(study, str(tmp_path / "here"), show_progress=False, reuse=str(source))
    assert outcome.exit_code == 0 and not outcome.unfinished
    err = capfd.readouterr().err
    assert "reused 3 finished trials" in err and f"record twice (a trial or a step repeated), as neither copy can be " \
        f"told for its own: {tid}" in err
    pd.testing.assert_frame_equal(rows(tmp_path / "here"), rows(root / "clean"), check_like=True, check_exact=True)


@pytest.mark.parametrize("status, steps, ok", [
    ("finished", [5, 10, 15, 20], True), ("finished", [5, 10], False), ("finished", [5, 5, 10, 15, 20], False),
    ("running", [5, 10], True), ("running", [10], False), ("diverged", [5, 7], True), ("diverged", [1], True),
    ("diverged", [5, 12], False), ("diverged", [5, 5], False), ("pruned", [5], True)])
def test_a_trials_evaluations_are_checked_against_its_budget(status, steps, ok):
    from tests.conftest import tiny
    from vi_sweeps.engine.rowcheck import steps_problem

    cfg = tiny(iterations=20, eval_every=5)
    assert (steps_problem(cfg, status, steps) is None) == ok
