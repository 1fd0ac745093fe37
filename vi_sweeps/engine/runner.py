"""Running a pack of trials against a results store, without Ray: the body of every Ray trial.

A pack is the trials of one condition that differ in seed, trained together as one vectorised
model (vi_sweeps.engine.trial). Each member skips itself if its file already says finished, resumes
from its own checkpoint if it has one (a corrupt one is moved to quarantine/ and the member
starts over), and at each evaluation writes its sample snapshot, its checkpoint and its own
Parquet file, atomically, in that order. Members are checkpointed one file each; members whose
checkpoints stand at different steps (a driver killed between two of them, a checkpoint
quarantined) run as separate lockstep groups, each padded to the trials' `pack_size`, so every
trial computes what it computes in a clean run.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import groupby

from vi_contract import schema
from vi_contract.store import Store
from vi_contract.tables import pack_id, record_error, trial_status, trial_table, write_trial
from vi_sweeps.engine.trial import Trial, evaluations
from vi_sweeps.gan.families import from_bytes, to_bytes
from vi_sweeps.study.config import TrialConfig
from vi_sweeps.study.schema import Objective

log = logging.getLogger("vi_sweeps")


@dataclass(frozen=True)
class Member:
    config: dict  # a resolved TrialConfig without trial_id
    labels: dict

    @property
    def trial_config(self) -> TrialConfig:
        return TrialConfig(**self.config)


@dataclass(frozen=True)
class PackSpec:
    """Everything one Ray trial needs: its members, where results go, and for a search the
    searched keys (their values come from the searcher, the same for every member)."""

    results: str
    study: str
    members: tuple[Member, ...]
    search_trial: int = -1
    objective: Objective | None = None
    space: tuple[str, ...] = ()
    cost: float = field(default=0.0, compare=False)
    axes: tuple[str, ...] = ()  # the study's axes, to name TensorBoard runs
    plugins: tuple = ()  # vi_sweeps.core.plugins.Plugin the driver loaded: each worker imports them first
    tensorboard: str = ""  # a log folder: TensorBoard scalars and samples at each evaluation
    layout_ids: tuple[str, ...] = ()  # every member of the pack in the study's layout (finished or not): its id

    @property
    def pack_id(self) -> str:
        return pack_id(self.layout_ids or self.trial_ids)

    def run_name(self, member: Member) -> str:
        """`study/axis=value,.../seedK`, a TensorBoard run's folder: the condition one folder name
        (path_part), so a label holding `../` cannot lead it out of the log folder."""
        values = {**member.config, **member.labels}
        parts = [f"{a}={values[a]}" for a in self.axes if a not in ("seed",) and a in values]
        return "/".join([self.study, path_part(",".join(parts) or "all"), f"seed{member.config['seed']}"])

    @property
    def trial_ids(self) -> list[str]:
        return [m.trial_config.trial_id for m in self.members]

    def with_values(self, values: dict) -> PackSpec:
        """The pack with the searched keys set (and the Optuna trial number it scores)."""
        chosen = {k: values[k] for k in self.space}
        members = tuple(Member({**m.config, **chosen}, m.labels) for m in self.members)
        return replace(self, members=members, search_trial=values.get("search_trial", self.search_trial))


def path_part(text: str) -> str:
    """Text from a study (labels, values) as one folder name: its separators and NULs made `_`,
    and never `.` or `..` (a label `../../x` wrote TensorBoard's files beside the results folder)."""
    part = re.sub(r"[/\\\x00]", "_", text)
    return part if part.strip(".") else f"_{part}"


def objective_value(objective: Objective, rows: list[dict]) -> float:
    """Mean over seeds of the objective metric, with a seed's diverged value and collapse
    penalty applied; penalties always push against the optimisation direction."""
    sign = 1.0 if objective.mode == "min" else -1.0
    worst = objective.diverged_value if objective.diverged_value is not None else 0.0
    values = []
    for row in rows:
        v = worst if row["diverged"] else row[f"eval/{objective.metric}"]
        if v != v:
            v = worst
        values.append(v + sign * objective.collapse_penalty * bool(row["collapsed"]))
    return sum(values) / len(values) if values else math.nan


class PackRunner:
    def __init__(self, store: Store, spec: PackSpec):
        self.store, self.spec = store, spec
        self.configs = [m.trial_config for m in spec.members]
        self.ids = spec.trial_ids
        self.warnings: list[str] = []  # reported with the next summary, for the driver to print
        self.board = None
        if spec.tensorboard:
            from vi_sweeps.track.tensorboard import Board  # costly (tensorboardX, protobuf): only with --tensorboard

            self.board = Board(spec.tensorboard)

    def _checkpoint(self, tid: str) -> str:
        return f"{schema.CHECKPOINTS_DIR}/{tid}.pt"

    def _state(self, tid: str) -> dict | None:
        """A member's checkpoint, or None to start over (none, or corrupt: moved aside). A
        failed read (the store, not the file) raises: Ray retries the pack."""
        rel = self._checkpoint(tid)
        if not self.store.exists(rel):
            return None
        blob = self.store.read_bytes(rel)
        try:
            return from_bytes(blob)
        except Exception as err:  # noqa: BLE001 - any unreadable pickle: truncated, garbage, wrong format
            dest = self.store.quarantine(rel)
            self.warn(f"checkpoint {self.store.path(rel)} is unreadable ({type(err).__name__}); "
                      f"moved to {dest}, trial {tid} starts over")
            return None

    def warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)

    def _save(self, trial: Trial, k: int, index: int, snapshot: tuple[str, bytes]) -> None:
        member, tid = self.spec.members[index], self.ids[index]
        row = trial.rows[k][-1]
        self.store.write_bytes(schema.sample_file(tid, row["step"], snapshot[0]), snapshot[1])
        done = trial.member_done(k)
        if not done:
            self.store.write_bytes(self._checkpoint(tid), to_bytes(trial.member_state(k)))
        status = ("diverged" if row["diverged"] else "finished") if done else "running"
        table = trial_table({**member.config, "trial_id": tid}, member.labels, trial.rows[k], status,
                            self.spec.study, self.spec.search_trial, self.spec.pack_id)
        write_trial(self.store, table)
        if done:
            self.store.delete(self._checkpoint(tid))
        if self.board is not None:
            self.board.write(tid, self.spec.run_name(member), member.config, row, snapshot)

    def run(self) -> Iterator[dict]:
        """Yields one summary per evaluation round: step, members done, diverged, collapsed and
        (in a search) the objective over the members' latest rows."""
        try:
            yield from self._run()
        finally:
            if self.board is not None:
                self.board.close()

    def _failed(self, index: int, error: str) -> None:
        """A member whose evaluation raised: recorded as an error (its checkpoint kept, so the
        next run retries it); the rest of its pack goes on."""
        member, tid = self.spec.members[index], self.ids[index]
        record_error(self.store, {**member.config, "trial_id": tid}, member.labels, self.spec.study, error,
                     self.spec.pack_id, self.spec.search_trial)
        self.warn(f"trial {tid} failed at its evaluation ({error}); the others of its pack go on")

    def _run(self) -> Iterator[dict]:
        finished, todo = {}, []
        for index, tid in enumerate(self.ids):
            if trial_status(self.store, tid) in schema.FINISHED:
                table = self.store.read_table(schema.trial_file(tid))
                finished[index] = table.slice(len(table) - 1).to_pylist()[0]
                self.store.delete(self._checkpoint(tid))  # left behind if a run died right after finishing
            else:
                todo.append((index, self._state(tid)))
        latest = dict(finished)
        if not todo:
            yield self._summary(latest)
        by_step = sorted(todo, key=lambda item: item[1]["step"] if item[1] else 0)
        for _, group in groupby(by_step, key=lambda item: item[1]["step"] if item[1] else 0):
            group = list(group)
            indices = [i for i, _ in group]
            trial = Trial([self.configs[i] for i in indices], store=self.store)
            if group[0][1] is not None:
                trial.load_member_states([state for _, state in group])
            noted = False
            for evals in evaluations(trial):
                if not noted and (note := trial.compile_note()) is not None:
                    noted = True
                    if note:
                        self.warn(note)
                for e in evals:
                    index = indices[trial.places.index(e.member)]  # e.member is a place in the pack
                    if e.error:
                        self._failed(index, e.error)
                        continue
                    self._save(trial, e.member, index, e.snapshot)
                    latest[index] = e.row
                yield self._summary(latest)

    def _summary(self, latest: dict[int, dict]) -> dict:
        rows = list(latest.values())
        summary = {"step": max((r["step"] for r in rows), default=0),
                   "diverged": sum(bool(r["diverged"]) for r in rows),
                   "collapsed": sum(bool(r["collapsed"]) for r in rows),
                   "members": len(self.ids)}
        if self.spec.objective is not None:
            summary["objective"] = objective_value(self.spec.objective, rows)
        if self.warnings:
            summary["warnings"], self.warnings = list(self.warnings), []
        return summary
