"""The trackers' Ray Tune callbacks (the tracking spec itself is vi_sweeps.track.spec): MLflow
(ray.air.integrations.mlflow) or Weights & Biases (ray.air.integrations.wandb), imported only
when a sweep tracks (`pip install "vi-sweeps[track]"` installs the trackers).

A Ray trial here is a pack of seeds, so each callback is a thin subclass of Ray's that opens
one tracker run per member (per trial of the contract, named by its condition and seed, its
full config as parameters) instead of one per pack. At every evaluation round it reads each
member's own rows from its trial file (the source of truth the pack has just written) and logs
every `loss/*` and `eval/*` key with `wall_s`, `collapsed` and `diverged` at the trial's
step, and its sample snapshot as an image.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.air.integrations.wandb import WandbLoggerCallback, _clean_log, _QueueItem, _WandbLoggingActor
from ray.tune.result import TRAINING_ITERATION

from vi_contract import schema
from vi_contract.store import Store
from vi_sweeps.track.spec import TAG, Tracking, group_name, offline_folder, run_name
from vi_sweeps.track.tensorboard import snapshot_image


class Members:
    """The members of a Ray trial (its pack) and what of their rows has been logged. Rows are
    read from each member's trial file; a step is logged once."""

    def __init__(self, results: str, study: str, axes: tuple[str, ...], packs: list):
        self.results, self.study, self.axes, self.packs = results, study, axes, packs
        self.logged: dict[str, int] = {}  # trial id -> last step logged
        self._store = None

    def __getstate__(self) -> dict:  # Ray pickles callbacks with the experiment; the store reopens
        return {**self.__dict__, "_store": None}

    @property
    def store(self):
        if self._store is None:
            self._store = Store.open(self.results)
        return self._store

    def of(self, trial) -> list[tuple[str, dict, str, str]]:
        """(trial id, parameters, run name, group) of each member of a Ray trial."""
        spec = self.packs[trial.config["pack"]]
        if spec.space:
            spec = spec.with_values(trial.config)
        out = []
        for member, tid in zip(spec.members, spec.trial_ids, strict=True):
            config = {**member.config, "search_trial": spec.search_trial}
            params = {**member.config, **{f"label.{k}": v for k, v in member.labels.items()}, "trial_id": tid,
                      "study": self.study, "search_trial": spec.search_trial}
            out.append((tid, params, run_name(self.study, self.axes, spec.space, config, member.labels),
                        group_name(self.study, self.axes, spec.space, config, member.labels)))
        return out

    def rows(self, tid: str) -> tuple[list[dict], str]:
        """The rows of `tid` not logged yet (marked logged), and the trial's status."""
        try:
            table = self.store.read_table(schema.trial_file(tid))
        except (FileNotFoundError, OSError):
            return [], ""
        rows = table.select([c for c in table.column_names if c in ("step", "status") or c in schema.ROW_META
                             or schema.is_result_key(c)]).to_pylist()
        last = self.logged.get(tid, -1)
        new = [r for r in rows if r["step"] > last]
        if new:
            self.logged[tid] = max(r["step"] for r in new)
        return new, rows[-1]["status"] if rows else ""

    def snapshot(self, tid: str, step: int):
        """The trial's sample snapshot at `step` as an HWC uint8 image, or None."""
        for suffix in (".npy", ".png"):
            rel = schema.sample_file(tid, step, suffix)
            if self.store.exists(rel):
                try:
                    return snapshot_image(suffix, self.store.read_bytes(rel))
                except (OSError, ValueError):
                    return None
        return None


def metrics_of(row: dict) -> dict[str, float]:
    """What a row logs: wall_s, every loss/* and eval/* key (NaN left out), collapsed, diverged."""
    out = {}
    for key, value in row.items():
        if key == "wall_s" or schema.is_result_key(key) or key in ("collapsed", "diverged"):
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out[key] = float(value)
    return out


def run_status(status: str, failed: bool) -> str:
    if status in schema.FINISHED and not failed:
        return "FINISHED"
    return "FAILED" if failed or status == "error" else "KILLED"


def callbacks(tracking: Tracking | None, study, packs: list, results: str) -> list:
    """The Ray Tune callbacks of `tracking` for these packs (none without tracking)."""
    if tracking is None:
        return []
    members = Members(results, study.name, tuple(study.axes), packs)
    if tracking.kind == "mlflow":
        return [_mlflow_callback(tracking, study.name, members, results)]
    return [_wandb_callback(tracking, members, results)]


def _mlflow_callback(tracking: Tracking, experiment: str, members: Members, results: str):
    class TrialRuns(MLflowLoggerCallback):
        """Ray's MLflowLoggerCallback, one MLflow run per member; a resumed trial finds its run
        again by its tag and goes on from the last step it logged."""

        def setup(self, *args, **kwargs):
            for name in ("mlflow", "alembic"):  # not its database set-up on the terminal
                logging.getLogger(name).setLevel(logging.WARNING)
            artifacts = None
            if self.tracking_uri.startswith("sqlite:///"):  # the offline store: artifacts beside it, not in ./mlruns
                folder = Path(self.tracking_uri.removeprefix("sqlite:///")).parent
                folder.mkdir(parents=True, exist_ok=True)
                artifacts = (folder / "mlflow-artifacts").as_uri()
            self.mlflow_util.setup_mlflow(tracking_uri=self.tracking_uri, experiment_name=self.experiment_name,
                                          artifact_location=artifacts)
            self._trial_runs = {}

        def _client(self):
            return self.mlflow_util._get_client()

        def log_trial_start(self, trial):
            from mlflow.entities import Param

            client = self._client()
            for tid, params, name, group in members.of(trial):
                if tid in self._trial_runs:
                    continue
                found = client.search_runs([self.mlflow_util.experiment_id], f"tags.{TAG} = '{tid}'", max_results=1)
                if found:
                    run = found[0]
                    client.update_run(run.info.run_id, status="RUNNING")
                    history = client.get_metric_history(run.info.run_id, "wall_s")
                    members.logged[tid] = max((m.step for m in history), default=-1)
                    have = run.data.params
                else:
                    run = self.mlflow_util.start_run(run_name=name, tags={TAG: tid, "group": group, "ray_trial": str(trial)})
                    have = {}
                todo = [Param(k, str(v)) for k, v in sorted(params.items()) if k not in have]
                for i in range(0, len(todo), 100):  # MLflow takes at most 100 parameters a call
                    client.log_batch(run.info.run_id, params=todo[i:i + 100])
                self._trial_runs[tid] = run.info.run_id

        def log_trial_result(self, iteration, trial, result):
            self._log_new(trial)

        def _log_new(self, trial) -> dict[str, str]:
            from mlflow.entities import Metric

            client, statuses = self._client(), {}
            for tid, *_ in members.of(trial):
                rows, statuses[tid] = members.rows(tid)
                run_id = self._trial_runs.get(tid)
                if run_id is None:
                    continue
                now = int(time.time() * 1000)
                batch = [Metric(k, v, now, int(r["step"])) for r in rows for k, v in metrics_of(r).items()]
                for i in range(0, len(batch), 1000):  # MLflow takes at most 1,000 metrics a call
                    client.log_batch(run_id, metrics=batch[i:i + 1000])
                for r in rows:
                    image = members.snapshot(tid, int(r["step"]))
                    if image is not None:
                        client.log_image(run_id, image, key="samples", step=int(r["step"]))
            return statuses

        def log_trial_end(self, trial, failed: bool = False):
            statuses = self._log_new(trial)
            for tid, *_ in members.of(trial):
                run_id = self._trial_runs.pop(tid, None)
                if run_id is not None:
                    self._client().set_terminated(run_id, status=run_status(statuses.get(tid, ""), failed))

    return TrialRuns(tracking_uri=tracking.target, experiment_name=experiment)


class _RunKey:
    """Stands for a member where Ray's W&B callback keys its logging actors by trial."""

    def __init__(self, tid: str, local_path: str):
        self.trial_id, self.local_path = tid, local_path

    def __hash__(self) -> int:
        return hash(self.trial_id)

    def __eq__(self, other) -> bool:
        return isinstance(other, _RunKey) and other.trial_id == self.trial_id

    def __str__(self) -> str:
        return self.trial_id


def _wandb_callback(tracking: Tracking, members: Members, results: str):
    mode = os.environ.get("WANDB_MODE", "offline")  # offline unless asked otherwise
    os.environ.setdefault("WANDB_MODE", mode)  # Ray's callback then asks for no API key offline
    folder = str(offline_folder(results)) if "://" not in results else os.environ.get("WANDB_DIR", os.getcwd())

    class FlushingActor(_WandbLoggingActor):
        """Ray's logging actor, which then waits for wandb's service to write the run: Ray kills
        the actor once `run` returns, and offline a run's records were sometimes lost with it
        (a run file of its 7-byte header only, 1 run in about 6)."""

        def run(self):
            super().run()
            self._wandb.teardown()

    class TrialRuns(WandbLoggerCallback):
        """Ray's WandbLoggerCallback (one logging actor per run), one W&B run per member."""

        _logger_actor_cls = FlushingActor

        def log_trial_start(self, trial):
            Path(folder).mkdir(parents=True, exist_ok=True)
            for tid, params, name, group in members.of(trial):
                key = _RunKey(tid, folder)
                if key in self._trial_queues:
                    continue
                kwargs = dict(id=tid, name=name, resume="allow", allow_val_change=True, group=group[:128],
                              project=self.project, config=_clean_log(params), dir=folder, mode=mode,
                              job_type="trial")
                kwargs.update(self.kwargs)
                self._start_logging_actor(key, [*self._exclude_results, *self.excludes, "config"], **kwargs)

        def log_trial_result(self, iteration, trial, result):
            self._log_new(trial)

        def _log_new(self, trial) -> None:
            for tid, *_ in members.of(trial):
                key = _RunKey(tid, folder)
                if key not in self._trial_queues:
                    continue
                rows, _ = members.rows(tid)
                for r in rows:
                    payload = {**metrics_of(r), TRAINING_ITERATION: int(r["step"])}
                    image = members.snapshot(tid, int(r["step"]))
                    if image is not None:
                        payload["samples"] = image
                    self._trial_queues[key].put((_QueueItem.RESULT, _clean_log(payload, image_kwargs=self.image_kwargs)))

        def log_trial_end(self, trial, failed: bool = False):
            self._log_new(trial)
            for tid, *_ in members.of(trial):
                key = _RunKey(tid, folder)
                if key in self._trial_queues:
                    self._signal_logging_actor_stop(key)
            self._cleanup_logging_actors()

    return TrialRuns(project=tracking.target)

