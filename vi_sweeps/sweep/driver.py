"""The sweep: a study's trials scheduled by Ray Tune, one Ray trial per pack of seeds (Ray's
side is vi_sweeps.sweep.ray_session, watching and stopping vi_sweeps.sweep.control).

Identity is ours, not Ray's: a trial is finished when its own file in RESULTS says so, so
running the same command again (or --resume) starts only what is not finished, and an
unfinished trial resumes from its last checkpoint. Ray's FailureConfig retries a failed pack
(a crash, a lost node) in the same run, again from its members' checkpoints.

Before anything is written, the study, the results location and the cluster's resources are
checked; then the driver takes the folder's lease (vi_contract.lease). A sweep stops cleanly,
keeping every finished trial and every checkpoint, on Ctrl-C or SIGTERM, when the store
cannot be written (a full disk), or when another driver takes the lease over.
"""

from __future__ import annotations

import json
import os
import posixpath
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
from ray import tune

from vi_contract import schema
from vi_contract.files import LocationError, write_problem
from vi_contract.lease import Lease
from vi_contract.read import ResultsError, check_version, load_location
from vi_contract.store import Store, StoreError
from vi_contract.tables import Consolidation, clear_error, record_error, restore_trial_files
from vi_sweeps.core import plugins
from vi_sweeps.data.datasets import DATASETS, build_dataset
from vi_sweeps.data.imagecache import BadImage
from vi_sweeps.engine.results import contract, unbuildable, versions, with_history
from vi_sweeps.engine.rowcheck import RowCheck
from vi_sweeps.engine.runner import Member, PackSpec
from vi_sweeps.metrics import evaluation
from vi_sweeps.study import claims
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.expansion import PACKING, Study, layout_pack_ids, layout_packs
from vi_sweeps.study.load import definition_differences, load_study_as_run
from vi_sweeps.sweep.control import Progress, Stopped, SweepControl, progress_callback
from vi_sweeps.sweep.ray_session import (
    check_resources,
    embedded,
    log_handler,
    machine_kind,
    note_session,
    quiet_ray_logs,
    ray_failed,
    ray_session,
    run_config,
    session_dir,
    trainable_for,
    tune_callbacks,
)
from vi_sweeps.sweep.reuse import reuse_finished

tracking_callbacks = tune_callbacks  # the former name, vi_sweeps.sweep.tracking_callbacks


def trial_cost(config) -> float:
    """Relative cost of a trial for the ETA: iterations x network updates per iteration."""
    return config.iterations * (config.d_steps + config.g_steps * config.g_repeats)


def make_packs(study: Study, results: str, todo_ids: set[str], tensorboard: str = "") -> list[PackSpec]:
    """The unfinished trials of each pack of the study's layout (expansion.pack_layout: fixed by the
    seeds, not by what is left), one Ray trial per pack; a pack with finished members trains
    the rest padded to its size (vi_sweeps.engine.trial), so a resumed trial computes what it would
    have computed in a clean run, bit for bit."""
    packs = []
    for pack in layout_packs(study):
        todo = [t for t in pack if t.trial_id in todo_ids]
        if todo:
            members = tuple(Member(t.config.model_dump(), t.labels) for t in todo)
            packs.append(PackSpec(results, study.name, members, cost=sum(trial_cost(t.config) for t in todo),
                                  axes=tuple(study.axes), tensorboard=tensorboard, plugins=tuple(plugins.LOADED.values()),
                                  layout_ids=tuple(t.trial_id for t in pack)))
    return packs


def check_location(study: Study, results: str) -> None:
    """Refuse, before anything is written, a results location that is a file, is not
    writable, or holds another study."""
    problems = []
    if not results.strip():
        raise ConfigError("--results", ["an empty path; name a folder or a URI (s3://BUCKET/PATH)"])
    if "://" not in results:
        problem = write_problem(results, "folder")
        if problem and problem.startswith("not a usable"):
            raise ConfigError("--results", [f"{results}: {problem}"])
        if problem:
            problems.append(f"--results {results}: {problem}")
    if not problems:
        try:
            store = Store.open(results, create=False)
        except FileNotFoundError:
            return
        except (OSError, pa.ArrowException, LocationError) as err:
            why = ("not a filesystem URI pyarrow knows; valid schemes: s3://, gs://, hdfs://, file://"
                   if "Unrecognized filesystem" in str(err) else str(err))
            raise ConfigError("--results", [f"{results}: {why}"]) from None
        problems += stored_study_problems(store, study)
    if problems:
        raise ConfigError(study.source, problems)


def stored_study_problems(store: Store, study: Study) -> list[str]:
    """A folder holds another experiment, results of another schema, or trials of another
    plugin source: refuse it, naming what differs. The same experiment with other execution
    keys (threads, device, a data folder of the same content elsewhere) resumes: how a sweep
    runs may change between runs."""

    try:  # the contract's and every trial file's schema version, as every reader checks them; a table
        # a full disk left broken is no reason to refuse: the driver rebuilds the tables
        if store.exists(schema.CONTRACT_FILE):
            check_version(str(json.loads(store.read_bytes(schema.CONTRACT_FILE)).get("schema", schema.SCHEMA_VERSION)),
                          store.path(schema.CONTRACT_FILE))
        older = []
        for name in [schema.TRIALS_FILE] + [f"{schema.TRIALS_DIR}/{n}" for n in store.listdir(schema.TRIALS_DIR)]:
            if name.endswith(".parquet") and store.exists(name):
                try:
                    meta = store.read_table(name).schema.metadata
                except (pa.ArrowException, OSError):
                    continue  # unreadable: quarantined by the driver, or rebuilt from the trial files
                older.append((name, schema.version_of(meta)))
        for rel, version in older:
            check_version(version, store.path(rel))
            # an export of schema 2 (tables only) resumes: its trial files are written anew as schema 3; a
            # live folder of trial files written by an earlier version is not rewritten under its driver's feet
            if version != schema.SCHEMA_VERSION and (rel != schema.TRIALS_FILE or version == "1"):
                return [f"{store.path(rel)}: schema version {version!r}, written by an earlier vi-sweeps; this one writes "
                        f"schema {schema.SCHEMA_VERSION!r} only: pass a new --results and --reuse {store.uri} (its "
                        "finished trials are taken, the rest run)"]
    except ResultsError as err:
        return [f"{err}; pass another --results"]
    except (ValueError, AttributeError):
        pass  # an unreadable contract.json is rewritten by this run
    if store.exists(schema.VERSIONS_FILE):
        try:
            recorded = json.loads(store.read_bytes(schema.VERSIONS_FILE)).get("plugins", "none")
        except (ValueError, AttributeError):
            recorded = "none"
        if recorded not in ("none", plugins.versions_text()):
            return [f"{store.uri} was run with the plugins {recorded}; now {plugins.versions_text()}: a trial id names "
                    "one sequence of numbers, so pass another --results (or restore the plugins as run)"]
    why = claims.record(study.spec, stored_claims(store))[1]
    if why:
        return [f"{store.uri}: {why}"]
    if not store.exists(schema.STUDY_FILE):
        return []
    text = store.read_bytes(schema.STUDY_FILE).decode(errors="replace")
    if text == study.text:
        return []
    try:
        before = load_study_as_run(text, store.path(schema.STUDY_FILE))
        # a protocol's searches and test trials (its chosen values frozen in) are compared as the file expands
        now = load_study_as_run(study.text, study.source) if study.spec.protocol is not None else study
    except ConfigError as err:
        return [f"{store.uri} holds a study file this version cannot read ({err.problems[0]}); pass another --results"]
    differs = definition_differences(before, now)
    if differs:
        return [f"{store.uri} holds a different study ({'; '.join(differs)}); pass another --results or restore "
                "the study as run"]
    return []


def stored_claims(store: Store) -> dict | None:
    """The claims record of the folder's contract.json (None: none recorded, or no contract yet)."""
    if not store.exists(schema.CONTRACT_FILE):
        return None
    try:
        return json.loads(store.read_bytes(schema.CONTRACT_FILE)).get("claims")
    except (ValueError, AttributeError):
        return None


def check_reusable(source: str) -> None:
    """--reuse names a results folder (or an export) that reads; else bad input, before anything is written."""

    try:
        load_location(source)
    except (ResultsError, OSError) as err:
        raise ConfigError("--reuse", [f"{source}: {err}"]) from None


def prepare_data(study: Study, local: bool = True) -> None:
    """What every trial of a data set needs once (an image cache) is built here, before any
    trial waits for it; a missing folder, an unreadable image, missing FID weights or a plugin's
    data set that raises when built is bad input, reported before anything is written. Only for
    an embedded local Ray (`local`): on a cluster the trials run on other nodes, each of which
    builds its own cache under a lock and checks its own weights, so the driver's node (a CPU
    head) needs no more than what names the trials, the folder's listing
    (vi_sweeps.data.datasets.folder_fingerprint)."""
    if not local:
        return
    done = set()
    for t in study.trials:
        key = json.dumps(t.config.model_dump(exclude=set(PACKING)), sort_keys=True)
        if key in done:
            continue
        done.add(key)
        try:
            evaluation.prepare(t.config)
        except (FileNotFoundError, BadImage) as err:
            raise ConfigError(study.source, [str(err)]) from None
    for cfg in {t.config.dataset: t.config for t in study.trials if DATASETS.origin(t.config.dataset)}.values():
        try:
            build_dataset(cfg)
        except Exception as err:  # noqa: BLE001 - whatever a plugin's builder raises, said in one line
            raise ConfigError(study.source, [unbuildable(cfg.dataset, err)]) from None


def prepare_store(study: Study, results: str, declared: dict | None = None,
                  session: str = "none: written outside a sweep") -> Store:
    """The results folder set up for a run: leftovers removed, the study, the contract (`declared`,
    computed before anything is written; else here), versions.json (with the Ray session it ran
    in) and the trial files restored."""
    store = Store.open(results)
    left = store.remove_leftovers()
    if left:
        print(f"removed {len(left)} temporary files of writes a stopped sweep did not finish "
              f"(e.g. {posixpath.relpath(left[0], store.root)})", file=sys.stderr)
    if not store.exists(schema.STUDY_FILE):
        store.write_bytes(schema.STUDY_FILE, study.text.encode())
    elif store.read_bytes(schema.STUDY_FILE) != study.text.encode():  # the same experiment, run another way
        name = f"study.run-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.yaml"
        store.write_bytes(name, study.text.encode())
        print(f"resuming with other execution settings than {schema.STUDY_FILE} records; this run's study is "
              f"kept as {name}", file=sys.stderr)
    declared = contract(study) if declared is None else declared
    recorded = claims.record(study.spec, stored_claims(store))[0]  # refusals were checked before anything was written
    store.write_bytes(schema.CONTRACT_FILE, json.dumps({**declared, **({"claims": recorded} if recorded else {})},
                                                       indent=1, default=str).encode())
    earlier = store.read_bytes(schema.VERSIONS_FILE) if store.exists(schema.VERSIONS_FILE) else b""
    now = {**versions(), "machine": machine_kind(), "ray_session": session,
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store.write_bytes(schema.VERSIONS_FILE, json.dumps(with_history(now, earlier), indent=2).encode())
    restored = restore_trial_files(store, layout_pack_ids(study))
    if restored:
        print(f"restored {restored} finished trials' own files from {schema.TRIALS_FILE}", file=sys.stderr)
    return store


@dataclass
class SweepOutcome:
    trials: pd.DataFrame
    unfinished: list[str]  # trial ids with no finished file, with what they are
    stop_reason: str = ""
    exit_code: int = 0


def describe(study: Study, ids: list[str]) -> list[str]:
    """`trial_id model/dataset axis=value ... seed=N` for each id."""
    by_id = {t.trial_id: t for t in study.trials}
    out = []
    for tid in ids:
        t = by_id.get(tid)
        if t is None:  # a trial the study's grid does not list (a protocol's test trial names its chosen values)
            out.append(tid)
            continue
        values = {**t.config.model_dump(), **t.labels}
        axes = " ".join(f"{a}={values[a]}" for a in study.axes if a not in ("model", "dataset", "seed"))
        out.append(" ".join(filter(None, [tid, f"{t.config.model}/{t.config.dataset}", axes, f"seed={t.config.seed}"])))
    return out


@contextmanager
def driving(study: Study, results: str, address: str | None, force: bool, control: SweepControl):
    """Everything a driver does before and after its trials: the study, the location, the data
    and the cluster's resources checked before anything is written; then the results folder
    taken (its lease), prepared and handed over; the lease released at the end. A signal
    between these stages (the caller holds control.signals()) raises Stopped. Yields (store,
    consolidation)."""
    check_location(study, results)
    prepare_data(study, local=embedded(address))
    declared = contract(study)  # builds the 2-D data sets (their geometry): before anything is written
    control.check()
    with ray_session(address, control) as session:
        control.check()
        check_resources(study)
        try:
            store = Store.open(results)
        except (OSError, pa.ArrowException, LocationError) as err:  # the first write: nothing has been written
            raise ConfigError("--results", [f"{results}: cannot create the results folder: "
                                            f"{getattr(err, 'strerror', None) or err}"]) from None
        control.lease = Lease(store).acquire(force)
        try:
            prepare_store(study, results, declared, session)
            quiet_ray_logs(log_handler(store))
            note_session(session_dir(), own_node=embedded(address))  # read beside ray.log if Ray crashes
            control.check()
            yield store, Consolidation(store, study.name, RowCheck.of(study))
        finally:
            control.lease.release()


def trials_so_far(results: str) -> pd.DataFrame:
    """The trials table of a driver stopped before its trials began: what the folder holds."""
    try:
        return Consolidation(Store.open(results, create=False)).build()[0]
    except (OSError, pa.ArrowException, LocationError, StoreError):
        return pd.DataFrame(columns=["trial_id", "status"])


def run_sweep(study: Study, results: str, address: str | None = None, max_concurrent: int | None = None,
              show_progress: bool = True, force: bool = False, tensorboard: str = "", tracking=None,
              reuse: str = "", only: set[str] | None = None) -> SweepOutcome:
    """Run every unfinished trial of the study. Raises ConfigError before writing anything
    when the study cannot run here, LeaseHeld when another driver owns RESULTS. `tracking`: a
    vi_sweeps.track.spec.Tracking, resolved (its runs through Ray Tune's logger callbacks).
    `reuse`: another results folder whose finished trials of the same ids are taken, not run
    (vi_sweeps.sweep.reuse). `only`: run just these trial ids (vi_sweeps.study.subset); the rest stay
    unfinished, and the exit code is 0 when every one of these finished."""
    if reuse:
        check_reusable(reuse)
    control, progress = SweepControl(), None
    with control.signals():
        try:
            with driving(study, results, address, force, control) as (store, consolidation):
                progress = _run_trials(study, store, control, consolidation, max_concurrent, show_progress,
                                       tensorboard, tracking, reuse, only)
                try:
                    trials, _ = consolidation.write()
                except StoreError as err:
                    # The per-trial files hold everything; the tables are rebuilt by the next run.
                    control.stop(control.reason or f"{err}; the consolidated tables were not updated", 1)
                    trials, _ = consolidation.build()
        except Stopped:
            trials = trials_so_far(results)
    if progress is not None:
        progress.finish()
    finished = set(trials.loc[trials["status"].isin(schema.FINISHED), "trial_id"])
    unfinished = [t.trial_id for t in study.trials if t.trial_id not in finished]
    selected = {t.trial_id for t in study.trials} if only is None else only
    code = control.exit_code or (1 if selected & set(unfinished) else 0)
    return SweepOutcome(trials, unfinished, control.reason, code)


def _run_trials(study: Study, store: Store, control: SweepControl, consolidation: Consolidation,
                max_concurrent: int | None, show_progress: bool, tensorboard: str, tracking, reuse: str,
                only: set[str] | None) -> Progress | None:
    """The unfinished trials of the selection, run on Ray Tune; a pack that failed after its
    retries is recorded as errors. Returns the progress line shown."""
    if reuse:
        print(f"reused {reuse_finished(reuse, study, store)} finished trials of {reuse} (the same trial ids: "
              "the same numbers)", file=sys.stderr)
    todo = {t.trial_id for t in study.trials} - consolidation.finished_ids()
    if only is not None:
        todo &= only
    shown = len(study.trials) if only is None else len(only)
    progress = Progress(study.name, shown, shown - len(todo)) if show_progress else None
    if not todo:
        return progress
    for tid in todo:
        clear_error(store, tid)
    packs = make_packs(study, store.uri, todo, tensorboard)
    if progress is not None:
        progress.cost_todo = sum(p.cost for p in packs)
    try:
        grid = _fit_grid(study, store, packs, control, progress, consolidation, max_concurrent, tracking)
        for result in grid:
            if result.error is not None and not control.reason:
                spec = packs[result.config["pack"]]
                for member, tid in zip(spec.members, spec.trial_ids, strict=True):
                    record_error(store, {**member.config, "trial_id": tid}, member.labels, study.name,
                                 repr(result.error)[:2000], spec.pack_id)
    except StoreError as err:
        control.stop(str(err), 1)
    except Exception as err:  # noqa: BLE001 - Ray's own failure: its traceback to RESULTS/ray.log, the summary here
        ray_failed(err, "sweep", control)
    return progress


def _fit_grid(study: Study, store: Store, packs: list[PackSpec], control: SweepControl,
              progress: Progress | None, consolidation: Consolidation, max_concurrent: int | None, tracking=None):

    def name(trial) -> str:
        pack = packs[trial.config["pack"]]
        return f"{pack.members[0].config['model']}-{pack.members[0].config['dataset']}-{pack.trial_ids[0][:8]}"

    tuner = tune.Tuner(
        trainable_for(study, packs),
        param_space={"pack": tune.grid_search(list(range(len(packs))))},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, trial_name_creator=name,
                                    trial_dirname_creator=name, reuse_actors=True),
        run_config=run_config(study.name, store, [progress_callback(packs, progress, control, consolidation),
                                                  *tune_callbacks(tracking, study, packs, store.uri)],
                              control.stopper()),
    )
    return tuner.fit()
