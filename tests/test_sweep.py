"""Sweeps against a real local Ray (never a mock)."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import clean_metrics
from vi_contract import schema
from vi_contract.tables import pack_id
from vi_sweeps.cli.commands import main
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.driver import run_sweep

pytestmark = pytest.mark.ray

GRID = """
name: grid2x2
datasets: [ring8]
base: {hidden: 32, eval_samples: 500}
grid:
  lam: [0.0, 5.0]
  bn: [true, false]
seeds: 3
pack_seeds: 3
budget: {iterations: 40, eval_every: 20}
"""


def write(tmp_path, text, name="study.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_study(path)


def tensorboard_events(path):
    """(tag, step, kind) of every value in a TensorBoard event file (TFRecord framing)."""
    import struct

    from tensorboardX.proto import event_pb2

    out, data = [], path.read_bytes()
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        event = event_pb2.Event.FromString(data[12:12 + length])
        data = data[12 + length + 4:]
        for v in event.summary.value:
            out.append((v.tag, event.step, "image" if v.HasField("image") else "scalar"))
    return out


@pytest.mark.slow
def test_a_packed_grid_lands_each_trial_exactly_once(local_ray, tmp_path):
    study = write(tmp_path, GRID)
    results = tmp_path / "results"
    outcome = run_sweep(study, str(results), show_progress=False, tensorboard=str(tmp_path / "tb"))
    assert outcome.exit_code == 0 and outcome.unfinished == []
    on_disk = pd.read_parquet(results / schema.TRIALS_FILE)
    assert len(on_disk) == 12 and on_disk["trial_id"].is_unique
    assert set(on_disk["trial_id"]) == {t.trial_id for t in study.trials}
    assert set(zip(on_disk["config/lam"], on_disk["config/bn"], strict=False)) == {(0.0, True), (0.0, False), (5.0, True),
                                                                                   (5.0, False)}
    assert (on_disk["status"] == "finished").all() and (on_disk["config/iterations"] == 40).all()
    assert (on_disk["steps_done"] == 40).all() and (on_disk["config/pack_size"] == 3).all()
    # one pack per condition, named by its members' ids (the same id whichever members ran when)
    packs = on_disk.groupby(["config/lam", "config/bn"])
    ids = {t.trial_id: i for i, t in enumerate(study.trials)}  # the layout's order
    assert (packs["pack_id"].nunique() == 1).all() and on_disk["pack_id"].nunique() == 4
    assert (packs.apply(lambda g: pack_id(sorted(g["trial_id"], key=lambda t: ids[t]))) == packs["pack_id"].first()).all()
    metrics = pd.read_parquet(results / schema.METRICS_FILE)
    assert len(metrics) == 24 and sorted(metrics["step"].unique()) == [20, 40]
    # a sample snapshot for every evaluation of every trial
    for tid, step in metrics[["trial_id", "step"]].itertuples(index=False):
        assert (results / schema.sample_file(tid, step, ".npy")).stat().st_size > 1000
    contract = json.loads((results / schema.CONTRACT_FILE).read_text())
    assert contract["axes"] == ["model", "dataset", "lam", "bn", "seed"] and "eval/modes_lit" in contract["keys"]
    assert (results / schema.STUDY_FILE).read_text() == study.text
    assert (results / schema.VERSIONS_FILE).exists() and (results / "ray.log").exists()
    import ray._private.worker as ray_worker  # ray.log names where Ray's own logs are (issue 39: empty through a crash)

    session = ray_worker._global_node.get_session_dir_path()
    assert f"Ray's session directory: {session}; Ray's own logs: {session}/logs" in (results / "ray.log").read_text()
    assert not list((results / "checkpoints").glob("*.pt")) and not (results / "lease.json").exists()
    # Ray's own result files stay usable
    from ray.tune import ExperimentAnalysis

    (experiment,) = [p for p in (results / "ray").iterdir() if p.is_dir()]
    analysis = ExperimentAnalysis(str(experiment))
    assert len(analysis.trials) == 4 and all(t.last_result.get("members") == 3 for t in analysis.trials)
    assert "result.json" not in (results / "ray.log").read_text()
    # TensorBoard on request: each trial's declared keys and its samples at each evaluation
    runs = sorted((tmp_path / "tb" / "grid2x2").glob("*/seed*"))
    assert len(runs) == 12 and {r.parent.name for r in runs} >= {"model=gan,dataset=ring8,lam=5.0,bn=False"}
    events = tensorboard_events(next(runs[0].glob("events.out.tfevents.*")))
    assert {(t, s) for t, s, k in events if k == "scalar" and t == "loss/reg"} == {("loss/reg", 20), ("loss/reg", 40)}
    assert {s for t, s, k in events if k == "image" and t == "samples"} == {20, 40}
    # The same command again repeats nothing.
    stamps = {p.name: p.stat().st_mtime_ns for p in (results / "trials").iterdir()}
    again = run_sweep(study, str(results), show_progress=False)
    assert len(again.trials) == 12 and again.exit_code == 0
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (results / "trials").iterdir()}
    status = CliRunner().invoke(main, ["status", str(results)])
    assert "trials: 12/12 done (12 finished, 0 diverged" in status.output, status.output
    as_json = json.loads(CliRunner().invoke(main, ["status", str(results), "--json"]).output)
    assert as_json["done"] == 12 and len(as_json["conditions"]) == 4
    assert all(c["trials"] == 3 and c["done"] == 3 for c in as_json["conditions"])


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(local_ray, tmp_path):
    study = write(tmp_path, GRID.replace("lam: [0.0, 5.0]\n  bn: [true, false]", "lr: [0.0002, 1.0e10]"))
    trials = run_sweep(study, str(tmp_path / "r"), show_progress=False).trials
    assert (trials.loc[trials["config/lr"] == 1e10, "status"] == "diverged").all()
    assert (trials.loc[trials["config/lr"] == 2e-4, "status"] == "finished").all()
    assert (trials.loc[trials["config/lr"] == 2e-4, "steps_done"] == 40).all()


@pytest.mark.slow
def test_a_sweep_with_an_errored_trial_exits_1_names_it_and_records_its_error(local_ray, tmp_path, monkeypatch):
    """FID weights that are there but are not weights (a truncated download) fail their
    trials on every retry: the sweep finishes the rest, records the error, and exits 1, not 0."""
    from PIL import Image

    from vi_sweeps.metrics.evaluators import inception_class

    try:
        inception_class()
    except ImportError:
        pytest.skip("torch-fidelity is not installed")
    monkeypatch.setenv("VI_SWEEPS_CACHE", str(tmp_path / "cache"))  # Ray's workers inherit it
    rng = np.random.default_rng(0)
    (tmp_path / "faces").mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / "faces" / f"{i}.png")
    (tmp_path / "broken.pth").write_bytes(b"half a download")
    study = write(tmp_path, f"""
name: broken-weights
datasets: [ring8, image-folder]
base: {{data_root: {tmp_path / "faces"}, image_size: 8, crop: 0, width: 8, hidden: 16, batch_size: 8, eval_samples: 100,
        fid_samples: 16, fid_weights: {tmp_path / "broken.pth"}}}
seeds: 2
pack_seeds: 2
budget: {{iterations: 4, eval_every: 2}}
""")
    outcome = run_sweep(study, str(tmp_path / "r"), show_progress=False)
    assert outcome.exit_code == 1
    trials = outcome.trials.set_index("config/dataset")  # ring8 has no FID: its trials finish
    assert set(trials.loc["image-folder", "status"]) == {"error"} and set(trials.loc["ring8", "status"]) == {"finished"}
    assert sorted(outcome.unfinished) == sorted(trials.loc["image-folder", "trial_id"])
    assert f"fid_weights: {tmp_path / 'broken.pth'} cannot be loaded" in trials.loc["image-folder", "error"].iloc[0]
    assert sorted(p.stem for p in (tmp_path / "r" / "errors").iterdir()) == sorted(outcome.unfinished)


@pytest.mark.slow
def test_a_results_folder_of_another_study_is_refused(local_ray, tmp_path):
    run_sweep(write(tmp_path, GRID.replace("lam: [0.0, 5.0]", "lam: [0.0]").replace("bn: [true, false]", "bn: [true]")
                    .replace("seeds: 3\npack_seeds: 3", "seeds: 1")), str(tmp_path / "r"), show_progress=False)
    with pytest.raises(ConfigError, match="holds a different study"):
        run_sweep(write(tmp_path, GRID, "other.yaml"), str(tmp_path / "r"), show_progress=False)


@pytest.mark.slow
def test_a_half_finished_folder_resumes_with_other_execution_keys_and_reruns_no_finished_trial(local_ray, tmp_path):
    """Before: `--set threads=2` on the same study was refused ("holds a different study file")."""
    first = run_sweep(write(tmp_path, GRID), str(tmp_path / "r"), show_progress=False)
    results = tmp_path / "r"
    clean = pd.read_parquet(results / schema.METRICS_FILE)
    kept = sorted((results / "trials").iterdir())[:6]
    for path in sorted((results / "trials").iterdir())[6:]:  # half of the trials not finished
        path.unlink()
    for name in (schema.TRIALS_FILE, schema.METRICS_FILE):
        (results / name).unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in kept}
    again = load_study(tmp_path / "study.yaml", {"threads": 2})
    outcome = run_sweep(again, str(results), show_progress=False)
    assert outcome.exit_code == 0 and not outcome.unfinished
    assert {p.name: p.stat().st_mtime_ns for p in kept} == stamps  # no finished trial ran again
    assert [p.name for p in results.glob("study.run-*.yaml")] and "threads: 2" in next(results.glob("study.run-*.yaml")).read_text()
    assert (results / "study.yaml").read_text() == (tmp_path / "study.yaml").read_text()
    # the 2-D MLP computes the same numbers on 2 threads (convolutions need not: see the README)
    resumed = pd.read_parquet(results / schema.METRICS_FILE)
    cols = [c for c in clean.columns if c != "wall_s"]
    key = ["trial_id", "step"]
    pd.testing.assert_frame_equal(resumed[cols].sort_values(key).reset_index(drop=True),
                                  clean[cols].sort_values(key).reset_index(drop=True))
    assert len(first.trials) == 12
    with pytest.raises(ConfigError, match=r"holds a different study \(pack_seeds: 3 there, 1 here\)"):
        run_sweep(write(tmp_path, GRID.replace("pack_seeds: 3", "pack_seeds: 1"), "repacked.yaml"), str(results),
                  show_progress=False)


@pytest.mark.slow
def test_a_resource_refusal_writes_nothing(local_ray, tmp_path):
    study = write(tmp_path, GRID + "resources: {cpu: 1, gpu: 1}\n")
    with pytest.raises(ConfigError, match="resources.gpu: a trial needs 1 GPU but the Ray cluster has 0"):
        run_sweep(study, str(tmp_path / "r"), show_progress=False)
    assert not (tmp_path / "r").exists()
    fixed = write(tmp_path, GRID.replace("seeds: 3\npack_seeds: 3", "seeds: 1"), "fixed.yaml")
    assert run_sweep(fixed, str(tmp_path / "r"), show_progress=False).exit_code == 0  # the folder is not locked


def test_status_of_a_sweep_where_no_trial_has_reported_yet_counts_its_trials(tmp_path):
    """It exited 2 with `trials.parquet missing` between the driver's start and the first report."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / schema.STUDY_FILE).write_text(GRID)
    r = CliRunner().invoke(main, ["status", str(tmp_path / "r")])
    assert r.exit_code == 0 and "trials: 0/12 done" in r.output and "12 not started" in r.output, r.output


@pytest.mark.slow
def test_a_corrupt_trial_file_is_skipped_by_readers_and_rerun_by_the_driver(local_ray, tmp_path):
    study = write(tmp_path, GRID)
    results = tmp_path / "results"
    run_sweep(study, str(results), show_progress=False)
    victim = sorted((results / "trials").glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:200])
    status = CliRunner().invoke(main, ["status", str(results)])
    assert status.exit_code == 0 and f"skipped unreadable trial file(s) {victim.name}" in status.output
    assert "11/12 done" in status.output
    report = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    again = run_sweep(study, str(results), show_progress=False)
    assert again.exit_code == 0 and (again.trials["status"] == "finished").all() and len(again.trials) == 12
    assert [p.name.split(".parquet")[0] for p in (results / "quarantine" / "trials").iterdir()] == [victim.stem]
    assert pd.read_parquet(victim)["step"].tolist() == [20, 40]


@pytest.mark.slow
def test_an_exported_sweep_resumes_from_its_tables_without_rerunning_what_finished(local_ray, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from analysis.export import export_results
    from vi_contract.tables import with_metadata

    study = write(tmp_path, GRID)
    run_sweep(study, str(tmp_path / "first"), show_progress=False)
    export_results(str(tmp_path / "first"), tmp_path / "exported")
    # as if three trials (one condition) had not finished when the copy was made
    trials = pd.read_parquet(tmp_path / "exported" / schema.TRIALS_FILE)
    metrics = pd.read_parquet(tmp_path / "exported" / schema.METRICS_FILE)
    dropped = set(trials.loc[(trials["config/lam"] == 5.0) & ~trials["config/bn"], "trial_id"])
    contract = json.loads((tmp_path / "exported" / schema.CONTRACT_FILE).read_text())
    pq.write_table(with_metadata(trials[~trials["trial_id"].isin(dropped)], contract), tmp_path / "exported" / schema.TRIALS_FILE)
    pq.write_table(with_metadata(metrics[~metrics["trial_id"].isin(dropped)], contract), tmp_path / "exported" / schema.METRICS_FILE)
    shutil.copytree(tmp_path / "exported", tmp_path / "resumed")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "resumed" / "samples").rglob("*.npy")}
    outcome = run_sweep(study, str(tmp_path / "resumed"), show_progress=False)
    assert outcome.exit_code == 0 and len(outcome.trials) == 12 and (outcome.trials["status"] == "finished").all()
    written = {p.parent.name for p in (tmp_path / "resumed" / "samples").rglob("*.npy") if stamps.get(p) != p.stat().st_mtime_ns}
    assert written == dropped  # only the unfinished condition trained again
    before = pd.read_parquet(tmp_path / "first" / schema.METRICS_FILE).sort_values(["trial_id", "step"]).reset_index(drop=True)
    after = pd.read_parquet(tmp_path / "resumed" / schema.METRICS_FILE).sort_values(["trial_id", "step"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(after[~after["trial_id"].isin(dropped)].reset_index(drop=True),
                                  before[~before["trial_id"].isin(dropped)].reset_index(drop=True)[after.columns])


@pytest.mark.slow
def test_a_table_that_cannot_be_written_at_the_end_is_one_error_not_a_traceback(local_ray, tmp_path):
    """The last consolidation failing (a full disk, a path taken by a folder) raised StoreError
    out of run_sweep; now the sweep reports it, exits 1, and every trial file is kept."""
    study = write(tmp_path, GRID)
    (tmp_path / "r" / schema.METRICS_FILE / "in-the-way").mkdir(parents=True)
    outcome = run_sweep(study, str(tmp_path / "r"), show_progress=False)
    assert outcome.exit_code == 1 and f"cannot write {tmp_path / 'r' / schema.METRICS_FILE}" in outcome.stop_reason
    # the store's failure stops the sweep when it is first met: at its end, or at a consolidation
    # during it on a loaded machine; either way every trial file is kept and accounted for
    files = {p.stem for p in (tmp_path / "r" / "trials").glob("*.parquet")}
    assert set(outcome.trials["trial_id"]) == files and len(files) >= 1
    finished = set(outcome.trials.loc[outcome.trials["status"] == "finished", "trial_id"])
    assert sorted(outcome.unfinished) == sorted({t.trial_id for t in study.trials} - finished)


@pytest.mark.slow
def test_only_runs_a_part_first_and_the_whole_then_equals_a_clean_run(local_ray, tmp_path):
    """`run --only seed=0 --only lam=5.0`: two trials, each the first place of its pack (trained
    padded); the rest run later. Every number equals an uninterrupted run's."""
    from vi_sweeps.study.subset import select

    study = write(tmp_path, GRID)
    chosen = select(study, ["seed=0", "lam=5.0"])
    assert sorted((t.config.bn, t.config.seed) for t in study.trials if t.trial_id in chosen) == [(False, 0), (True, 0)]
    part = run_sweep(study, str(tmp_path / "r"), show_progress=False, only=chosen)
    assert set(part.trials.loc[part.trials["status"] == "finished", "trial_id"]) == chosen
    assert len(part.unfinished) == 10
    whole = run_sweep(study, str(tmp_path / "r"), show_progress=False)
    assert whole.exit_code == 0 and not whole.unfinished
    metrics = pd.read_parquet(tmp_path / "r" / schema.METRICS_FILE)
    clean = clean_metrics(study, tmp_path / "clean")
    cols = [c for c in clean.columns if c != "wall_s"]
    key = ["trial_id", "step"]
    pd.testing.assert_frame_equal(metrics[cols].sort_values(key).reset_index(drop=True),
                                  clean[cols].sort_values(key).reset_index(drop=True), check_like=True)


@pytest.mark.parametrize(("only", "message"), [
    ("lam=2", "bn_only.yaml: --only: lam=2: no trial of grid2x2 has it (choices: 0.0, 5.0)"),
    ("lamda=5", "bn_only.yaml: --only: lamda: not a config key or axis of grid2x2 (choices: ali_loss,"),
    ("lam", "bn_only.yaml: --only: 'lam': expected KEY=VALUE"),
])
def test_only_with_a_key_or_value_the_study_lacks_exits_2_in_one_line_and_writes_nothing(tmp_path, only, message):
    path = tmp_path / "bn_only.yaml"
    path.write_text(GRID)
    result = CliRunner().invoke(main, ["run", str(path), "--only", only, "--results", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_only_matches_a_label_by_its_text_even_where_yaml_would_read_another_type(tmp_path):
    """Before: `--only anchor=off` was read as False and matched no label 'off' (the error listed
    'off' among the choices); likewise on, 1e3 and 010."""
    from vi_sweeps.study.subset import select

    study = write(tmp_path, GRID.replace("grid:\n  lam: [0.0, 5.0]\n  bn: [true, false]\n",
                                         'grid:\n  anchor:\n    "off": {}\n    "on": {lam: 5.0}\n    "1e3": {lam: 1.0}\n'
                                         '    "010": {lam: 2.0}\n'))
    for text in ("off", "on", "1e3", "010", "'off'"):
        chosen = select(study, [f"anchor={text}"])
        assert {t.labels["anchor"] for t in study.trials if t.trial_id in chosen} == {text.strip("'")}, text
