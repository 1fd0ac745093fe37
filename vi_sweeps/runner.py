"""Running trials against a results store, without Ray: the body of every Ray trial.

A pack is several trials of one setting that differ in seed, run in lockstep so that a search
can average them at every evaluation (and, later, vectorise them). Each member resumes from its
checkpoint if one exists, skips itself if its file already says finished, and at each
evaluation writes its checkpoint and its own Parquet file atomically.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from analysis.schema import FINISHED
from vi_sweeps.config import TrialConfig
from vi_sweeps.objectives import from_bytes, to_bytes
from vi_sweeps.results import trial_status, trial_table, write_trial
from vi_sweeps.storage import Store
from vi_sweeps.study import Objective
from vi_sweeps.trial import Trial, evaluations


@dataclass
class Member:
    config: dict
    labels: dict


def objective_value(objective: Objective, rows: list[dict]) -> float:
    """Mean over seeds of the objective metric, with a seed's diverged value and collapse
    penalty applied; penalties always push against the optimisation direction."""
    sign = 1.0 if objective.mode == "min" else -1.0
    values = []
    for row in rows:
        v = objective.diverged_value if row["diverged"] else row[f"eval/{objective.metric}"]
        if v != v:
            v = objective.diverged_value
        values.append(v + sign * objective.collapse_penalty * bool(row["collapsed"]))
    return sum(values) / len(values) if values else math.nan


class PackRunner:
    def __init__(self, store: Store, members: list[Member], study: str = "",
                 search_trial: int = -1, objective: Objective | None = None):
        self.store, self.study = store, study
        self.search_trial, self.objective = search_trial, objective
        self.members = members

    def _checkpoint(self, tid: str) -> str:
        return f"checkpoints/{tid}.pt"

    def _start(self, member: Member) -> Trial | dict:
        """A Trial to run, or the last row of one that already finished."""
        cfg = TrialConfig(**{k: v for k, v in member.config.items() if k != "trial_id"})
        if trial_status(self.store, cfg.trial_id) in FINISHED:
            table = self.store.read_table(f"trials/{cfg.trial_id}.parquet")
            return table.slice(len(table) - 1).to_pylist()[0]
        trial = Trial(cfg)
        if self.store.exists(self._checkpoint(cfg.trial_id)):
            trial.load_state_dict(from_bytes(self.store.read_bytes(self._checkpoint(cfg.trial_id))))
        return trial

    def _save(self, trial: Trial, member: Member) -> None:
        tid = trial.cfg.trial_id
        status = "running"
        if trial.done:
            status = "diverged" if trial.rows[-1]["diverged"] else "finished"
        else:
            self.store.write_bytes(self._checkpoint(tid), to_bytes(trial.state_dict()))
        config = {**trial.cfg.model_dump(), "trial_id": tid}
        write_trial(self.store, trial_table(config, trial.rows, status, self.study, member.labels, self.search_trial))
        if trial.done:
            self.store.delete(self._checkpoint(tid))

    def run(self) -> Iterator[dict]:
        """Yields one summary per evaluation round: step, members done, diverged, collapsed and
        (in a search) the objective over the members' latest rows."""
        started = [(self._start(m), m) for m in self.members]
        live = [(t, m) for t, m in started if isinstance(t, Trial)]
        finished = [t for t, _ in started if isinstance(t, dict)]
        streams = [(t, m, evaluations(t)) for t, m in live]
        if not streams and finished:
            yield self._summary(finished, [])
        while streams:
            next_streams = []
            for trial, member, stream in streams:
                row = next(stream, None)
                if row is None:
                    continue
                self._save(trial, member)
                if not trial.done:
                    next_streams.append((trial, member, stream))
            streams = next_streams
            latest = [t.rows[-1] for t, _ in live if t.rows] + finished
            if latest:
                yield self._summary(latest, [t for t, _ in live if not t.done])

    def _summary(self, latest: list[dict], running: list[Trial]) -> dict:
        summary = {"step": max(r["step"] for r in latest),
                   "diverged": sum(bool(r["diverged"]) for r in latest),
                   "collapsed": sum(bool(r["collapsed"]) for r in latest),
                   "members_done": len(self.members) - len(running)}
        if self.objective is not None:
            summary["objective"] = objective_value(self.objective, latest)
        return summary
