"""The one module that imports Ray: a study's trials scheduled by Ray Tune.

Identity is ours, not Ray's: a trial is finished when its own file in RESULTS says so, so
running the same command again (or --resume) starts only what is not finished, and an
unfinished trial resumes from its last checkpoint. Ray's FailureConfig retries a failed trial
(a crash, a lost node) in the same run, again from its checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd

from analysis import schema
from vi_sweeps.results import clear_error, consolidate, finished_ids, record_error, versions
from vi_sweeps.runner import Member, PackRunner
from vi_sweeps.storage import Store
from vi_sweeps.study import Objective, Study

MAX_FAILURES = 2


def pack_trainable(config: dict) -> None:
    """Ray Tune function trainable: runs a pack of members and reports each evaluation."""
    from ray import tune

    objective = Objective(**config["objective"]) if config.get("objective") else None
    if "members" in config:
        members = [Member(m["config"], m["labels"]) for m in config["members"]]
    else:  # a search suggestion: the cell's config, the suggested values, one member per seed
        chosen = {k: config[k] for k in config["space"]}
        members = [Member({**config["base"], **chosen, "seed": s}, config["labels"]) for s in config["seeds"]]
    runner = PackRunner(Store.open(config["results"]), members, config["study"],
                        config.get("search_trial", -1), objective)
    for summary in runner.run():
        tune.report(summary)


def member_dicts(study: Study, trial_ids: set[str] | None = None) -> list[dict]:
    return [{"config": t.as_dict(), "labels": t.labels} for t in study.trials
            if trial_ids is None or t.trial_id in trial_ids]


def prepare_store(study: Study, results: str) -> Store:
    """Open RESULTS, refuse one that holds another study, write the study and versions."""
    from vi_sweeps.config import ConfigError

    store = Store.open(results)
    if store.exists(schema.STUDY_FILE):
        held = store.read_bytes(schema.STUDY_FILE).decode()
        if held != study.text:
            raise ConfigError(study.source, [f"{store.uri} holds a different study file; "
                                             "pass another --results or restore the study as run"])
    else:
        store.write_bytes(schema.STUDY_FILE, study.text.encode())
    store.write_bytes(schema.VERSIONS_FILE, json.dumps(versions(), indent=2).encode())
    return store


def quiet_ray_logs(store: Store) -> None:
    """Ray's own logging goes to RESULTS/ray.log (or is dropped for remote storage)."""
    handler = logging.FileHandler(store.path("ray.log")) if store.is_local else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    names = [n for n in logging.root.manager.loggerDict if n == "ray" or n.startswith("ray.")]
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False


@contextmanager
def ray_session(address: str | None, store: Store):
    """Connects to (or starts) Ray; shuts down only a session it started itself."""
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    quiet_ray_logs(store)
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False, include_dashboard=False,
                 configure_logging=False, logging_level=logging.WARNING)
    quiet_ray_logs(store)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


@dataclass
class Progress:
    """State of the compact progress line."""

    label: str
    total: int
    done_before: int
    stream = sys.stderr
    start: float = field(default_factory=time.monotonic)
    last_print: float = 0.0
    completed: int = 0
    failed: int = 0
    diverged: int = 0
    fractions: dict = field(default_factory=dict)

    def line(self, running: int) -> str:
        done = self.done_before + self.completed
        todo = self.total - self.done_before
        progress = self.completed + sum(self.fractions.values())
        elapsed = time.monotonic() - self.start
        eta = "?" if progress <= 0 else _clock(elapsed * (todo - progress) / progress)
        return (f"[{self.label}] {done}/{self.total} done · {running} running · {self.failed} failed"
                f" · {self.diverged} diverged · {_clock(elapsed)} elapsed · ETA {eta}")

    def finish(self) -> None:
        self.show(0, force=True)
        self.stream.write("\n")

    def show(self, running: int, force: bool = False) -> None:
        now = time.monotonic()
        tty = self.stream.isatty()
        if not force and now - self.last_print < (1.0 if tty else 15.0):
            return
        self.last_print = now
        self.stream.write(("\r\033[K" if tty else "") + self.line(running) + ("" if tty else "\n"))
        self.stream.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def progress_callback(progress: Progress, store: Store, consolidate_every: float = 30.0):
    from ray.tune import Callback

    class ProgressLine(Callback):
        last_consolidation = time.monotonic()

        def _running(self, trials) -> int:
            return sum(t.status == "RUNNING" for t in trials)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            config = trial.config["members"][0]["config"] if "members" in trial.config else trial.config["base"]
            iterations = config["iterations"]
            progress.fractions[trial.trial_id] = min(result.get("step", 0) / iterations, 1.0)

        def on_trial_complete(self, iteration, trials, trial, **info):
            progress.fractions.pop(trial.trial_id, None)
            progress.completed += 1
            last = trial.last_result or {}
            progress.diverged += int(last.get("diverged", 0) or 0)
            if time.monotonic() - self.last_consolidation > consolidate_every:
                consolidate(store)
                self.last_consolidation = time.monotonic()

        def on_trial_error(self, iteration, trials, trial, **info):
            progress.fractions.pop(trial.trial_id, None)
            progress.failed += 1

        def on_step_end(self, iteration, trials, **info):
            progress.show(self._running(trials))

    return ProgressLine()


def trial_names(trial) -> str:
    return trial.config["members"][0]["config"]["trial_id"]


def run_sweep(study: Study, results: str, address: str | None = None,
              max_concurrent: int | None = None, show_progress: bool = True) -> pd.DataFrame:
    """Run every unfinished trial of the study; returns the consolidated trials table."""
    store = prepare_store(study, results)
    done = finished_ids(store)
    todo = [t for t in study.trials if t.trial_id not in done]
    progress = Progress(study.name, len(study.trials), len(study.trials) - len(todo))
    if not todo:
        trials, _ = consolidate(store)
        progress.finish()
        return trials
    for t in todo:
        clear_error(store, t.trial_id)
    with ray_session(address, store):
        grid = _fit_grid(study, store, todo, progress, max_concurrent, show_progress)
    for result in grid:
        if result.error is not None:
            member = result.config["members"][0]
            record_error(store, member["config"], member["labels"], study.name, repr(result.error)[:2000])
    trials, _ = consolidate(store)
    if show_progress:
        progress.finish()
    return trials


def check_resources(study: Study, pack: int = 1) -> None:
    """A trial (of `pack` seeds) that asks for more than the whole cluster has would wait for
    ever: refuse it."""
    import ray

    from vi_sweeps.config import ConfigError

    have = ray.cluster_resources()
    res = study.spec.resources
    for key, need in (("cpu", res.cpu * pack), ("gpu", res.gpu * pack)):
        if need > have.get(key.upper(), 0.0):
            raise ConfigError(study.source, [
                f"resources.{key}: a trial needs {need:g} {key.upper()} but the Ray cluster has "
                f"{have.get(key.upper(), 0.0):g}; lower it or pass --address of a larger cluster"])


def run_config(name: str, store: Store, progress: Progress, show_progress: bool):
    """Ray's side of every Tuner here: its files beside the results, retries, no tables."""
    from ray import tune

    ray_dir = store.path("ray") if store.is_local else store.uri.rstrip("/") + "/ray"
    return tune.RunConfig(
        name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=ray_dir,
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES), verbose=0,
        callbacks=[progress_callback(progress, store)] if show_progress else [],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1))


def _fit_grid(study: Study, store: Store, todo, progress: Progress, max_concurrent, show_progress):
    from ray import tune

    check_resources(study)
    res = study.spec.resources
    trainable = tune.with_resources(pack_trainable, {"cpu": res.cpu, "gpu": res.gpu})
    members = [[m] for m in member_dicts(study, {t.trial_id for t in todo})]
    tuner = tune.Tuner(
        trainable,
        param_space={"results": store.uri, "study": study.name, "members": tune.grid_search(members)},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, trial_name_creator=trial_names,
                                    trial_dirname_creator=trial_names, reuse_actors=True),
        run_config=run_config(study.name, store, progress, show_progress),
    )
    return tuner.fit()
