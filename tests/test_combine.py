"""Results folders combined by identity, never by appearance (issue 33): real sweeps on a real
local Ray, read together by the analysis layer and `vi-sweep report`."""

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analysis import tables
from analysis.load import load_results
from vi_contract import schema
from vi_contract.read import ResultsError
from vi_sweeps.cli.commands import main
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.driver import run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STUDY = """
name: combine
datasets: [ring8]
base: {hidden: 16, eval_samples: 200, batch_size: 32}
grid:
  lam: [0.0, 5.0]
seeds: 3
pack_seeds: 3
budget: {iterations: 40, eval_every: 20}
"""


def sweep(tmp_path, folder: str, **overrides):
    path = tmp_path / "combine.yaml"
    path.write_text(STUDY)
    outcome = run_sweep(load_study(path, overrides or None), str(tmp_path / folder), show_progress=False)
    assert outcome.exit_code == 0
    return str(tmp_path / folder)


def test_two_folders_of_other_settings_are_reported_together_without_a_pooled_condition(local_ray, tmp_path):
    """The same study run with --set lr=0.0005 --set bn=false beside a default run. Before: 2
    conditions of 6 trials ("6 vs 6"), seeds 0-2 counted twice, lr and bn nowhere."""
    plain, other = sweep(tmp_path, "plain"), sweep(tmp_path, "other", lr=0.0005, bn=False)
    res = load_results([plain, other], warn=False)
    table = tables.condition_table(res.trials, res.metrics, res.contract)
    assert sorted(table["n"]) == [3, 3, 3, 3]
    assert sorted(set(table["regime"])) == ["bn=False, lr=0.0005", "bn=True, lr=0.0002"]
    assert any(note.startswith("the folders differ in lr (") for note in res.notes)
    r = CliRunner().invoke(main, ["report", plain, other, "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert sorted(pd.read_csv(tmp_path / "rep" / "conditions.csv")["n"]) == [3, 3, 3, 3]
    # one folder alone is its study's conditions, as before
    alone = load_results([plain], warn=False)
    assert sorted(tables.condition_table(alone.trials, alone.metrics, alone.contract)["n"]) == [3, 3]


def test_the_same_study_run_twice_counts_each_trial_once_and_refuses_rows_that_differ(local_ray, tmp_path):
    """Two runs of one study into two folders (the same ids, the same rows): each trial once.
    A copy whose rows differ is refused in one line. Before: one copy was taken silently."""
    first, second = sweep(tmp_path, "first"), sweep(tmp_path, "second")
    res = load_results([first, second], warn=False)
    assert len(res.trials) == 6 and res.trials["trial_id"].is_unique and len(res.metrics) == 12
    assert sorted(tables.condition_table(res.trials, res.metrics, res.contract)["n"]) == [3, 3]
    victim = sorted((tmp_path / "second" / schema.TRIALS_DIR).glob("*.parquet"))[0]
    table = pq.read_table(victim)
    column = table.schema.get_field_index("eval/fd_2d")
    pq.write_table(table.set_column(column, "eval/fd_2d", [[v + 1.0 for v in table.column(column).to_pylist()]]), victim)
    with pytest.raises(ResultsError) as err:
        load_results([first, second], warn=False)
    assert str(err.value) == (f"trial {victim.stem} is finished in {first} and in {second} with different rows: one "
                              "trial id names one sequence of numbers, so report them apart")
    r = CliRunner().invoke(main, ["report", first, second, "--out", str(tmp_path / "rep")])
    assert r.exit_code == 2 and r.output.strip() == f"error: {err.value}", r.output
