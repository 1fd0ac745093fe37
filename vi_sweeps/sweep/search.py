"""The one module that imports Optuna's Ray glue: `vi-sweep tune` searches a study's `search:`
space with Optuna (TPE by default) through Ray Tune's OptunaSearch.

One Optuna study per cell of the grid (every setting of the study's other axes), all in one
RDB storage: SQLite in RESULTS by default. Each suggestion trains `seeds_per_trial` seeds as one
pack (one vectorised model, one Ray trial with the study's per-trial resources) and is scored
by their mean, so one lucky seed cannot win. Trials are the same trials as `vi-sweep run`'s:
same ids, files, checkpoints and Parquet rows, each row tagged with its Optuna trial number.
Re-running adds trials to the stored studies, first resuming any suggestion a stopped driver left
unfinished (fail_stale).
"""

from __future__ import annotations

import warnings

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from vi_contract import schema
from vi_contract.store import Store, StoreError
from vi_contract.tables import Consolidation, record_error, trial_status
from vi_sweeps.core import plugins
from vi_sweeps.engine.runner import Member, PackSpec
from vi_sweeps.study.config import ConfigError, TrialConfig
from vi_sweeps.study.expansion import Study, condition_key
from vi_sweeps.study.schema import Search
from vi_sweeps.sweep.control import Progress, Stopped, SweepControl, progress_callback
from vi_sweeps.sweep.driver import check_location, driving
from vi_sweeps.sweep.ray_session import ray_failed, run_config, trainable_for, tune_callbacks
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


def distributions(search: Search) -> dict[str, optuna.distributions.BaseDistribution]:
    out = {}
    for key, e in search.space.items():
        if e.type == "categorical":
            out[key] = optuna.distributions.CategoricalDistribution(e.choices)
        elif e.type == "int":
            out[key] = optuna.distributions.IntDistribution(int(e.low), int(e.high))
        else:
            out[key] = optuna.distributions.FloatDistribution(e.low, e.high, log=e.type == "loguniform")
    return out


def search_place(seeds: list[int], i: int) -> dict:
    """The i-th seed of a suggestion and its place: a suggestion's seeds train as one pack."""
    return {"seed": seeds[i], "pack_size": len(seeds), "pack_index": i}


def cells(study: Study) -> list[tuple[dict, dict]]:
    """The distinct (config without seed, labels) settings the search runs in."""
    seen, out = set(), []
    for t in study.trials:
        key = condition_key(t.config, t.labels)
        if key not in seen:
            seen.add(key)
            out.append(({k: v for k, v in t.config.model_dump().items() if k != "seed"}, t.labels))
    return out


def cell_name(study: Study, base: dict, labels: dict) -> str:
    parts = [study.name, base["model"], base["dataset"], *labels.values()]
    return "/".join(parts) + "/" + TrialConfig(**base).trial_id[:8]


class TaggingOptunaSearch(OptunaSearch):
    """OptunaSearch that tells each Ray trial its Optuna trial number and records on the Optuna
    trial the ids of the trials (one per seed) that score it."""

    def __init__(self, *args, base: dict, seeds: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self._base, self._seeds = base, seeds

    def suggest(self, trial_id: str):
        params = super().suggest(trial_id)
        if not isinstance(params, dict):
            return params
        ot_trial = self._ot_trials[trial_id]  # Ray's own map of its trials to Optuna's
        ids = [TrialConfig(**{**self._base, **params, **search_place(self._seeds, i)}).trial_id
               for i in range(len(self._seeds))]
        ot_trial.set_user_attr("trial_ids", ids)
        return {**params, "search_trial": ot_trial.number}


def sampler_for(search: Search, offset: int) -> optuna.samplers.BaseSampler:
    # The seed moves on with the trials already stored, so a resumed search does not replay
    # its first random suggestions.
    seed = search.sampler.seed + offset
    if search.sampler.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def fail_stale(ot_study: optuna.Study, space: dict[str, optuna.distributions.BaseDistribution], limit: int) -> None:
    """Trials left RUNNING by a stopped driver can never report: mark them failed and queue their
    settings again, so the next suggestions are theirs and their trials (the same ids) resume from
    their checkpoints. Before, a stopped suggestion was abandoned: its partial training lost and
    its rows left marked running for good (stabilisers_fair's status showed 6 suggestions running
    where 2 ran). At most `limit` are queued (the suggestions this run makes), and only settings
    the search's space still holds."""
    for t in ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        ot_study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        try:
            inside = set(t.params) == set(space) and all(space[k]._contains(space[k].to_internal_repr(v))
                                                         for k, v in t.params.items())
        except ValueError:  # a categorical value the space no longer offers
            inside = False
        if inside and limit > 0:  # (a trial stopped before its first suggestion has nothing to resume)
            ot_study.enqueue_trial(t.params, user_attrs={"resumes": t.number})
            limit -= 1


def run_search(study: Study, results: str, n_trials: int | None = None, address: str | None = None,
               max_concurrent: int | None = None, show_progress: bool = True, force: bool = False, tracking=None):
    """Run the search; returns (Optuna study names, SweepControl) - the control says whether
    the search stopped early and with which exit code."""
    search = study.spec.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per trial on the terminal
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if search is None:
        raise ConfigError(study.source, ["search: missing; `vi-sweep tune` needs a search section"])
    check_storage(search.storage, results, "search.storage")
    check_location(study, results)  # another study's folder is named so before its searches are checked
    check_held(search, results)
    n_trials = n_trials or search.trials
    control, names = SweepControl(), []
    with control.signals():
        try:
            with driving(study, results, address, force, control) as (store, consolidation):
                _search_cells(study, store, control, consolidation, n_trials, max_concurrent, show_progress,
                              tracking, names)
        except Stopped:
            pass  # a signal before any trial began: the control says why
    return names, control


def _search_cells(study: Study, store: Store, control: SweepControl, consolidation: Consolidation, n_trials: int,
                  max_concurrent: int | None, show_progress: bool, tracking, names: list[str]) -> None:
    """Every cell's search, then its failures and prunings recorded and the tables written;
    `names` gets each cell's Optuna study name as it starts."""
    search = study.spec.search
    url = storage_url(search, store)
    adopt_journal(store, url)
    storage = optuna.storages.RDBStorage(url)
    names.extend(known(store, storage))
    outcomes = []
    for base, labels in cells(study):
        if control.should_stop():
            break
        name = cell_name(study, base, labels)
        ot_study = cell_study(storage, name, search.objective.mode)
        fail_stale(ot_study, distributions(search), n_trials)
        begin(storage, names, name, store, url, search.objective.mode)
        _, ran = _search_cell(study, store, storage, base, labels, n_trials, max_concurrent,
                              show_progress, control, consolidation, tracking)
        outcomes += ran
    interrupted = bool(control.reason)
    try:
        for spec, error in outcomes:
            if error is not None:  # a pack that failed (after Ray's retries) is an error, as in `run`
                for member, tid in zip(spec.members, spec.trial_ids, strict=True):
                    record_error(store, {**member.config, "trial_id": tid}, member.labels, study.name,
                                 error[:2000], spec.pack_id, spec.search_trial)
                control.stop("some search trials failed; their errors are in RESULTS/errors/", 1)
            elif not interrupted:  # stopped by the scheduler; an interrupted trial is unfinished instead
                mark_pruned(store, spec.trial_ids)
        consolidation.write()
        export_search(storage, names, store, url, search.objective.mode)
    except StoreError as err:
        control.stop(f"{err}; run the same command again once the store is writable", 1)


def _search_cell(study: Study, store: Store, storage, base: dict, labels: dict, n_trials: int,
                 max_concurrent: int | None, show_progress: bool, control: SweepControl,
                 consolidation: Consolidation, tracking=None, seeds: list[int] | None = None) -> str:
    """One cell's search; `seeds`: the seeds of a suggestion (default 0..seeds_per_trial-1; a
    protocol's tuning seeds)."""
    search = study.spec.search
    seeds = list(range(search.seeds_per_trial)) if seeds is None else list(seeds)
    name = cell_name(study, base, labels)
    ot_study = cell_study(storage, name, search.objective.mode)
    searcher = TaggingOptunaSearch(
        space=distributions(search), metric="objective", mode=search.objective.mode, study_name=name,
        storage=storage, sampler=sampler_for(search, len(ot_study.trials)), base=base, seeds=seeds)
    scheduler = None
    if search.pruner:
        scheduler = ASHAScheduler(time_attr="step", max_t=base["iterations"],
                                  grace_period=search.pruner.grace_period * base["eval_every"],
                                  reduction_factor=search.pruner.reduction_factor)
    progress = Progress(name, n_trials * len(seeds), 0, cost_todo=float(n_trials)) if show_progress else None
    members = tuple(Member({**base, **search_place(seeds, i)}, labels) for i in range(len(seeds)))
    template = PackSpec(store.uri, study.name, members, objective=search.objective, space=tuple(search.space), cost=1.0,
                        plugins=tuple(plugins.LOADED.values()))
    packs = [template]
    tuner = tune.Tuner(
        trainable_for(study, packs),
        param_space={"pack": 0},
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=n_trials,
                                    metric="objective", mode=search.objective.mode,
                                    max_concurrent_trials=max_concurrent, reuse_actors=True),
        run_config=run_config(f"{study.name}-search", store, [progress_callback(packs, progress, control, consolidation),
                                                              *tune_callbacks(tracking, study, packs, store.uri)],
                              control.stopper()),
    )
    try:
        grid = tuner.fit()
    except Exception as err:  # noqa: BLE001 - Ray's own failure: as a sweep's (it ended `vi-sweep tune` in a traceback)
        ray_failed(err, "search", control)
        grid = []
    if progress is not None:
        progress.finish()
    return name, ran_of(template, grid)


def ran_of(template: PackSpec, grid) -> list[tuple[PackSpec, str | None]]:
    """The packs a search ran, each with its error: a search stopped (Ctrl-C, a fatal fault)
    has results without a config, suggestions no trial started, which name no pack (a stopped
    protocol's tuning raised TypeError on them instead of stopping)."""
    return [(template.with_values(r.config), None if r.error is None else repr(r.error)) for r in grid
            if r.config is not None]


def mark_pruned(store: Store, trial_ids: list[str]) -> None:
    """A trial the scheduler stopped keeps its rows and is marked pruned, not running."""
    for tid in trial_ids:
        if trial_status(store, tid) == "running":
            table = store.read_table(schema.trial_file(tid))
            idx = table.schema.get_field_index("status")
            table = table.set_column(idx, "status", [["pruned"] * len(table)])
            store.write_table(schema.trial_file(tid), table)
            store.delete(f"{schema.CHECKPOINTS_DIR}/{tid}.pt")


