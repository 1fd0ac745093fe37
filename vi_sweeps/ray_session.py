"""Ray's side of a sweep: starting an embedded Ray or joining a cluster (its logs into
RESULTS/ray.log, an unreachable address failing at once), checking that the cluster can hold a
pack, what machine ran the results, and the Ray Tune pieces every Tuner here shares (the
trainable of a pack with its resources, the RunConfig with its retries)."""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import ray
import torch
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from vi_contract.store import Store, StoreError
from vi_sweeps import plugins
from vi_sweeps.config import ConfigError
from vi_sweeps.expansion import Study
from vi_sweeps.runner import PackRunner, PackSpec

MAX_FAILURES = 2


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
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ConfigError("--address", [f"{address}: no Ray cluster answered there ({err.strerror or err})"]) from None


@contextmanager
def ray_session(address: str | None):
    """Connects to (or starts) Ray; shuts down only a session it started itself."""

    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # SweepControl handles Ctrl-C
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # run_config adds JSON and CSV, not TensorBoardX
    quiet_ray_logs(logging.NullHandler())
    started = not ray.is_initialized()
    if started:
        if address:
            check_reachable(address)
            os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "10")  # a refused token fails in ~10 s
        with captured_stderr() as said:  # Ray's C++ client warns once a second while it retries
            try:
                ray.init(address=address, log_to_driver=False, include_dashboard=False,
                         configure_logging=False, logging_level=logging.WARNING,
                         runtime_env=plugins.runtime_env())  # file plugins reach every worker
                failed = None
            except ConnectionError as err:
                failed = err
            except ValueError as err:  # a malformed address, or ray:// without Ray Client installed
                if not address:
                    raise
                why = ("not a Ray address; valid forms: HOST:PORT (the head's GCS port, 6379), auto, "
                       "ray://HOST:10001 (needs `pip install 'ray[client]'`)") if "Invalid address" in str(err) else str(err)
                raise ConfigError("--address", [f"{address}: {why}"]) from None
        if failed is not None:
            text = said() + str(failed.__cause__ or failed)
            why = ("the cluster refused this driver's token" if "Unauthenticated" in text or "InvalidAuthToken" in text
                   else "no Ray cluster answered there")
            raise ConfigError("--address", [
                f"{address}: cannot connect to the Ray cluster: {why}; a cluster with token authentication needs "
                "RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH "
                "(for cluster/local.sh: eval \"$(bash cluster/local.sh env)\")"]) from None
    quiet_ray_logs(logging.NullHandler())
    try:
        yield
    finally:
        if started:
            ray.shutdown()


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

