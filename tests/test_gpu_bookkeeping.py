"""Fractional GPUs are Ray bookkeeping: on a machine that declares one GPU, two trials of gpu 0.5
share it and run, on the GPU where torch sees one and on the CPU where it does not."""

import pandas as pd
import pytest
import ray
import torch

from vi_contract import schema
from vi_sweeps.engine.trial import select_device
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.driver import run_sweep

pytestmark = pytest.mark.ray

STUDY = """
name: half-gpus
datasets: [ring8]
base: {hidden: 16, eval_samples: 300, device: auto}
grid:
  lam: [0.0, 5.0]
budget: {iterations: 20, eval_every: 10}
resources: {cpu: 1, gpu: 0.5}
"""


@pytest.mark.slow
def test_fractional_gpu_trials_share_a_declared_gpu(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        run_sweep(load_study(path), str(tmp_path / "r"), show_progress=False)
    finally:
        ray.shutdown()
    trials = pd.read_parquet(tmp_path / "r" / schema.TRIALS_FILE)
    assert len(trials) == 2 and (trials["status"] == "finished").all()


def test_auto_is_the_gpu_where_torch_sees_one_and_the_cpu_where_it_does_not(monkeypatch):
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")  # this machine, either way
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto").type == "cuda"
    assert select_device("cpu").type == "cpu"  # a named device is kept as named


@pytest.mark.slow
def test_more_gpu_than_the_cluster_has_is_refused(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.replace("gpu: 0.5", "gpu: 2"))
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with pytest.raises(ConfigError, match="resources.gpu: a trial needs 2 GPU but the Ray cluster has 1"):
            run_sweep(load_study(path), str(tmp_path / "r"), show_progress=False)
    finally:
        ray.shutdown()
