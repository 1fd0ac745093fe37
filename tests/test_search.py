"""Optuna through Ray Tune's OptunaSearch, on a real local Ray and a real SQLite storage."""

import optuna
import pandas as pd
import pytest
from click.testing import CliRunner

from vi_contract import schema
from vi_sweeps.cli.commands import main
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.search import run_search

pytestmark = pytest.mark.ray

SEARCH = """
name: search6
datasets: [ring8]
base: {hidden: 16, eval_samples: 300, bn: false}
budget: {iterations: 40, eval_every: 20}
search:
  space:
    lam: {type: loguniform, low: 1.0e-4, high: 100}
  objective: {metric: fd_2d, mode: min, diverged_value: 100.0}
  seeds_per_trial: 2
  trials: 6
"""


@pytest.mark.slow
def test_a_search_leaves_optuna_trials_matching_parquet_rows_and_resumes(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text(SEARCH)
    study = load_study(path)
    results = tmp_path / "results"
    (name,), control = run_search(study, str(results), show_progress=False)
    assert control.exit_code == 0
    storage = f"sqlite:///{results / 'optuna.db'}"
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert len(trials) == 6 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    rows = pd.read_parquet(results / schema.TRIALS_FILE).set_index("trial_id")
    for t in trials:
        ids = t.user_attrs["trial_ids"]
        assert len(ids) == 2 and set(ids) <= set(rows.index)
        assert (rows.loc[ids, "config/lam"] == t.params["lam"]).all()
        assert (rows.loc[ids, "search_trial"] == t.number).all()
        assert sorted(rows.loc[ids, "config/seed"]) == [0, 1]
        assert rows.loc[ids, "pack_id"].nunique() == 1  # the seeds of a suggestion train as one pack
        assert (rows.loc[ids, "config/pack_size"] == 2).all()
        assert t.value == pytest.approx(rows.loc[ids, "eval/fd_2d"].mean())
    first = [(t.number, t.params["lam"], t.value) for t in trials]
    run_search(study, str(results), n_trials=2, show_progress=False)
    again = optuna.load_study(study_name=name, storage=storage).trials
    assert len(again) == 8 and [(t.number, t.params["lam"], t.value) for t in again[:6]] == first
    assert len(pd.read_parquet(results / schema.TRIALS_FILE)) == 16
    assert (results / "search.parquet").exists()


BAD_SPACES = {
    "log low not positive": ("lam: {type: loguniform, low: 0.0, high: 1.0}", "loguniform needs low > 0"),
    "bounds reversed": ("lam: {type: uniform, low: 2.0, high: 1.0}", "low (2.0) must be below high (1.0)"),
    "unknown distribution": ("lam: {type: gaussian, low: 0.0, high: 1.0}",
                             "Input should be 'loguniform', 'uniform', 'int' or 'categorical'"),
    "unknown key": ("lamda: {type: uniform, low: 0.0, high: 1.0}", "search.space.lamda: not a searchable config key"),
    "min without a diverged value": ("lam: {type: uniform, low: 0.0, high: 1.0}\n  objective: {metric: fd_2d, mode: min}",
                                     "search.objective.diverged_value: set it with mode: min"),
    "out of range for the key": ("lam: {type: uniform, low: -1.0, high: 1.0}", "greater than or equal to 0"),
}


@pytest.mark.parametrize("case", list(BAD_SPACES))
def test_a_bad_search_space_exits_2(case, tmp_path):
    space, expected = BAD_SPACES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nsearch:\n  space:\n    {space}\n")
    r = CliRunner().invoke(main, ["tune", str(path), "--results", str(tmp_path / "r")])
    assert r.exit_code == 2, r.output
    assert expected in r.output and str(path) in r.output
    assert not (tmp_path / "r").exists()


TWO_KEYS = """
name: search2
datasets: [ring8]
base: {hidden: 16, eval_samples: 300, bn: false}
budget: {iterations: 60, eval_every: 20}
search:
  space:
    lam: {type: loguniform, low: 1.0e-3, high: 10}
    g_repeats: {type: int, low: 1, high: 3}
  objective: {metric: modes_frac, mode: max, collapse_penalty: 0.5}
  seeds_per_trial: 1
  trials: 5
  pruner: {type: asha, grace_period: 1, reduction_factor: 2}
"""


@pytest.mark.slow
def test_asha_and_two_keys_give_a_report_with_importances(tmp_path):
    from analysis.report import build_report

    path = tmp_path / "search.yaml"
    path.write_text(TWO_KEYS)
    results = tmp_path / "results"
    (name,), _ = run_search(load_study(path), str(results), show_progress=False)
    trials = optuna.load_study(study_name=name, storage=f"sqlite:///{results / 'optuna.db'}").trials
    assert len(trials) == 5 and {"lam", "g_repeats"} == set(trials[0].params)
    rows = pd.read_parquet(results / schema.TRIALS_FILE)
    assert set(rows["status"]) <= {"finished", "pruned"} and len(rows) == 5
    assert set(rows.loc[rows["status"] == "pruned", "steps_done"]) <= {20, 40}
    # status counts the suggestions (it counted the study's one unsearched trial: "0/1 done")
    status = CliRunner().invoke(main, ["status", str(results)]).output
    done = int(rows["status"].isin(schema.FINISHED).sum())
    assert f"trials: {done}/5 suggested so far done" in status and f"{5 - done} pruned" in status, status
    report = build_report([str(results)], str(tmp_path / "report")).read_text()
    assert "search_history.png" in report and "search_importances.png" in report
    assert (tmp_path / "report" / "search_importances.png").stat().st_size > 5000
    # an export reports the search as the original does (it left out the search's table: no search section)
    from analysis.export import export_results

    export_results(str(results), tmp_path / "exported")
    again = build_report([str(tmp_path / "exported")], str(tmp_path / "report2")).read_text()
    def search_section(text):
        return text[text.index("## Search: best suggestion"):text.index("## Study as run")]

    assert "## Search: best suggestion" in again and search_section(again) == search_section(report)
    # the export carries its Optuna storage, named relative to it: a copy elsewhere opens in Optuna
    import json
    import shutil

    from analysis.search import open_storage

    meta = json.loads((tmp_path / "exported" / schema.SEARCH_META).read_text())
    assert meta["storage"] == schema.JOURNAL_FILE and meta["storage_made"] == "copied"
    assert meta["storage_as_run"] == f"sqlite:///{results / 'optuna.db'}"
    moved = shutil.copytree(tmp_path / "exported", tmp_path / "elsewhere" / "copy")
    shutil.rmtree(tmp_path / "exported")
    copied = optuna.load_study(study_name=name, storage=open_storage(str(moved))).trials
    def seen(trials):
        return [(t.number, t.state, t.params, t.value, t.user_attrs, t.datetime_start, t.intermediate_values)
                for t in trials]

    assert seen(copied) == seen(trials)
    # tuning the copy adds a suggestion to the five it holds (before: its storage began empty, the
    # new suggestion was number 0 of 1 and the copy's Optuna history was gone)
    (again,), control = run_search(load_study(path), str(moved), n_trials=1, show_progress=False)
    resumed = optuna.load_study(study_name=name, storage=f"sqlite:///{moved / 'optuna.db'}").trials
    assert again == name and control.exit_code == 0 and seen(resumed[:5]) == seen(trials) and len(resumed) == 6
    assert resumed[5].number == 5 and len(pd.read_parquet(moved / schema.SEARCH_FILE)) == 6


@pytest.mark.slow
def test_a_suggestion_packs_its_seeds_into_one_trials_resources(tmp_path):
    """seeds_per_trial seeds train as one pack in one process: on a 1-CPU cluster a search of
    3 seeds a suggestion runs (it was refused: 'a trial needs 3 CPU but the Ray cluster has 1')."""
    import ray

    path = tmp_path / "search.yaml"
    path.write_text(SEARCH.replace("seeds_per_trial: 2", "seeds_per_trial: 3").replace("trials: 6", "trials: 1"))
    ray.init(num_cpus=1, num_gpus=0, include_dashboard=False, log_to_driver=False)
    try:
        (name,), control = run_search(load_study(path), str(tmp_path / "r"), show_progress=False)
    finally:
        ray.shutdown()
    assert control.exit_code == 0
    rows = pd.read_parquet(tmp_path / "r" / schema.TRIALS_FILE)
    assert len(rows) == 3 and (rows["config/pack_size"] == 3).all() and (rows["status"] == "finished").all()


def test_the_committed_search_measurement_opens_in_optuna_and_its_dashboard_from_a_copy(tmp_path):
    """docs/measurements/lambda_search_2trials carries its Optuna storage (rebuilt from its
    search.parquet: the storage as run stayed on the machine that ran it): optuna.load_study and
    optuna-dashboard open it from a copy in another folder, with every trial of search.parquet."""
    import json
    import shutil

    from analysis.search import open_storage
    from tests.conftest import ROOT

    source = ROOT / "docs" / "measurements" / "lambda_search_2trials"
    copy = shutil.copytree(source, tmp_path / "somewhere" / "else")
    meta = json.loads((copy / schema.SEARCH_META).read_text())
    assert meta["storage"] == schema.JOURNAL_FILE and meta["storage_made"].startswith("rebuilt from search.parquet")
    search = pd.read_parquet(copy / schema.SEARCH_FILE)
    ids = set(pd.read_parquet(copy / schema.TRIALS_FILE)["trial_id"])
    storage = open_storage(str(copy))
    assert sorted(optuna.get_all_study_names(storage)) == sorted(meta["studies"])
    for name in meta["studies"]:
        study = optuna.load_study(study_name=name, storage=storage)
        rows = search[search["search_study"] == name].sort_values("number")
        assert study.direction == optuna.study.StudyDirection.MAXIMIZE and len(study.trials) == len(rows) == 2
        for t, row in zip(study.trials, rows.itertuples(index=False), strict=True):
            assert (t.number, t.state.name, t.value, t.params["lam"]) == (row.number, row.state, row.value, row.params_lam)
            assert t.user_attrs["trial_ids"] == row.user_attrs_trial_ids.split(",") and set(t.user_attrs["trial_ids"]) <= ids
            assert t.datetime_start == row.datetime_start.to_pydatetime()
    best = optuna.load_study(study_name=meta["studies"][0], storage=storage).best_trial
    assert best.number == 0 and best.value == 0.875
    dashboard = pytest.importorskip("optuna_dashboard")
    from optuna_dashboard._storage_url import get_storage

    app = dashboard.wsgi(get_storage(str(copy / schema.JOURNAL_FILE)))  # what `optuna-dashboard FILE` opens
    out = {}

    def start(status, headers, exc_info=None):
        out["status"] = status

    from wsgiref.util import setup_testing_defaults

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/studies"}
    setup_testing_defaults(environ)
    body = b"".join(app(environ, start))
    assert out["status"].startswith("200")
    listed = json.loads(body)["study_summaries"]
    assert sorted(s["study_name"] for s in listed) == sorted(meta["studies"])
