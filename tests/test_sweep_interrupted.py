"""Sweeps driven as users drive them, by `vi-sweep run` in a process of its own: killed, stopped
with Ctrl-C, taken over by a second driver, out of disk, run from a relative folder. Each resume
loses and repeats nothing. (Split from tests/test_sweep.py so that the two test workers share the
long files evenly.)"""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import clean_metrics, tmpfs
from tests.helpers import session_gone, wait_for
from vi_contract import schema
from vi_contract.store import Store
from vi_contract.tables import finished_ids
from vi_sweeps.cli.commands import main
from vi_sweeps.study.load import load_study

pytestmark = pytest.mark.ray


SLOW = """
name: interrupted
datasets: [ring8]
base: {hidden: 64, eval_samples: 500}
grid:
  lam: [0.0, 1.0, 5.0]
seeds: 4
pack_seeds: 2
budget: {iterations: 600, eval_every: 100}
resources: {cpu: 1}
"""


def cli(study_path, results, *extra):
    return [sys.executable, "-m", "vi_sweeps.cli", "run", str(study_path), "--results", str(results), "--no-report", *extra]


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_a_killed_driver_resumes_without_losing_or_repeating_a_trial(tmp_path):
    study_path = tmp_path / "slow.yaml"
    study_path.write_text(SLOW)
    results = tmp_path / "results"
    proc = subprocess.Popen(cli(study_path, results), env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store.open(str(results))
    wait_for(lambda: len(finished_ids(store)) >= 4 and len(list((results / "checkpoints").glob("*.pt"))) >= 2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    assert wait_for(lambda: session_gone(proc.pid), timeout=30)
    done_before = finished_ids(store)
    assert 4 <= len(done_before) < 12, "kill the driver mid-way"
    # one unfinished member's checkpoint is truncated: it starts over, with a warning naming it
    checkpoints = sorted(p for p in (results / "checkpoints").glob("*.pt") if p.stem not in done_before)
    assert checkpoints, "the killed sweep left checkpoints"
    victim = checkpoints[0]
    victim.write_bytes(victim.read_bytes()[:100])
    # a write killed between its temporary file and the move (seen on S3 in a CI run: the
    # resumed sweep left trials/<id>.parquet.tmp-543a4f04 behind)
    leftover = results / "trials" / f"{victim.stem}.parquet.tmp-543a4f04"
    leftover.write_bytes(b"PAR1 half a file")
    partial = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / "partial")])
    assert partial.exit_code == 0, partial.output  # a report of what is there so far, read-only
    assert "finished" in (tmp_path / "partial" / "REPORT.md").read_text()
    stamps = {tid: (results / "trials" / f"{tid}.parquet").stat().st_mtime_ns for tid in done_before}
    r = subprocess.run(cli(study_path, results, "--resume"), env=ENV, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    # one compact progress line, not Ray's tables or logs (those go to RESULTS/ray.log)
    assert "[interrupted] 12/12 seeds done · 0 packs running" in r.stderr and "· 0 failed" in r.stderr
    assert "Trial name" not in r.stderr and "Trial status" not in r.stderr and "INFO" not in r.stderr
    assert f"warning: checkpoint {victim} is unreadable" in r.stderr and f"trial {victim.stem} starts over" in r.stderr
    assert list((results / "quarantine" / "checkpoints").iterdir())
    assert "removed 1 temporary files of writes a stopped sweep did not finish (e.g. trials/" in r.stderr
    assert not leftover.exists() and not [p for p in results.rglob("*") if ".tmp-" in p.name]
    trials = pd.read_parquet(results / schema.TRIALS_FILE)
    assert len(trials) == 12 and trials["trial_id"].is_unique and (trials["status"] == "finished").all()
    for tid, stamp in stamps.items():  # finished trials were not run again
        assert (results / "trials" / f"{tid}.parquet").stat().st_mtime_ns == stamp
    metrics = pd.read_parquet(results / schema.METRICS_FILE)
    assert (metrics.groupby("trial_id")["step"].apply(list) == [list(range(100, 601, 100))] * 12).all()
    # and the resumed rows (a truncated checkpoint among them) are a clean run's, bit for bit: each
    # trial trained at its own place of a pack of its own size (issue 23); the packs that finished
    # before the kill were not run again (their files' times above)
    resumed = {t.trial_id for t in load_study(study_path).trials} - done_before
    clean = clean_metrics(load_study(study_path), tmp_path / "clean", resumed)
    cols = [c for c in clean.columns if c != "wall_s"]
    again = metrics[metrics["trial_id"].isin(clean["trial_id"])]
    assert resumed <= set(clean["trial_id"])
    pd.testing.assert_frame_equal(again[cols].sort_values(["trial_id", "step"]).reset_index(drop=True),
                                  clean[cols].sort_values(["trial_id", "step"]).reset_index(drop=True), check_like=True)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_exits_130_and_names_what_is_unfinished(tmp_path):
    study_path = tmp_path / "slow.yaml"
    study_path.write_text(SLOW.replace("seeds: 4", "seeds: 2").replace("pack_seeds: 2", "pack_seeds: 1"))
    results = tmp_path / "results"
    proc = subprocess.Popen(cli(study_path, results, "--max-concurrent", "1"), env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = Store.open(str(results))
    assert wait_for(lambda: len(finished_ids(store)) >= 1)
    while_running = CliRunner().invoke(main, ["status", str(results)]).output
    assert f"driver {os.uname().nodename}:{proc.pid}" in while_running and "in progress" in while_running, while_running
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "stopped: interrupted" in err and "Traceback" not in err
    assert "trial(s) did not finish; run the same command again to resume them" in err
    assert "lam=5.0 seed=1 (no results yet)" in err  # one at a time: the last never began
    unfinished = 6 - len(finished_ids(store))
    assert f"{unfinished} trial(s) did not finish" in err
    assert not (results / "lease.json").exists()
    # a trial left marked running is shown as interrupted, not as in progress
    marked = (pd.read_parquet(results / schema.TRIALS_FILE)["status"] == "running").sum()
    after = CliRunner().invoke(main, ["status", str(results)]).output
    assert "no driver (stopped or finished)" in after and f"{marked} interrupted (run the same command" in after, after
    assert "in progress" not in after


TWO_DRIVERS = SLOW.replace("name: interrupted", "name: contested").replace("iterations: 600", "iterations: 1000")


@pytest.mark.slow
def test_two_drivers_never_share_a_folder_and_a_forced_takeover_loses_nothing(tmp_path):
    study_path = tmp_path / "s.yaml"
    study_path.write_text(TWO_DRIVERS)
    results = tmp_path / "results"
    # the first driver runs one pack at a time, so it is still running when the takeover comes: on a
    # quiet machine, with two at a time, it finished all six packs first and exited 0 (a lost race,
    # not a takeover); the takeover runs two at a time (execution settings may differ on resume)
    first = subprocess.Popen(cli(study_path, results, "--max-concurrent", "1"), env=ENV, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(lambda: (results / "lease.json").exists() and list((results / "trials").glob("*.parquet"))
                    if (results / "trials").exists() else False)
    # watch every trial file: once finished, a file must never say anything else
    seen_finished, regressions = set(), []

    def watch():
        for p in (results / "trials").glob("*.parquet"):
            try:
                status = pd.read_parquet(p, columns=["status"])["status"].iloc[0]
            except Exception:  # noqa: BLE001 - a file mid-replace is simply read next time
                continue
            if status in ("finished", "diverged"):
                seen_finished.add(p.name)
            elif p.name in seen_finished:
                regressions.append(p.name)

    second = subprocess.run(cli(study_path, results), env=ENV, capture_output=True, text=True, timeout=120)
    assert second.returncode == 3, second.stderr[-2000:]
    assert "is in use by the driver" in second.stderr and "--force" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    watch()
    takeover = subprocess.Popen(cli(study_path, results, "--force"), env=ENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while takeover.poll() is None:
        watch()
        time.sleep(0.2)
    first_out, first_err = first.communicate(timeout=120)
    _, take_err = takeover.communicate()
    watch()
    assert takeover.returncode == 0, take_err[-3000:]
    assert first.returncode == 1 and "another driver took the results folder over" in first_err
    assert regressions == []
    trials = pd.read_parquet(results / schema.TRIALS_FILE)
    assert len(trials) == 12 and trials["trial_id"].is_unique and (trials["status"] == "finished").all()
    metrics = pd.read_parquet(results / schema.METRICS_FILE)
    assert (metrics.groupby("trial_id")["step"].apply(list) == [list(range(100, 1001, 100))] * 12).all()


FULL = """
name: fills-the-disk
datasets: [ring8]
base: {hidden: 256, eval_samples: 500}
grid:
  lam: [0.0, 5.0]
seeds: 2
budget: {iterations: 60, eval_every: 20}
"""


@pytest.mark.slow
def test_a_full_disk_stops_the_sweep_with_one_error_and_resume_completes(tmp_path):
    with tmpfs(tmp_path / "disk", "1200k") as disk:
        study_path = tmp_path / "full.yaml"
        study_path.write_text(FULL)
        results = disk / "results"
        r = subprocess.run(cli(study_path, results), env=ENV, capture_output=True, text=True, timeout=300)
        assert r.returncode == 1, r.stderr[-3000:]
        assert "no space left on the device" in r.stderr and "MiB free" in r.stderr
        assert len(r.stderr.splitlines()) < 25, r.stderr  # not thousands of logging tracebacks
        assert "Traceback" not in r.stderr
        assert not [p for p in disk.rglob("*") if ".tmp-" in p.name]
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        r = subprocess.run(cli(study_path, results, "--resume"), env=ENV, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        trials = pd.read_parquet(results / schema.TRIALS_FILE)
        assert len(trials) == 4 and (trials["status"] == "finished").all()
        metrics = pd.read_parquet(results / schema.METRICS_FILE)
        assert (metrics.groupby("trial_id")["step"].apply(list) == [[20, 40, 60]] * 4).all()


@pytest.mark.slow
def test_the_default_relative_results_folder_is_where_the_caller_stands(tmp_path):
    """Ray workers run in their own working directory: a relative RESULTS (the default
    results/NAME) handed to them as given wrote every trial somewhere else, and the driver
    found 0 of 4 finished."""
    (tmp_path / "study.yaml").write_text(FULL)
    cmd = [sys.executable, "-m", "vi_sweeps.cli", "run", "study.yaml", "--no-report"]
    r = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    trials = pd.read_parquet(tmp_path / "results" / "fills-the-disk" / schema.TRIALS_FILE)
    assert len(trials) == 4 and (trials["status"] == "finished").all()
    assert len(list((tmp_path / "results" / "fills-the-disk" / "trials").glob("*.parquet"))) == 4
