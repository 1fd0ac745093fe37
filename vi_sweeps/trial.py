"""One trial: one model trained on one data set under one config, in plain PyTorch.

`Trial` owns every piece of state (networks, optimisers, the data/noise generator, the rows so
far), so a checkpoint is `state_dict()` and a resumed trial continues bit for bit. Evaluation
draws from its own generator seeded by (seed, step), so evaluating never perturbs training.
`evaluations()` is the whole loop: it yields one row per evaluation and stops after a row that
diverged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch

from analysis.schema import ROW_COLUMNS
from vi_sweeps.collapse import is_collapsed
from vi_sweeps.config import TrialConfig
from vi_sweeps.datasets import build_dataset
from vi_sweeps.metrics import METRIC_KEYS, build_evaluator
from vi_sweeps.objectives import build_objective


def select_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class Trial:
    def __init__(self, cfg: TrialConfig):
        self.cfg = cfg
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.device = select_device(cfg.device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.data = build_dataset(cfg)
        self.model = build_objective(cfg, self.data, self.device, self.gen)
        self.evaluator = build_evaluator(cfg, self.data)
        self.step, self.wall, self.rows = 0, 0.0, []
        self.samples: torch.Tensor | None = None

    def evaluate(self, losses: dict[str, float]) -> dict:
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
        samples = self.model.sample(self.cfg.eval_samples, gen)
        diverged = not all(math.isfinite(v) for v in losses.values()) or not bool(torch.isfinite(samples).all())
        metrics = dict.fromkeys(METRIC_KEYS, math.nan)
        if not diverged:
            metrics.update(self.evaluator(samples))
        self.samples = samples
        row = dict.fromkeys(ROW_COLUMNS, math.nan)
        row.update(losses)
        row.update(metrics)
        row.update(step=self.step, wall_s=self.wall, diverged=diverged,
                   collapsed=is_collapsed(self.cfg.collapse_rule, metrics, diverged))
        return row

    def state_dict(self) -> dict:
        return {"step": self.step, "wall": self.wall, "rows": list(self.rows),
                "gen": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
                "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.wall, self.rows = state["step"], state["wall"], list(state["rows"])
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        self.model.load_state_dict(state["model"])

    @property
    def done(self) -> bool:
        return self.step >= self.cfg.iterations or bool(self.rows and self.rows[-1]["diverged"])


def evaluations(trial: Trial) -> Iterator[dict]:
    """Train to the end, yielding a row at every evaluation; a non-finite loss evaluates at
    once, and the diverged row is the last."""
    cfg = trial.cfg
    while not trial.done:
        start = time.perf_counter()
        losses = trial.model.train_iteration()
        trial.step += 1
        values = {k: float(v) for k, v in losses.items()}
        finite = all(math.isfinite(v) for v in values.values())
        due = trial.step % cfg.eval_every == 0 or trial.step == cfg.iterations or not finite
        row = trial.evaluate(values) if due else None
        trial.wall += time.perf_counter() - start
        if row is not None:
            row["wall_s"] = trial.wall
            trial.rows.append(row)
            yield row
