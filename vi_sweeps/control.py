"""Watching and stopping a running sweep: why it should stop early (Ctrl-C, SIGTERM, a store
that cannot be written, a lost lease) as a Ray Tune stopper, the progress line with its
cost-weighted ETA, and the Ray Tune callback that feeds both and consolidates the tables as
trials end. Shared by `vi-sweep run` and `vi-sweep tune`."""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ray import tune
from ray.tune import Callback

from vi_contract.lease import Lease
from vi_contract.store import StoreError
from vi_contract.tables import Consolidation
from vi_sweeps.runner import PackSpec


@dataclass
class SweepControl:
    """Why a sweep should stop early (Ctrl-C, SIGTERM, a fatal store error, a lost lease), as
    a Ray Tune stopper; the first reason wins."""

    reason: str = ""
    exit_code: int = 0
    lease: Lease | None = None

    def __getstate__(self) -> dict:  # Ray pickles its callbacks with the experiment state
        return {**self.__dict__, "lease": None}

    def stop(self, reason: str, exit_code: int) -> None:
        if not self.reason:
            self.reason, self.exit_code = reason, exit_code

    def should_stop(self) -> bool:
        if self.lease is not None and self.lease.lost.is_set():
            self.stop("another driver took the results folder over (--force); this one stopped", 1)
        return bool(self.reason)

    def stopper(self):
        control = self

        class Stop(tune.Stopper):
            def __call__(self, trial_id, result) -> bool:
                return control.should_stop()

            def stop_all(self) -> bool:
                return control.should_stop()

        return Stop()

    @contextmanager
    def signals(self):
        """Ctrl-C (130) and SIGTERM (143) stop the sweep cleanly; a second Ctrl-C aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.reason and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop("interrupted", 130 if signum == signal.SIGINT else 143)

        before = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in before.items():
                signal.signal(s, h)


@dataclass
class Progress:
    """The compact progress line: trials done, and an ETA that weighs each pack by its cost."""

    label: str
    total: int
    done_before: int
    cost_todo: float = 0.0
    stream = sys.stderr
    start: float = field(default_factory=time.monotonic)
    last_print: float = 0.0
    completed: int = 0
    failed: int = 0
    diverged: int = 0
    cost_done: float = 0.0
    running_cost: dict = field(default_factory=dict)

    def line(self, running: int) -> str:
        done = self.done_before + self.completed
        progress = self.cost_done + sum(self.running_cost.values())
        elapsed = time.monotonic() - self.start
        eta = "?" if progress <= 0 else _clock(elapsed * (self.cost_todo - progress) / progress)
        return (f"[{self.label}] {done}/{self.total} done · {running} running · {self.failed} failed"
                f" · {self.diverged} diverged · {_clock(elapsed)} elapsed · ETA {eta}")

    def finish(self) -> None:
        self.show(0, force=True)
        if self.stream.isatty():
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
    m, s = divmod(int(max(seconds, 0)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def progress_callback(packs: list[PackSpec], progress: Progress | None, control: SweepControl,
                      consolidation: Consolidation, every: float = 30.0):

    class Watch(Callback):
        last_consolidation = time.monotonic()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result.get("fatal"):
                control.stop(result["fatal"], 1)
            for message in result.get("warnings") or []:
                print(f"warning: {message}", file=sys.stderr, flush=True)
            if progress is not None:
                spec = packs[trial.config["pack"]]
                iterations = spec.members[0].config["iterations"]
                progress.running_cost[trial.trial_id] = min(result.get("step", 0) / iterations, 1.0) * spec.cost

        def on_trial_complete(self, iteration, trials, trial, **info):
            if progress is not None and not control.reason:
                spec = packs[trial.config["pack"]]
                progress.running_cost.pop(trial.trial_id, None)
                progress.cost_done += spec.cost
                progress.completed += len(spec.members)
                progress.diverged += int((trial.last_result or {}).get("diverged", 0) or 0)
            if time.monotonic() - self.last_consolidation > every:
                try:
                    consolidation.write()
                except StoreError as err:
                    control.stop(str(err), 1)
                self.last_consolidation = time.monotonic()

        def on_trial_error(self, iteration, trials, trial, **info):
            if progress is not None:
                progress.running_cost.pop(trial.trial_id, None)
                progress.failed += len(packs[trial.config["pack"]].members)

        def on_step_end(self, iteration, trials, **info):
            if progress is not None:
                progress.show(sum(t.status == "RUNNING" for t in trials))

    return Watch()

