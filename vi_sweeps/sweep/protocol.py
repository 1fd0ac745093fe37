"""Running a tune-then-test protocol (vi_sweeps.study.protocol): first, in RESULTS/tune, one
Optuna search per arm and cell, each of `protocol.tune.trials` suggestions on the tuning seeds
(a re-run adds only the suggestions a search still lacks, so every arm ends with the same
budget); then each arm-and-cell's best setting frozen into its test trials, recorded in
RESULTS/protocol.json, and the test trials run in RESULTS like any sweep's (their ids name the
chosen values)."""

from __future__ import annotations

import dataclasses
import json

import optuna

from vi_contract import schema
from vi_contract.files import subfolder
from vi_contract.store import Store
from vi_sweeps.study.expansion import Study, condition_key
from vi_sweeps.study.protocol import arms, chosen_values, frozen, tuning_objective
from vi_sweeps.study.schema import Search
from vi_sweeps.sweep.control import Stopped, SweepControl
from vi_sweeps.sweep.driver import SweepOutcome, check_location, driving, trials_so_far
from vi_sweeps.sweep.search import _search_cell, cell_name, cells, distributions, fail_stale
from vi_sweeps.sweep.storage import (
    adopt_journal,
    begin,
    cell_study,
    check_held,
    check_storage,
    export_search,
    known,
    storage_url,
)


def arm_search(study: Study, arm: str) -> Study:
    """The study as one arm's search: its own space and the shared keys, the same budget."""
    tune = study.spec.protocol.tune
    search = Search(space={**tune.space.get(arm, {}), **tune.shared}, objective=tuning_objective(study.spec),
                    seeds_per_trial=len(tune.seeds), trials=tune.trials, sampler=tune.sampler, storage=tune.storage)
    return dataclasses.replace(study, spec=study.spec.model_copy(update={"search": search}))


def first_search(study: Study) -> Study:
    """The first arm's search: the tuning folder's identity (every arm shares storage and mode)."""
    return arm_search(study, str(arms(study.spec)[0]))


def tune_arms(study: Study, results: str, address: str | None, max_concurrent: int | None, show_progress: bool,
              force: bool, control: SweepControl) -> dict[str, dict]:
    """Every arm-and-cell search to its budget; returns the chosen values by condition key."""
    tune, axis = study.spec.protocol.tune, study.spec.compare.axis
    chosen, budgets = {}, {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per created study on the terminal
    first = first_search(study)
    with driving(first, subfolder(results, schema.TUNE_DIR), address, force, control) as (store, consolidation):
        url, mode = storage_url(first.spec.search, store), first.spec.search.objective.mode
        adopt_journal(store, url)  # a copy of an export goes on from the suggestions it holds
        storage = optuna.storages.RDBStorage(url)
        names = known(store, storage)
        for base, labels in cells(study):
            if control.should_stop():
                break
            arm = str(labels.get(axis, base.get(axis)))
            searching = arm_search(study, arm)
            name = cell_name(searching, base, labels)
            ot = cell_study(storage, name, mode)
            done = len(ot.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
            fail_stale(ot, distributions(searching.spec.search), tune.trials - done)
            begin(storage, names, name, store, url, mode)
            if done < tune.trials:
                _search_cell(searching, store, storage, base, labels, tune.trials - done, max_concurrent, show_progress,
                             control, consolidation, seeds=tune.seeds)
            ot = optuna.load_study(study_name=name, storage=storage)
            # the first `trials` completed suggestions, so no arm chooses among more than another
            complete = sorted(ot.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
                              key=lambda t: t.number)[:tune.trials]
            budgets[name] = len(complete)
            if len(complete) == tune.trials:
                sign = -1.0 if mode == "max" else 1.0  # the best score; a tie goes to the earlier suggestion
                best = min(complete, key=lambda t: (sign * t.value, t.number))
                chosen[condition_key(base, labels)] = {"arm": arm, "search": name, **best.params}
        consolidation.write()
        export_search(storage, names, store, url, mode)  # a signal before the first search: nothing to export
    objective = tuning_objective(study.spec)
    return {"chosen": chosen, "budgets": budgets, "mode": objective.mode, "metric": objective.metric,
            "tuning_seeds": list(tune.seeds)}


def tune_and_freeze(study: Study, results: str, address: str | None = None, max_concurrent: int | None = None,
                    show_progress: bool = True, force: bool = False) -> tuple[Study | None, SweepOutcome | None]:
    """Tune every arm to its budget, then (the study with its test trials frozen, None); or, when
    tuning stopped or did not finish, (None, the outcome to report). The chosen values are
    recorded in RESULTS/protocol.json; the test trials run as any study's (sequential ones too)."""
    check_storage(study.spec.protocol.tune.storage, results, "protocol.tune.storage")
    for folder in (results, subfolder(results, schema.TUNE_DIR)):  # another study or a changed protocol:
        check_location(study, folder)                                      # refused before hours of tuning
    tested = chosen_study(study, results)
    if tested is not None:  # tuned before, at this budget: nothing is searched again (an export resumes too)
        return tested, None
    check_held(first_search(study).spec.search, subfolder(results, schema.TUNE_DIR))
    control = SweepControl()
    with control.signals():
        try:
            record = tune_arms(study, results, address, max_concurrent, show_progress, force, control)
        except Stopped:
            record = None
    if record is None or control.reason or set(record["chosen"]) != _conditions(study):
        why = control.reason or "some arm's search did not reach its budget; run the same command again"
        return None, SweepOutcome(trials_so_far(results), [t.trial_id for t in study.trials], why, control.exit_code or 1)
    Store.open(results).write_bytes(schema.PROTOCOL_FILE, json.dumps(record, sort_keys=True, indent=1).encode())
    return _with_chosen(study, record), None


def _conditions(study: Study) -> set[str]:
    return {condition_key(t.config, t.labels) for t in study.trials}


def _with_chosen(study: Study, record: dict) -> Study:
    """The study with its test trials: each at its arm-and-cell's chosen values (the ids name them)."""
    return dataclasses.replace(study, trials=frozen(study.trials, chosen_values(record)))


def chosen_study(study: Study, results: str) -> Study | None:
    """The study with the test trials RESULTS/protocol.json chose, when it chose a setting for
    every test condition at this budget and these tuning seeds; else None (tuning is not done)."""
    record = frozen_record(study, results)
    return None if record is None else _with_chosen(study, record)


def frozen_record(study: Study, results: str) -> dict | None:
    """RESULTS/protocol.json when it chose a setting for every test condition with this
    protocol's budget and tuning seeds, else None (the tuning goes on). A run of a changed
    protocol is refused (driver.check_location); the record is checked too, as RESULTS/tune
    may be gone."""
    tune = study.spec.protocol.tune
    try:
        record = json.loads(Store.open(results, create=False).read_bytes(schema.PROTOCOL_FILE))
        same = (set(chosen_values(record)) == _conditions(study) and set(record["budgets"].values()) == {tune.trials}
                and record["tuning_seeds"] == list(tune.seeds))
    except (OSError, TypeError, ValueError, KeyError, AttributeError):  # none, or not one this version reads
        return None
    return record if same else None
