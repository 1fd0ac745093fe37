"""`run` exits 0 only when every trial of its selection finished, and a plugin that exits while
imported is bad input (issue 34, point 4; README's exit-code table), on a real local Ray."""

import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from vi_contract import schema
from vi_sweeps.cli.commands import main
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.driver import run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STUDY = """
name: exits
datasets: [ring8]
base: {hidden: 16, eval_samples: 200}
grid:
  lam: [0.0, 5.0]
seeds: 2
pack_seeds: 2
budget: {iterations: 40, eval_every: 20}
"""


def test_exit_0_means_every_trial_finished_even_when_nothing_errored(local_ray, tmp_path):
    """A trial file holding another trial's rows (a copy over it): its trial is not finished and
    nothing errors. Before: "1 trial(s) did not finish; run the same command again" and exit 0,
    on every run."""
    path = tmp_path / "exits.yaml"
    path.write_text(STUDY)
    study = load_study(path)
    results = tmp_path / "r"
    assert run_sweep(study, str(results), show_progress=False).exit_code == 0
    first, second = sorted((results / schema.TRIALS_DIR).glob("*.parquet"))[:2]
    shutil.copy(second, first)
    for table in (schema.TRIALS_FILE, schema.METRICS_FILE):
        (results / table).unlink()
    again = run_sweep(study, str(results), show_progress=False)
    assert (again.exit_code == 0) == (not again.unfinished), (again.exit_code, again.unfinished)
    r = CliRunner().invoke(main, ["run", str(path), "--results", str(results), "--no-report"])
    assert (r.exit_code == 0) == ("did not finish" not in r.output), r.output


def test_a_part_exits_0_for_its_own_trials_and_says_how_many_remain(local_ray, tmp_path):
    path = tmp_path / "exits.yaml"
    path.write_text(STUDY)
    r = CliRunner().invoke(main, ["run", str(path), "--results", str(tmp_path / "r"), "--no-report", "--only", "seed=0"])
    assert r.exit_code == 0, r.output
    assert "this part (--only): 2 of its 2 trials finished; 2 other trial(s) of the study remain; to run them: " in r.output
    assert "did not finish" not in r.output
    # the command it prints runs the rest (issue 39: it said "run the same command again", which runs the part)
    import shlex
    command = shlex.split(r.output.split("to run them: ")[1].splitlines()[0])
    assert command[:2] == ["vi-sweep", "run"]
    rest = CliRunner().invoke(main, [*command[1:], "--no-report"])
    assert rest.exit_code == 0 and "4 finished" in rest.output, rest.output


def test_a_plugin_that_exits_at_import_is_an_import_failure(tmp_path):
    """Before: a plugin raising SystemExit(0) when imported made `validate` (and `run`) exit 0
    having done nothing (issue 34)."""
    (tmp_path / "quits.py").write_text("raise SystemExit(0)\n")
    path = tmp_path / "exits.yaml"
    path.write_text("plugins: [quits.py]\n" + STUDY)
    r = subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "validate", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"{path}: plugins[0]: quits.py: cannot be loaded (ImportError: quits raised SystemExit(0) on import)"
