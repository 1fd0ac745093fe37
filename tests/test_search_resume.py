"""A search whose driver was killed mid-suggestion resumes that suggestion: the same setting,
the same trial ids, from their checkpoints, rows equal to a clean search's. Before, the
suggestion was abandoned (Optuna FAIL): its trials stayed marked running for good and their
partial training was lost (stabilisers_fair's status showed 6 suggestions running where 2 ran)."""

import os
import signal
import subprocess
import sys

import optuna
import pandas as pd
import pytest

from tests.helpers import session_gone, wait_for
from vi_contract import schema
from vi_contract.store import Store
from vi_contract.tables import trial_status

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SEARCH = """
name: search_killed
datasets: [ring8]
base: {hidden: 64, eval_samples: 300, bn: false}
budget: {iterations: 600, eval_every: 100}
search:
  space:
    lam: {type: loguniform, low: 1.0e-2, high: 10}
  objective: {metric: fd_2d, mode: min, diverged_value: 100.0}
  seeds_per_trial: 2
  trials: TRIALS
"""
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def tune(path, results, **kw):
    cmd = [sys.executable, "-m", "vi_sweeps.cli", "tune", str(path), "--results", str(results), "--max-concurrent", "1"]
    return subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_a_killed_search_resumes_its_suggestion_from_the_checkpoints(tmp_path):
    path, results = tmp_path / "search.yaml", tmp_path / "killed"
    path.write_text(SEARCH.replace("TRIALS", "1"))
    proc = tune(path, results)
    checkpoints = results / schema.CHECKPOINTS_DIR
    assert wait_for(lambda: checkpoints.is_dir() and len(list(checkpoints.glob("*.pt"))) == 2, timeout=300)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_for(lambda: session_gone(proc.pid), timeout=30)
    storage = f"sqlite:///{results / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(storage)
    (first,) = optuna.load_study(study_name=name, storage=storage).trials
    ids = first.user_attrs["trial_ids"]
    assert first.state == optuna.trial.TrialState.RUNNING
    assert [trial_status(Store.open(str(results)), tid) for tid in ids] == ["running", "running"], "kill it mid-way"

    again = tune(path, results)
    _, err = again.communicate(timeout=400)
    assert again.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == first.params and trials[1].user_attrs["trial_ids"] == ids  # resumed, not abandoned
    rows = pd.read_parquet(results / schema.TRIALS_FILE).set_index("trial_id")
    assert sorted(rows.index) == sorted(ids) and (rows["status"] == "finished").all()
    assert (rows["search_trial"] == 1).all()
    # the resumed rows are a clean search's (the same first suggestion: the sampler's seed is the same)
    clean = tmp_path / "clean"
    ref = tune(path, clean)
    _, err = ref.communicate(timeout=400)
    assert ref.returncode == 0, err[-3000:]
    assert optuna.load_study(study_name=name, storage=f"sqlite:///{clean / 'optuna.db'}").trials[0].params == first.params
    cols = lambda m: m.drop(columns=["wall_s"]).sort_values(["trial_id", "step"]).reset_index(drop=True)  # noqa: E731
    metrics = pd.read_parquet(results / schema.METRICS_FILE)
    assert metrics.groupby("trial_id")["step"].apply(list).tolist() == [list(range(100, 601, 100))] * 2
    pd.testing.assert_frame_equal(cols(metrics), cols(pd.read_parquet(clean / schema.METRICS_FILE)), check_like=True)
