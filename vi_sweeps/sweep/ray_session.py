"""Ray's side of a sweep: starting a private embedded Ray or joining the cluster named (never one
found on the machine), its logs and the errors its nodes publish into RESULTS/ray.log (with where
Ray's own logs are, and their ends when a run ends with Ray's error), an
address that does not answer failing in one line, a signal stopping it while it connects;
checking that the cluster can hold a pack, what machine ran the results, and the Ray Tune
pieces every Tuner here shares (the trainable of a pack with its resources, the RunConfig with
its retries)."""

from __future__ import annotations

import logging
import os
import platform
import signal
import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import ray
import ray._private.worker as ray_worker
import torch
from ray import tune
from ray._common.utils import get_ray_address_file
from ray._private.utils import read_ray_address
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from vi_contract.store import Store, StoreError
from vi_sweeps.core import plugins
from vi_sweeps.engine.runner import PackRunner, PackSpec
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.expansion import Study
from vi_sweeps.sweep.control import MAX_FAILURES, Stopped, SweepControl

CONNECT_WITHIN_S = 10.0  # an address that does not answer in this time fails in one line


def quiet_ray_logs(handler: logging.Handler) -> None:
    """Ray's own logging goes to `handler` (RESULTS/ray.log), never to the terminal."""
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    names = [n for n in logging.root.manager.loggerDict if n == "ray" or n.startswith("ray.")]
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False


def log_handler(store: Store) -> logging.Handler:
    return logging.FileHandler(store.path("ray.log")) if store.is_local else logging.NullHandler()


RAY_OWN_LOGS = ("raylet.out", "raylet.err", "gcs_server.out", "gcs_server.err")  # in a session directory's logs/
TAIL_LINES = 20  # of each, copied into RESULTS/ray.log when a run ends with Ray's error


def _ray_log() -> logging.Logger:
    log = logging.getLogger("ray.vi_sweeps")  # a child of "ray": its lines reach quiet_ray_logs's handler
    log.setLevel(logging.INFO)
    return log


def session_dir() -> str:
    """This driver's Ray session directory (Ray's own logs in its logs/); '' without a session."""
    node = ray_worker._global_node
    return node.get_session_dir_path() if node is not None else ""


def note_session(session: str, own_node: bool) -> None:
    """RESULTS/ray.log's first line: where Ray's own logs are. An embedded Ray that crashes ends
    this driver from its C++ core (nothing more is written here); its raylet and GCS wrote there."""
    where = "" if own_node else " (a cluster's raylet and GCS logs are on its head and nodes)"
    _ray_log().info("Ray's session directory: %s; Ray's own logs: %s%s", session,
                    Path(session) / "logs" if session else "none", where)


def ray_log_tails(session: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of the raylet's and GCS's logs of a session directory, each under
    its path ('' where there are none: a driver joined to a cluster has the head's elsewhere)."""
    out = []
    for name in RAY_OWN_LOGS:
        path = Path(session) / "logs" / name
        try:
            with path.open("rb") as f:
                f.seek(max(0, path.stat().st_size - 64 * 1024))  # a long log: its end only
                tail = f.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        if tail:
            out.append(f"--- the last {len(tail)} lines of {path} ---\n" + "\n".join(tail))
    return "\n".join(out)


def log_tails(session: str) -> None:
    """A run that ends with Ray's error: the ends of Ray's own logs into RESULTS/ray.log."""
    tails = ray_log_tails(session) if session else ""
    _ray_log().error("Ray's own logs at the error%s", f":\n{tails}" if tails else f": none found under {session or 'no session'}")


def ray_failed(err: Exception, what: str, control) -> None:
    """Ray Tune's run raised (a sweep's or a search's): its traceback and the ends of Ray's own
    logs to RESULTS/ray.log, and the driver stops with exit 1 and one line saying where they are."""
    logging.getLogger("ray").error("the %s's Ray Tune run failed", what, exc_info=err)
    log_tails(session_dir())
    first = (str(err).strip().splitlines() or [""])[0][:300]
    control.stop(f"Ray failed: {type(err).__name__}: {first} (Ray's report: RESULTS/ray.log)", 1)


@contextmanager
def captured_stderr():
    """File descriptor 2 into a temporary file for the duration (C++ code writes there
    directly); yields a function that returns what was written."""

    sys.stderr.flush()
    saved, text = os.dup(2), []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: "".join(text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode(errors="replace"))


def check_reachable(address: str) -> None:
    """A HOST:PORT where nothing listens fails at once (Ray would retry for minutes)."""

    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError("--address", [f"{address}: no Ray cluster answered there ({err.strerror or err})"]) from None


def embedded(option: str | None) -> bool:
    """Whether the driver starts its own Ray (resolve_address): its trials run on this machine."""
    return (option or os.environ.get("RAY_ADDRESS") or "local") == "local"


def resolve_address(option: str | None) -> tuple[str, str]:
    """(the address ray.init gets, how versions.json names the session). --address as given
    (`auto`: RAY_ADDRESS, else the cluster `ray start` recorded on this machine); else
    RAY_ADDRESS, Ray's convention (a Ray Job sets it for its entrypoint); else "local": a private
    embedded Ray. ray.init() with no address would join whatever cluster the machine's
    current-cluster file names (ray_current_cluster in Ray's temp dir), another user's too."""

    env = os.environ.get("RAY_ADDRESS", "")
    address, named = (option, "--address") if option else (env, "RAY_ADDRESS") if env else ("local", "")
    if address == "local":
        return "local", "embedded: a private local Ray this driver started"
    if address == "auto":  # RAY_ADDRESS, else the current-cluster file: Ray's own "auto" also joins any Ray it sees running
        address = env or read_ray_address()
        if not address:
            raise ConfigError("--address", [f"auto: no Ray cluster was started on this machine with `ray start --head` "
                                            f"(no {get_ray_address_file(None)}); omit --address for a private embedded Ray"])
        named = "--address auto" + (" and RAY_ADDRESS" if env else "")
    return address, f"cluster {address} (from {named})"


@contextmanager
def ray_errors_to_log(own_node: bool):
    """The errors Ray's nodes publish (a worker or node that died, with Ray's dump of its state)
    go to RESULTS/ray.log: Ray's driver prints them on stdout. A node that died is also one line
    here; a pack it held is named by the sweep's callback (vi_sweeps.sweep.control). With `own_node`
    (an embedded Ray) the node is the driver's own, whose death Ray's C++ core worker answers by
    ending the driver: the line says so, as no summary can follow."""

    shown = set()  # Ray publishes a node's death more than once
    said = ("error: this driver's own Ray node process (raylet) died, and Ray ends a driver whose node is gone "
            "(exit 1, within about 30 s): every finished trial is kept; run the same command again to resume the rest"
            if own_node else "warning: a Ray node process (raylet) died; its packs are retried as the failure policy says")

    def to_log(data: dict, ignore_prefix: bool = False) -> None:
        text = "\n".join(data.get("lines") or [])
        logging.getLogger("ray.published").error("(%s) %s", data.get("pid"), text)
        first = text.split("\n", 1)[0]
        if "Raylet is terminated" in first and first not in shown:
            shown.add(first)
            if own_node:  # the driver ends soon: why the raylet died is at the end of its log
                log_tails(session_dir())
            print(f"{said} (Ray's report: RESULTS/ray.log)", file=sys.stderr, flush=True)

    before = ray_worker.print_to_stdstream  # what Ray's error listener thread calls for each message
    ray_worker.print_to_stdstream = to_log
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = before


def _init(address: str) -> None:
    ray.init(address=address, log_to_driver=False, include_dashboard=False, configure_logging=False,
             logging_level=logging.WARNING, runtime_env=plugins.runtime_env())  # file plugins reach every worker


def start_embedded(control: SweepControl) -> None:
    """ray.init of a private Ray, in this (the main) thread as Ray's node needs. Ray sets its own
    SIGTERM handlers (exit 1 after killing its processes): the driver's are put back, and a
    SIGTERM that reached Ray's stops the driver as the driver's own would."""

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _init("local")
    except SystemExit:  # only Ray's SIGTERM handlers exit from ray.init
        ray.shutdown()
        control.stop("interrupted (SIGTERM) while Ray started", 143)
        raise Stopped from None
    finally:
        if threading.current_thread() is threading.main_thread():
            for s, h in handlers.items():
                signal.signal(s, h)


def connect(address: str, control: SweepControl) -> None:
    """ray.init of a cluster, in a thread, so that a signal stops the driver while Ray waits (Ray's
    C++ client retries for minutes and holds the thread that called it) and a cluster that does
    not answer within CONNECT_WITHIN_S fails in one line."""

    outcome: list[BaseException | None] = []

    def attempt():
        try:
            _init(address)
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            outcome.append(err)

    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "6")  # a refused token fails in ~6 s, inside CONNECT_WITHIN_S
    thread = threading.Thread(target=attempt, name="vi-sweeps-connect", daemon=True)
    deadline = time.monotonic() + CONNECT_WITHIN_S
    thread.start()
    while not outcome and time.monotonic() < deadline:
        control.check()
        thread.join(0.1)
    if not outcome:
        raise ConfigError("--address", [f"{address}: no Ray cluster answered within {CONNECT_WITHIN_S:g} s (not a Ray "
                                        "head's GCS port, or a cluster still starting)"])
    if outcome[0] is not None:
        raise outcome[0]


@contextmanager
def ray_session(address: str | None, control: SweepControl):
    """Starts a private Ray or joins a cluster (resolve_address); yields how versions.json names
    the session; shuts down only a session it started itself. A signal while Ray starts or
    connects raises Stopped (the control says why)."""

    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # SweepControl handles Ctrl-C
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # run_config adds JSON and CSV, not TensorBoardX
    quiet_ray_logs(logging.NullHandler())
    started = not ray.is_initialized()
    target, described = resolve_address(address) if started else (
        "", f"the caller's Ray session ({ray.get_runtime_context().gcs_address})")
    with ray_errors_to_log(own_node=target == "local"):
        if started:
            try:
                _start(target, address or target, control)
            except BaseException:
                ray.shutdown()
                raise
        quiet_ray_logs(logging.NullHandler())
        try:
            yield described
        finally:
            if started:
                ray.shutdown()


def _start(target: str, shown: str, control: SweepControl) -> None:
    if target != "local":
        check_reachable(target)
    with captured_stderr() as said:  # Ray's C++ client warns once a second while it retries
        try:
            if target == "local":
                start_embedded(control)
            else:
                connect(target, control)
            return
        except ConnectionError as err:
            failed = err
        except ValueError as err:  # a malformed address, or ray:// without Ray Client installed
            if target == "local" or isinstance(err, ConfigError):
                raise
            why = ("not a Ray address; valid forms: HOST:PORT (the head's GCS port, 6379), auto, "
                   "ray://HOST:10001 (needs `pip install 'ray[client]'`)") if "Invalid address" in str(err) else str(err)
            raise ConfigError("--address", [f"{shown}: {why}"]) from None
    text = said() + str(failed.__cause__ or failed)
    why = ("the cluster refused this driver's token" if "Unauthenticated" in text or "InvalidAuthToken" in text
           else "no Ray cluster answered there")
    raise ConfigError("--address", [
        f"{shown}: cannot connect to the Ray cluster: {why}; a cluster with token authentication needs "
        "RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH "
        "(for cluster/local.sh: eval \"$(bash cluster/local.sh env)\")"]) from None


def check_resources(study: Study) -> None:
    """A pack that asks for more than the whole cluster has would wait for ever: refuse it."""

    have = ray.cluster_resources()
    res = study.spec.resources
    for key, need in (("cpu", res.cpu), ("gpu", res.gpu)):
        if need > have.get(key.upper(), 0.0):
            raise ConfigError(study.source, [
                f"resources.{key}: a trial needs {need:g} {key.upper()} but the Ray cluster has "
                f"{have.get(key.upper(), 0.0):g}; lower it or pass --address of a larger cluster"])


def machine_kind() -> str:
    """What produced the results, for the report's provenance: the driver's machine and the Ray
    cluster's resources (the trials' own rows name the device each ran on)."""

    have = ray.cluster_resources() if ray.is_initialized() else {}
    cluster = f"Ray cluster of {len(ray.nodes()) if have else 0} node(s): {have.get('CPU', 0):g} CPUs, {have.get('GPU', 0):g} GPUs"
    gpu = versions_gpu() if have.get("GPU") else ""
    return f"driver {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; {cluster}" + (f" ({gpu})" if gpu else "")


def versions_gpu() -> str:
    try:
        return ", ".join(sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}))
    except (ImportError, RuntimeError):
        return ""


def pack_trainable(config: dict, packs: list[PackSpec]) -> None:
    """Ray Tune function trainable: runs pack number config["pack"] (the packs travel once,
    through Ray's object store) and reports each evaluation round. A store that cannot be
    written is fatal to the whole sweep: reported, not retried."""

    spec = packs[config["pack"]]
    plugins.ensure(spec.plugins)  # before any name a plugin registers is looked up
    if spec.space:
        spec = spec.with_values(config)
    try:
        for summary in PackRunner(Store.open(spec.results), spec).run():
            tune.report(summary)
    except StoreError as err:
        tune.report({"fatal": str(err), "step": 0, "objective": float("nan")})


def trainable_for(study: Study, packs: list[PackSpec]):
    res = study.spec.resources
    return tune.with_resources(tune.with_parameters(pack_trainable, packs=packs), {"cpu": res.cpu, "gpu": res.gpu})


def run_config(name: str, store: Store, callbacks: list, stopper=None):
    """Ray's side of every Tuner here: its files beside the results (result.json and
    progress.csv, so a ResultGrid of the sweep is usable), retries, no tables."""

    # Ray's own files (result.json, progress.csv) sit beside local results; with results on
    # object storage they stay on the driver's disk: nothing of ours depends on them.
    ray_dir = store.path("ray") if store.is_local else str(Path("~/ray_results/vi-sweeps").expanduser())
    return tune.RunConfig(
        name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=ray_dir, stop=stopper,
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES), verbose=0,
        callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback()])


def tune_callbacks(tracking, study, packs: list, results: str) -> list:
    """The Ray Tune callbacks of `tracking` (vi_sweeps.track.callbacks), none without tracking.
    That module loads Ray's MLflow and W&B integrations (1.3 s of every `vi-sweep run`, measured
    with py-spy), so it is imported only when a sweep tracks."""
    if tracking is None:
        return []
    from vi_sweeps.track.callbacks import callbacks

    return callbacks(tracking, study, packs, results)
