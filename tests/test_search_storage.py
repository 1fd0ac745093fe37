"""The files that name a search's Optuna storage (search.json, search.parquet) as cells begin,
and the refusal of a folder whose searches are not where a run would look (no Ray here: the
storage and the files only)."""

import json

import optuna
import pandas as pd
import pytest

from vi_contract import schema
from vi_contract.store import Store
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.schema import Search
from vi_sweeps.sweep.storage import adopt_journal, begin, check_held, export_search, known, storage_url

SEARCH = Search.model_validate({"space": {"lam": {"type": "loguniform", "low": 0.1, "high": 10}},
                                "objective": {"metric": "modes_frac", "mode": "max"}})


def searched_folder(tmp_path):
    """A folder with two searches, A and B, of one and two suggestions (and a failed trial of B's),
    and importances for B."""
    store = Store.open(str(tmp_path / "r"))
    url = storage_url(SEARCH, store)
    storage = optuna.storages.RDBStorage(url)
    for name, values in (("A", [0.5]), ("B", [0.25, 0.75])):
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        for v in values:
            study.add_trial(optuna.trial.create_trial(params={"lam": v}, value=v, distributions={
                "lam": optuna.distributions.FloatDistribution(0.1, 10, log=True)}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))  # B's third: no suggestion taken
    export_search(storage, ["A", "B"], store, url, "max", importances=False)
    meta = json.loads(store.read_bytes(schema.SEARCH_META))
    store.write_bytes(schema.SEARCH_META, json.dumps({**meta, "importances": {"B": {"lam": 1.0}}}).encode())
    return store, storage, url


def test_a_rerun_that_begins_with_one_cell_still_names_every_search_and_keeps_importances(tmp_path):
    store, storage, url = searched_folder(tmp_path)
    names = known(store, storage)
    begin(storage, names, "A", store, url, "max")  # a re-run of `vi-sweep tune`, at its first cell
    meta = json.loads(store.read_bytes(schema.SEARCH_META))
    # before: names began empty, so search.json named A alone and search.parquet lost B's two rows
    # (a driver killed in A's search left B out of the folder's export); the importances were {}
    assert meta["studies"] == ["A", "B"] and meta["importances"] == {"B": {"lam": 1.0}}
    assert sorted(pd.read_parquet(store.path(schema.SEARCH_FILE))["search_study"]) == ["A", "B", "B", "B"]
    optuna.create_study(study_name="C", storage=storage, direction="maximize")  # a new cell (its caller creates it)
    begin(storage, names, "C", store, url, "max")
    assert json.loads(store.read_bytes(schema.SEARCH_META))["studies"] == ["A", "B", "C"]


def test_the_studies_a_storage_holds_are_read_at_any_path_and_url(tmp_path):
    from vi_sweeps.sweep.storage import held

    folder = tmp_path / "run #2"  # before: an unquoted file: URI read no study here
    folder.mkdir()
    url = f"sqlite:///{folder / 'optuna.db'}"
    optuna.create_study(study_name="A", storage=url)
    assert held(url) == ["A"] and held(f"{url}?timeout=30") == ["A"]  # before: None, "not there"
    assert held(f"sqlite:///{folder / 'none.db'}") is None
    (folder / "empty.db").write_bytes(b"")
    assert held(f"sqlite:///{folder / 'empty.db'}") == []


def test_a_folder_whose_searches_are_not_here_is_refused_and_an_exports_journal_is_taken(tmp_path):
    store, storage, url = searched_folder(tmp_path)
    folder = store.path()
    check_held(SEARCH, folder)  # all there
    storage.remove_session()
    storage.engine.dispose()
    (tmp_path / "r" / "optuna.db").rename(tmp_path / "elsewhere.db")
    with pytest.raises(ConfigError) as err:  # before: searched again from number 0 over the rows
        check_held(SEARCH, folder)
    assert err.value.source == f"{folder}/{schema.SEARCH_META}"
    assert "names 2 searches (e.g. A) that" in err.value.problems[0] and "bring their storage here" in err.value.problems[0]
    # the folder as an export carries it: a journal that search.json names
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "r" / schema.JOURNAL_FILE)))
    for name in ("A", "B"):
        optuna.copy_study(from_study_name=name, from_storage=f"sqlite:///{tmp_path / 'elsewhere.db'}", to_storage=journal)
    meta = json.loads(store.read_bytes(schema.SEARCH_META))
    store.write_bytes(schema.SEARCH_META, json.dumps({**meta, "storage": schema.JOURNAL_FILE}).encode())
    (tmp_path / "r" / "optuna.db").write_bytes(b"")  # an empty file in the journal's way: refused, named
    with pytest.raises(ConfigError) as err:
        check_held(SEARCH, folder)
    assert "the optuna.db there holds none of them and is in the way" in err.value.problems[0]
    assert adopt_journal(store, url) == 0 and (tmp_path / "r" / "optuna.db").stat().st_size == 0
    (tmp_path / "r" / "optuna.db").unlink()
    check_held(SEARCH, folder)
    assert adopt_journal(store, url) == 3  # finished suggestions (before: 4, the failed trial counted)
    adopted = optuna.storages.RDBStorage(url)
    assert [[(t.number, t.state.name, t.params, t.value) for t in optuna.load_study(study_name=n, storage=adopted).trials]
            for n in ("A", "B")] == [[(0, "COMPLETE", {"lam": 0.5}, 0.5)], [(0, "COMPLETE", {"lam": 0.25}, 0.25),
                                     (1, "COMPLETE", {"lam": 0.75}, 0.75), (2, "FAIL", {}, None)]]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(
        ["optuna.db", schema.JOURNAL_FILE, schema.SEARCH_META, schema.SEARCH_FILE])  # no temporary file left


def test_an_export_of_a_live_search_tables_what_its_journal_holds(tmp_path):
    import shutil

    from analysis.search import export_storage

    store, storage, url = searched_folder(tmp_path)
    out = tmp_path / "export"
    out.mkdir()
    for name in (schema.SEARCH_META, schema.SEARCH_FILE):  # the export copies the files first ...
        shutil.copy(store.path(name), out / name)
    optuna.load_study(study_name="A", storage=storage).add_trial(optuna.trial.create_trial(  # ... a suggestion
        params={"lam": 2.0}, value=2.0,                                                       # finishes meanwhile
        distributions={"lam": optuna.distributions.FloatDistribution(0.1, 10, log=True)}))
    assert export_storage(str(tmp_path / "r"), out) == "copied"
    table = pd.read_parquet(out / schema.SEARCH_FILE)
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / schema.JOURNAL_FILE)))
    assert len(optuna.load_study(study_name="A", storage=journal).trials) == 2
    # before: the copied table, A's one row of 0.5, beside a journal of two
    assert sorted(table.loc[table["search_study"] == "A", "value"]) == [0.5, 2.0]
    assert sorted(table["search_study"]) == ["A", "A", "B", "B", "B"]


def test_a_queued_suggestion_keeps_its_values_through_a_journal_rebuilt_from_the_table(tmp_path):
    from analysis.search import rebuild_journal
    from vi_contract.searches import search_table

    store, storage, url = searched_folder(tmp_path)
    study = optuna.load_study(study_name="B", storage=storage)
    study.enqueue_trial({"lam": 3.0}, user_attrs={"resumes": 1})  # as a stale suggestion is queued again
    table = search_table(storage, ["A", "B"]).to_pandas()
    text = "search:\n  space:\n    lam: {type: loguniform, low: 0.1, high: 10}\n"
    rebuild_journal(table, {"studies": ["A", "B"], "mode": "max"}, text, tmp_path / "j.log")
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    rebuilt = optuna.load_study(study_name="B", storage=journal)
    queued = rebuilt.trials[-1]
    # before: a WAITING trial of no values ({}), so the resumed search drew new ones in its place
    assert queued.state == optuna.trial.TrialState.WAITING and queued.system_attrs["fixed_params"] == {"lam": 3.0}
    assert queued.user_attrs == {"resumes": 1}  # as queued; before: {"trial_ids": []}, its resumes lost
    assert rebuilt.ask().suggest_float("lam", 0.1, 10, log=True) == 3.0  # the queued values come next
    assert [t.value for t in rebuilt.trials[:2]] == [0.25, 0.75]


def test_the_table_of_a_search_with_nothing_queued_raises_no_warning_and_keeps_every_attribute(tmp_path):
    import warnings

    from analysis.search import rebuild_journal
    from vi_contract.searches import search_table

    store, storage, url = searched_folder(tmp_path)
    study = optuna.create_study(study_name="C", storage=storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(  # a list, and a float that is whole
        params={"lam": 1.0}, value=1.0, user_attrs={"lrs": [0.1, 0.2], "weight": 2.0, "trial_ids": ["t1", "t2"]},
        distributions={"lam": optuna.distributions.FloatDistribution(0.1, 10, log=True)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: fillna("") on a float column, a Pandas4Warning
        table = search_table(storage, ["A", "B", "C"]).to_pandas()
    assert set(table["queued_params"]) == {""}
    assert table.loc[table["search_study"] == "C", "user_attrs_trial_ids"].tolist() == ["t1,t2"]  # for readers
    text = "search:\n  space:\n    lam: {type: loguniform, low: 0.1, high: 10}\n"
    rebuild_journal(table, {"studies": ["A", "B", "C"], "mode": "max"}, text, tmp_path / "j.log")
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    attrs = optuna.load_study(study_name="C", storage=journal).trials[0].user_attrs
    assert attrs == {"lrs": [0.1, 0.2], "weight": 2.0, "trial_ids": ["t1", "t2"]} and isinstance(attrs["weight"], float)
