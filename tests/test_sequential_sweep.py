"""A sequential study through `vi-sweep run` on a real private Ray (issue 37): a planted large
effect stops at the first interim, a null runs to max, and a driver killed between interims and
resumed gives the rows and decisions of an uninterrupted run. One study serves both (one run)."""

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.claims import report_sections as claims_sections
from analysis.claims import report_studies
from analysis.interims import report_sections as interims_sections
from analysis.load import load_results
from tests.conftest import clean_sequential
from tests.helpers import session_gone, wait_for
from vi_contract import schema
from vi_contract.store import Store
from vi_contract.tables import finished_ids
from vi_sweeps.cli.commands import main
from vi_sweeps.cli.sequential import status_paths
from vi_sweeps.study.load import load_study

pytestmark = pytest.mark.ray

# The degenerate arm's G steps at lr 1.0 (its samples land ~1e5 away: fd_2d > 100, collapsed by
# the rule, every seed); the base and `other` arms' fd_2d stays under 15 at 60 iterations (never
# collapsed). Degenerate vs base: 8/8 against 0/8, Fisher's z 3.78 over the first boundary at
# Holm's alpha/2 (3.34): decided at interim 1 of 2. Other vs base: 0/8 against 0/8 twice, z 0:
# not decided at max.
PLANTED = """
name: seq_planted
models: [gan]
datasets: [ring8]
base: {hidden: 32, mlp_layers: 2, z_dim: 4, batch_size: 64, eval_samples: 500, lr: 2.0e-3}
grid:
  arm:
    base: {lr_g: 2.0e-3, lam: 0.0}
    degenerate: {lr_g: 1.0, lam: 0.0}
    other: {lr_g: 2.0e-3, lam: 0.5}
seeds: {interim: 8, max: 16}
pack_seeds: 8
budget: {iterations: 60, eval_every: 30}
resources: {cpu: 1}
collapse_rule: fd_2d>100
compare: {axis: arm, baseline: base}
claims:
  - id: P1
    statement: the degenerate arm collapses more often than the base one
    primary: {endpoint: collapse_end, expect: higher}
"""

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run(study_path, results, *extra):
    return [sys.executable, "-m", "vi_sweeps.cli", "run", str(study_path), "--results", str(results), "--no-report",
            *extra]


def rows(folder):
    """The trials and metrics tables without wall-clock columns, in a fixed order."""
    trials = pd.read_parquet(folder / schema.TRIALS_FILE).drop(columns="wall_s")
    metrics = pd.read_parquet(folder / schema.METRICS_FILE).drop(columns="wall_s")
    return (trials.sort_values("trial_id").reset_index(drop=True),
            metrics.sort_values(["trial_id", "step"]).reset_index(drop=True))


def test_a_planted_effect_stops_at_the_first_interim_and_a_killed_driver_resumes_to_the_same_rows(tmp_path):
    study_path = tmp_path / "planted.yaml"
    study_path.write_text(PLANTED)
    study = load_study(study_path)
    results = tmp_path / "results"
    proc = subprocess.Popen(run(study_path, results), env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store.open(str(results))
    # between interims: the first interim (3 packs of 8) is in, the second (2 packs) not yet
    wait_for(lambda: len(finished_ids(store)) >= 24)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_for(lambda: session_gone(proc.pid), timeout=30)
    assert 24 <= len(finished_ids(store)) < 40, "kill the driver between the interims"

    r = subprocess.run(run(study_path, results, "--resume"), env=ENV, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "claims 1/2 decided · interim 1 of 2" in r.stderr
    assert "claims 2/2 decided · interim 2 of 2" in r.stderr
    assert "the design ran 40 of the study's 48 trials" in r.stderr

    trials, metrics = rows(results)
    seeds = trials.groupby("axis/arm")["config/seed"].apply(lambda s: sorted(s.astype(int)))
    assert seeds.to_dict() == {"base": list(range(16)), "degenerate": list(range(8)), "other": list(range(16))}
    collapsed = trials.groupby("axis/arm")["collapsed"].sum().to_dict()
    assert collapsed == {"base": 0, "degenerate": 8, "other": 0}  # the planted effect, as designed

    _, paths = status_paths(str(results))
    by = {p["comparison"]: p for p in paths}
    large, null = by["P1: ring8, arm degenerate vs base"], by["P1: ring8, arm other vs base"]
    assert (large["decision"], large["interims"], large["seeds used"]) == ("supports", 1, 8)
    assert large["boundary"] == pytest.approx(3.3446, abs=1e-3) and large["level"] == pytest.approx(0.025)
    assert large["z"] == "+3.78"
    assert (null["decision"], null["interims"], null["seeds used"], null["z"]) == ("not decided", 2, 16, "+0.00, +0.00")
    assert null["level"] == pytest.approx(0.05)  # Holm: the rejected comparison's alpha passed on

    shown = CliRunner().invoke(main, ["status", str(results)])
    assert shown.exit_code == 0, shown.output
    assert "sequential design (interims of 8 up to 16 seeds): claims 2/2 decided · interim 2 of 2" in shown.output
    assert "P1: ring8, arm degenerate vs base" in shown.output and "supports" in shown.output
    # the report's section is the same table, beside the fixed-n verdicts labelled as such
    declared = report_studies(load_results([str(results)], warn=False))
    sections = claims_sections(declared) + interims_sections(declared)
    assert sections[1][0] == "Declared claims: every cell (fixed-n analysis)"
    assert sections[2][2].to_dict(orient="records") == paths

    # an uninterrupted run of the same design (in this process, no Ray): the same rounds, rows, decisions
    clean_sequential(study, tmp_path / "clean")
    clean_trials, clean_metrics = rows(tmp_path / "clean")
    pd.testing.assert_frame_equal(trials, clean_trials, check_like=True)
    pd.testing.assert_frame_equal(metrics, clean_metrics, check_like=True)
    assert status_paths(str(tmp_path / "clean"))[1] == paths


def test_a_signal_between_rounds_stops_the_design_before_its_next_round(tmp_path):
    """Ctrl-C that lands between two rounds (the round's own driver no longer watching) stops the
    run with 130 instead of starting the next round."""
    from types import SimpleNamespace

    from vi_sweeps.cli.sequential import run_sequential

    (tmp_path / "planted.yaml").write_text(PLANTED)
    study = load_study(tmp_path / "planted.yaml")
    rounds = []

    def run_part(only):
        rounds.append(len(only))
        if len(rounds) > 1:  # a second round: the signal was not heeded (end here, not loop forever)
            return SimpleNamespace(exit_code=1, stop_reason="")
        os.kill(os.getpid(), signal.SIGINT)  # arrives after this round's driver has returned
        return SimpleNamespace(exit_code=0, stop_reason="")

    with pytest.raises(SystemExit) as stopped:
        run_sequential(study, str(tmp_path / "results"), run_part)
    assert stopped.value.code == 130 and rounds == [24]  # the first interim's 3 packs of 8, nothing after
