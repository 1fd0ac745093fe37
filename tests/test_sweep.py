"""Sweeps against a real local Ray (never a mock)."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import ray
from click.testing import CliRunner

from analysis import schema
from vi_sweeps.cli import main
from vi_sweeps.results import finished_ids
from vi_sweeps.storage import Store
from vi_sweeps.study import load_study
from vi_sweeps.sweep import run_sweep

pytestmark = pytest.mark.ray

GRID = """
name: grid2x2
datasets: [ring8]
base: {hidden: 32, eval_samples: 500}
grid:
  lam: [0.0, 5.0]
  bn: [true, false]
seeds: 1
budget: {iterations: 40, eval_every: 20}
"""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def write(tmp_path, text, name="study.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_study(path)


def test_a_2x2_grid_lands_each_trial_exactly_once(local_ray, tmp_path):
    study = write(tmp_path, GRID)
    results = tmp_path / "results"
    trials = run_sweep(study, str(results), show_progress=False)
    on_disk = pd.read_parquet(results / schema.TRIALS_FILE)
    assert len(on_disk) == 4 and on_disk["trial_id"].is_unique
    assert set(on_disk["trial_id"]) == {t.trial_id for t in study.trials}
    assert set(zip(on_disk["lam"], on_disk["bn"], strict=False)) == {(0.0, True), (0.0, False), (5.0, True), (5.0, False)}
    assert (on_disk["status"] == "finished").all() and (on_disk["iterations"] == 40).all()
    metrics = pd.read_parquet(results / schema.METRICS_FILE)
    assert len(metrics) == 8 and sorted(metrics["step"].unique()) == [20, 40]
    assert (results / schema.STUDY_FILE).read_text() == study.text
    assert (results / schema.VERSIONS_FILE).exists() and (results / "ray.log").exists()
    assert not list((results / "checkpoints").glob("*.pt"))
    # The same command again repeats nothing.
    stamps = {p.name: p.stat().st_mtime_ns for p in (results / "trials").iterdir()}
    again = run_sweep(study, str(results), show_progress=False)
    assert len(again) == 4
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (results / "trials").iterdir()}
    assert len(trials) == 4
    status = CliRunner().invoke(main, ["status", str(results)])
    assert "trials: 4/4 done (4 finished, 0 diverged" in status.output, status.output


def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(local_ray, tmp_path):
    study = write(tmp_path, GRID.replace("lam: [0.0, 5.0]\n  bn: [true, false]", "lr: [0.0002, 1.0e10]"))
    trials = run_sweep(study, str(tmp_path / "r"), show_progress=False).set_index("lr")
    assert trials.loc[1e10, "status"] == "diverged" and bool(trials.loc[1e10, "diverged"])
    assert trials.loc[2e-4, "status"] == "finished" and trials.loc[2e-4, "iterations"] == 40


def test_a_results_folder_of_another_study_is_refused(local_ray, tmp_path):
    from vi_sweeps.config import ConfigError

    run_sweep(write(tmp_path, GRID.replace("lam: [0.0, 5.0]", "lam: [0.0]").replace("bn: [true, false]", "bn: [true]")),
              str(tmp_path / "r"), show_progress=False)
    with pytest.raises(ConfigError, match="holds a different study"):
        run_sweep(write(tmp_path, GRID, "other.yaml"), str(tmp_path / "r"), show_progress=False)


SLOW = """
name: interrupted
datasets: [ring8]
base: {hidden: 64, eval_samples: 500}
grid:
  lam: [0.0, 1.0, 5.0]
seeds: 2
budget: {iterations: 600, eval_every: 100}
resources: {cpu: 1}
"""


def test_a_killed_driver_resumes_without_losing_or_repeating_a_trial(tmp_path):
    study_path = tmp_path / "slow.yaml"
    study_path.write_text(SLOW)
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "vi_sweeps.cli", "run", str(study_path), "--results", str(results), "--no-report"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store.open(str(results))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(finished_ids(store)) < 2:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    done_before = finished_ids(store)
    assert 2 <= len(done_before) < 6, "kill the driver mid-way"
    partial = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / "partial")])
    assert partial.exit_code == 0, partial.output  # a report of what is there so far
    assert "finished" in (tmp_path / "partial" / "REPORT.md").read_text()
    stamps = {tid: (results / "trials" / f"{tid}.parquet").stat().st_mtime_ns for tid in done_before}
    r = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    # one compact progress line, not Ray's tables or logs (those go to RESULTS/ray.log)
    assert "[interrupted] 6/6 done · 0 running · 0 failed" in r.stderr
    assert "Trial name" not in r.stderr and "Trial status" not in r.stderr and "INFO" not in r.stderr
    trials = pd.read_parquet(results / schema.TRIALS_FILE)
    assert len(trials) == 6 and trials["trial_id"].is_unique and (trials["status"] == "finished").all()
    for tid, stamp in stamps.items():  # finished trials were not run again
        assert (results / "trials" / f"{tid}.parquet").stat().st_mtime_ns == stamp
    metrics = pd.read_parquet(results / schema.METRICS_FILE)
    assert (metrics.groupby("trial_id")["step"].apply(list) == [list(range(100, 601, 100))] * 6).all()
