"""Watching and stopping a running sweep: why it should stop early (Ctrl-C, SIGTERM, a store
that cannot be written, a lost lease) as a Ray Tune stopper, the progress line with its
cost-weighted ETA, and the Ray Tune callback that feeds both, names each pack a fault hit (a
worker or node lost, and why) and consolidates the tables as trials end. Shared by `vi-sweep
run` and `vi-sweep tune`."""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ray import tune
from ray.tune import Callback

from vi_contract.lease import Lease
from vi_contract.store import StoreError
from vi_contract.tables import Consolidation
from vi_sweeps.engine.runner import PackSpec
from vi_sweeps.gan.compiled import NOTE_PREFIX as COMPILE_NOTE

MAX_FAILURES = 2  # the failure policy: a pack whose worker or node is lost is retried this often, then an error


class Stopped(Exception):
    """The driver was stopped (a signal) before its trials began: it unwinds to the summary;
    the SweepControl says why and with which exit code."""


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

    def check(self) -> None:
        """Between the stages of a driver's preparation: stop here if a signal came."""
        if self.should_stop():
            raise Stopped

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
        """Ctrl-C (130) and SIGTERM (143) stop the driver cleanly at any stage (checked between
        the stages of its preparation, by the stopper while trials run); a second Ctrl-C aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.reason and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop(f"interrupted ({signal.Signals(signum).name})", 130 if signum == signal.SIGINT else 143)

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

    def line(self, running: int, seeds_running: int | None = None, conditions: tuple[str, ...] = ()) -> str:
        """Seeds done of the total, packs running (and their seeds and conditions), failures,
        and an ETA once a pack has finished: before that, a start-up's partial progress made it
        jump (55m, 57m, 29m, 20m with nothing done)."""
        done = self.done_before + self.completed
        progress = self.cost_done + sum(self.running_cost.values())
        elapsed = time.monotonic() - self.start
        eta = "after the first pack" if self.cost_done <= 0 or progress <= 0 else \
            _clock(elapsed * (self.cost_todo - progress) / progress)
        seeds = f" ({seeds_running} seeds)" if seeds_running is not None else ""
        shown = "; ".join(conditions[:2]) + (f"; +{len(conditions) - 2} more" if len(conditions) > 2 else "")
        return (f"[{self.label}] {done}/{self.total} seeds done · {running} packs running{seeds}"
                f"{': ' + shown if shown else ''} · {self.failed} failed · {self.diverged} diverged · "
                f"{_clock(elapsed)} elapsed · ETA {eta}")

    def say(self, text: str) -> None:
        """A line of its own (a fault, a warning), not glued to the progress line of a terminal."""
        self.stream.write(("\r\033[K" if self.stream.isatty() else "") + text + "\n")
        self.stream.flush()
        self.last_print = 0.0

    def finish(self) -> None:
        self.show(0, force=True)
        if self.stream.isatty():
            self.stream.write("\n")

    def show(self, running: int, force: bool = False, seeds_running: int | None = None,
             conditions: tuple[str, ...] = ()) -> None:
        now = time.monotonic()
        tty = self.stream.isatty()
        if not force and now - self.last_print < (1.0 if tty else 15.0):
            return
        self.last_print = now
        self.stream.write(("\r\033[K" if tty else "") + self.line(running, seeds_running, conditions) + ("" if tty else "\n"))
        self.stream.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(max(seconds, 0)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def failure_cause(error: str | None) -> str:
    """One line for why a pack's Ray trial failed, from the error text Ray Tune recorded (the
    last failure's): a worker or node lost, and how, or the last line of the pack's own error."""
    text = (error or "").rsplit("Failure #", 1)[-1]
    low = text.lower()
    if "running low on memory" in low or "node_out_of_memory" in low or "outofmemoryerror" in low:
        return "Ray's memory monitor killed its worker (the node ran low on memory)"
    if "node has died" in low or "node it was running on is dead" in low or "nodediederror" in low:
        return "the node it ran on left the cluster"
    if "actorunavailableerror" in low or "actor is temporarily unavailable" in low:
        return "its worker became unreachable (its node's Ray process died, or the network dropped)"
    if "actordiederror" in low or "worker process has died" in low or "workercrashederror" in low:
        return "its worker process died (a signal such as SIGKILL, the kernel's OOM killer, or a crash)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "an error Ray did not describe"


def last_error(trial) -> str:
    """What Ray Tune wrote of a trial's failures, on the driver's disk as it happened (get_error
    reads the copy in storage, synced later)."""
    try:
        return Path(trial.error_file).read_text(errors="replace") if trial.error_file else ""
    except OSError:
        return ""


def condition_name(spec: PackSpec) -> str:
    """`gan/ring8 lam=5.0`: a pack's condition, by its study axes."""
    config, labels = spec.members[0].config, spec.members[0].labels
    values = {**config, **labels}
    names = spec.axes or tuple(labels)  # a search's packs name no axes: their labels say the cell
    axes = " ".join(f"{a}={values[a]}" for a in names if a not in ("model", "dataset", "seed") and a in values)
    return " ".join(filter(None, [f"{config['model']}/{config['dataset']}", axes]))


def pack_name(spec: PackSpec) -> str:
    """`pack 1a2b3c4d (gan/ring8 lam=5.0; seeds 0, 1, 2)`: what a fault line names."""
    seeds = ", ".join(str(m.config["seed"]) for m in spec.members)
    return f"pack {spec.pack_id[:8]} ({condition_name(spec)}; seeds {seeds})"


def progress_callback(packs: list[PackSpec], progress: Progress | None, control: SweepControl,
                      consolidation: Consolidation, every: float = 30.0):

    def say(text: str) -> None:
        if progress is not None:
            progress.say(text)
        else:
            print(text, file=sys.stderr, flush=True)

    class Watch(Callback):
        last_consolidation = time.monotonic()
        compile_noted = False

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result.get("fatal"):
                control.stop(result["fatal"], 1)
            for message in result.get("warnings") or []:
                if message.startswith(COMPILE_NOTE):  # the same advice for every pack: once a sweep
                    if self.compile_noted:
                        continue
                    self.compile_noted = True
                say(f"warning: {message}")
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

        def on_trial_recover(self, iteration, trials, trial, **info):
            say(f"warning: {pack_name(packs[trial.config['pack']])}: {failure_cause(last_error(trial))}; "
                f"retry {trial.num_failures} of {MAX_FAILURES}, from its members' checkpoints")

        def on_trial_error(self, iteration, trials, trial, **info):
            if not control.reason:
                say(f"error: {pack_name(packs[trial.config['pack']])}: {failure_cause(last_error(trial))}; no retry "
                    "left: its trials are recorded as errors, the other packs go on")
            if progress is not None:
                progress.running_cost.pop(trial.trial_id, None)
                progress.failed += len(packs[trial.config["pack"]].members)

        def on_step_end(self, iteration, trials, **info):
            if progress is not None:
                running = [packs[t.config["pack"]] for t in trials if t.status == "RUNNING"]
                progress.show(len(running), seeds_running=sum(len(p.members) for p in running),
                              conditions=tuple(dict.fromkeys(condition_name(p) for p in running)))

    return Watch()

