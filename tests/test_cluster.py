"""A multi-node Ray cluster on this machine (ray.cluster_utils.Cluster): a worker node dies
mid-sweep and every trial still finishes, retried from its checkpoint on the head."""

import threading
import time

import pandas as pd
import pytest
import ray
from ray.cluster_utils import Cluster

from analysis import schema
from vi_sweeps.storage import Store
from vi_sweeps.study import load_study
from vi_sweeps.sweep import run_sweep

pytestmark = pytest.mark.ray

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
