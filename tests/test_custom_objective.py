"""Adding a model family is one class and one registration: a loss key it declares reaches the
trial files, metrics.parquet, the contract and the report without any other change."""

import json

import pandas as pd
import torch

from analysis import schema
from analysis.report import build_report
from vi_sweeps.keys import Key
from vi_sweeps.objectives import GAN, LOSS_D, LOSS_G, LOSS_REG, OBJECTIVES
from vi_sweeps.results import Consolidation
from vi_sweeps.runner import PackRunner
from vi_sweeps.study import load_study_text
from vi_sweeps.sweep import make_packs, prepare_store

LOSS_SPREAD = Key("loss/spread", "spread of the generator's samples")


class SpreadGAN(GAN):
    """The GAN, also reporting the standard deviation of its last fake batch."""

    def train_iteration(self) -> dict[str, torch.Tensor]:
        out = super().train_iteration()
        with torch.no_grad():
            fake = self.modules["G"](self.noise(self.cfg.batch_size))
        return {**out, LOSS_SPREAD: fake.flatten(1).std(1)}


STUDY = """
name: custom
models: [gan-spread]
datasets: [ring8]
base: {hidden: 16, mlp_layers: 2, batch_size: 16, eval_samples: 200}
grid: {lam: [0.0, 5.0]}
seeds: 2
pack_seeds: 2
budget: {iterations: 20, eval_every: 10}
"""


def test_a_registered_objective_writes_its_new_loss_key_through_to_the_report(tmp_path, monkeypatch):
    # registered for this test only (a registry entry as OBJECTIVES.register makes it)
    monkeypatch.setitem(OBJECTIVES._entries, "gan-spread", (SpreadGAN, {"losses": (LOSS_D, LOSS_G, LOSS_REG, LOSS_SPREAD)}))
    study = load_study_text(STUDY, "custom.yaml")
    results = str(tmp_path / "r")
    store = prepare_store(study, results)
    for pack in make_packs(study, store.uri, {t.trial_id for t in study.trials}):
        list(PackRunner(store, pack).run())
    Consolidation(store).write()
    metrics = pd.read_parquet(tmp_path / "r" / schema.METRICS_FILE)
    assert len(metrics) == 8 and metrics["loss/spread"].notna().all() and (metrics["loss/spread"] > 0).all()
    keys = json.loads((tmp_path / "r" / schema.CONTRACT_FILE).read_text())["keys"]
    assert keys["loss/spread"]["label"] == "spread of the generator's samples"
    build_report([results], str(tmp_path / "report"))
    svg = (tmp_path / "report" / "loss_curves.svg").read_text()
    assert "spread of the generator" in svg  # its own panel, labelled by its declaration
