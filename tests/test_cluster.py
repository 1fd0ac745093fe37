"""A multi-node Ray cluster on this machine (ray.cluster_utils.Cluster): a worker node dies
mid-sweep and every trial still finishes, retried from its checkpoint on the head."""

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

from tests.conftest import ROOT
from vi_contract import schema
from vi_contract.store import Store
from vi_contract.tables import finished_ids
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.driver import run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STUDY = """
name: two-nodes
datasets: [ring8]
base: {hidden: 64, eval_samples: 500}
grid:
  lam: [0.0, 5.0]
seeds: 2
budget: {iterations: 600, eval_every: 100}
resources: {cpu: 1}
"""


def test_a_lost_worker_node_does_not_lose_a_trial(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    study = load_study(path)
    results = tmp_path / "results"
    store = Store.open(str(results))
    killed = threading.Event()

    def kill_worker_once_trials_checkpoint():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(store.listdir("checkpoints")) < 2:
            time.sleep(0.2)
        cluster.remove_node(worker, allow_graceful=False)
        killed.set()

    killer = threading.Thread(target=kill_worker_once_trials_checkpoint, daemon=True)
    killer.start()
    try:
        run_sweep(study, str(results), address=cluster.address, show_progress=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed.is_set()
    trials = pd.read_parquet(results / schema.TRIALS_FILE)
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert (trials["status"] == "finished").all() and (trials["steps_done"] == 600).all()
    metrics = pd.read_parquet(results / schema.METRICS_FILE)
    assert (metrics.groupby("trial_id")["step"].apply(list) == [list(range(100, 601, 100))] * 4).all()


# The cloud and Kubernetes configs (cluster/*.yaml, cluster/kuberay/) are checked with Ray's own
# autoscaler and KubeRay's needs in tests/test_cluster_configs.py.


# ----- a real multi-node cluster with `ray start` and token auth, as cluster/local.sh makes it

def _local_sh(args, env):
    return subprocess.run(["bash", str(ROOT / "cluster/local.sh"), *args], env=env, capture_output=True, text=True,
                          timeout=180)


def _cluster_pids(folder):
    out = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fds = " ".join(os.readlink(f) for f in (p / "fd").iterdir())
        except OSError:
            continue
        if f"{folder}/tmp/" in cmd or f"{folder}/tmp/" in fds:
            out.append(int(p.name))
    return out


def _raylets(folder):
    found = []
    for pid in _cluster_pids(folder):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        except OSError:
            continue
        if cmd.endswith("/raylet"):
            found.append((started, pid))
    return [pid for _, pid in sorted(found)]


MULTI = """
name: multi-node
datasets: [ring8]
base: {hidden: 64, eval_samples: 500}
grid:
  lam: [0.0, 5.0]
seeds: 4
pack_seeds: 2
budget: {iterations: 600, eval_every: 100}
resources: {cpu: 1}
"""


def test_a_token_cluster_of_three_nodes_loses_a_worker_and_every_trial_lands_once(tmp_path):
    import shutil
    import tempfile

    short = Path(tempfile.mkdtemp(prefix="vc", dir="/tmp"))  # Ray's socket paths must stay under 108 bytes
    folder, other = short / "a", short / "b"
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, "VI_SWEEPS_CLUSTER_DIR": str(folder), "PORT": "6395", "RAY": ray_bin}
    bystander = {**env, "VI_SWEEPS_CLUSTER_DIR": str(other), "PORT": "6396"}
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(key, None)
        bystander.pop(key, None)
    try:
        r = _local_sh(["start", "2"], env)
        assert r.returncode == 0, r.stderr[-2000:]
        assert _local_sh(["start", "0"], bystander).returncode == 0  # another user's cluster on the same machine
        assert stat.S_IMODE((folder / "auth_token").stat().st_mode) == 0o600
        assert len(_raylets(folder)) == 3
        study = tmp_path / "multi.yaml"
        study.write_text(MULTI)
        results = tmp_path / "results"
        cmd = [sys.executable, "-m", "vi_sweeps.cli", "run", str(study), "--results", str(results), "--no-report",
               "--address", "127.0.0.1:6395"]
        refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)  # no token
        assert refused.returncode == 2 and "the cluster refused this driver's token" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and not results.exists()
        authed = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(folder / "auth_token")}
        driver = subprocess.Popen(cmd, env=authed, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        store = Store.open(str(results))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(store.listdir("checkpoints")) < 2:
            time.sleep(0.3)
        # mid-sweep: packs are running (their checkpoints are there) and not every trial has finished
        assert len(store.listdir("checkpoints")) >= 2 and len(finished_ids(store)) < 8
        os.kill(_raylets(folder)[-1], signal.SIGKILL)  # the youngest raylet: a worker node dies mid-sweep
        out, err = driver.communicate(timeout=400)
        assert driver.returncode == 0, err[-3000:]
        trials = pd.read_parquet(results / schema.TRIALS_FILE)
        assert len(trials) == 8 and trials["trial_id"].is_unique and (trials["status"] == "finished").all()
        metrics = pd.read_parquet(results / schema.METRICS_FILE)
        assert (metrics.groupby("trial_id")["step"].apply(list) == [list(range(100, 601, 100))] * 8).all()
        stopped = _local_sh(["stop"], env)
        assert stopped.returncode == 0, stopped.stderr
        assert _cluster_pids(folder) == []
        assert _raylets(other), "stop ended another cluster's processes"
    finally:
        _local_sh(["stop"], env)
        _local_sh(["stop"], bystander)
        shutil.rmtree(short, ignore_errors=True)
