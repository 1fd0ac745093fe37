"""Trials in plain PyTorch: the seeds of one condition trained together as one pack.

`Trial` owns every piece of state of its K members (packed networks and optimisers, each
member's data/noise generator and rows), so a member's checkpoint is `member_state(k)` and a
resumed pack continues bit for bit on a CPU (on CUDA, cudnn.benchmark may pick other kernels
after a resume: the same computation, not the same last bits). K = 1 is a single trial; member k of a pack computes what
the single trial of its seed computes (vi_sweeps.gan.packing). Evaluation draws from a generator
seeded by (seed, step), so evaluating never perturbs training. `evaluations()` is the whole
loop: it trains to the end and yields, at each evaluation, one row per member evaluated; a
member whose loss stops being finite is evaluated at once, marked diverged and frozen, and the
others go on.
"""

from __future__ import annotations

import io
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vi_contract.rules import is_collapsed
from vi_sweeps.data.datasets import build_dataset
from vi_sweeps.gan.families import OBJECTIVES, build_objective
from vi_sweeps.metrics.evaluation import build_evaluator, evaluation
from vi_sweeps.study.config import TrialConfig

SNAPSHOT_POINTS = 1000  # 2-D sets: the first points of each evaluation's samples
SNAPSHOT_GRID = 8  # image sets: an 8 x 8 grid of the first samples


def select_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_name() -> str | None:
    """The CPU's model and the vector kernels torch dispatches to on it, e.g. "AMD EPYC
    (AVX512)": float32 results differ in their last bits between CPU models (measured: a
    committed bn_ablation trial's loss/d at step 500 moved by 0.11 on another machine, the
    same code and torch), and GAN training amplifies them; None where it cannot be read."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor()
    if not model:
        return None
    return f"{model} ({torch.backends.cpu.get_cpu_capability()})"


def device_provenance(device: torch.device) -> dict[str, str]:
    """What every evaluation row records of where it ran: the resolved device (never `auto`)
    and its name: the GPU's, or on a CPU its model and vector kernels (cpu_name)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return {"device_resolved": f"cuda:{index}", "device_name": torch.cuda.get_device_name(index)}
    return {"device_resolved": str(device), "device_name": cpu_name() if device.type == "cpu" else None}


def set_precision(precision: str, device: torch.device) -> None:
    """tf32 lets CUDA matmuls and convolutions use TensorFloat-32; bf16 is autocast around the
    training step (see evaluations); fp32 is exact float32 everywhere. Set per trial, since a
    Ray worker process runs trials one after another."""
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def declared_keys(cfg: TrialConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(loss keys, metric keys) the trial's objective and evaluator declare."""
    return OBJECTIVES.meta(cfg.model).losses, evaluation(cfg.dataset).metrics


def check_declared(values: dict, declared: tuple[str, ...], who: str) -> None:
    undeclared = sorted(set(values) - set(declared))
    if undeclared:
        raise KeyError(f"{who} reported undeclared key(s) {', '.join(undeclared)}; declared: {', '.join(declared)}")


def snapshot(samples: torch.Tensor) -> tuple[str, bytes]:
    """A small picture of one member's samples: (file suffix, bytes). 2-D: the first points
    as float16 .npy; images: the first 64 as an 8 x 8 PNG grid."""
    if samples.dim() == 2:
        buf = io.BytesIO()
        np.save(buf, samples[:SNAPSHOT_POINTS].cpu().numpy().astype(np.float16))
        return ".npy", buf.getvalue()

    n = SNAPSHOT_GRID
    imgs = samples[: n * n].clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu()
    c, h, w = imgs.shape[1:]
    imgs = torch.cat([imgs, torch.zeros(n * n - len(imgs), c, h, w, dtype=torch.uint8)])
    grid = imgs.view(n, n, c, h, w).permute(0, 3, 1, 4, 2).reshape(n * h, n * w, c).numpy()
    buf = io.BytesIO()
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(buf, format="PNG")
    return ".png", buf.getvalue()


@dataclass
class Evaluation:
    member: int
    row: dict  # empty when the evaluation failed
    snapshot: tuple[str, bytes]
    error: str = ""  # why this member's evaluation failed: it is stopped, its pack goes on


class Trial:
    def __init__(self, cfgs: TrialConfig | list[TrialConfig], keep_samples: bool = False, store=None):
        trials = [cfgs] if isinstance(cfgs, TrialConfig) else list(cfgs)
        base = trials[0].model_dump(exclude={"seed", "pack_index"})
        if any(c.model_dump(exclude={"seed", "pack_index"}) != base for c in trials[1:]):
            raise ValueError("a pack holds trials that differ in their seed only")
        places = [c.pack_index for c in trials]
        if len(set(places)) != len(places):
            raise ValueError(f"two trials of one pack at the same pack_index: {sorted(places)}")
        # Each trial trains at its own place of a pack of its pack_size, whatever else runs:
        # packed arithmetic rounds differently for each size and place, and a member's numbers
        # do not depend on the other members'. Places without a trial (members that finished, or
        # that resume from another step) hold stand-ins, frozen from the start, never evaluated.
        size = trials[0].pack_size
        self.places = places
        cfgs = [trials[0]] * size
        for c in trials:
            cfgs[c.pack_index] = c
        self.cfgs, self.cfg = cfgs, trials[0]
        torch.set_num_threads(self.cfg.threads)
        self.device = select_device(self.cfg.device)
        self.provenance = device_provenance(self.device)
        set_precision(self.cfg.precision, self.device)
        self.gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]
        self.data = build_dataset(self.cfg)
        self.model = build_objective(cfgs, self.data, self.device, self.gens)
        self.evaluator = build_evaluator(self.cfg, self.data, self.device, store)
        self.eval_samples = max(self.cfg.eval_samples, getattr(self.evaluator, "n_samples", 0))
        self.loss_keys, self.metric_keys = declared_keys(self.cfg)
        self.step, self.wall = 0, 0.0
        self.rows: list[list[dict]] = [[] for _ in cfgs]
        self.stopped = [k not in places for k in range(size)]
        for k in range(size):
            if self.stopped[k]:
                self.model.freeze(k)
        self.keep_samples = keep_samples
        self.samples: torch.Tensor | None = None  # the last evaluation's, on the CPU, with keep_samples

    def __len__(self) -> int:
        return len(self.cfgs)

    def evaluate(self, members: list[int], losses: dict[str, list[float]]) -> list[Evaluation]:
        gens = [torch.Generator().manual_seed(c.seed * 1_000_003 + self.step) for c in self.cfgs]
        samples = self.model.sample(self.eval_samples, gens)
        if self.keep_samples:
            self.samples = samples[self.places].cpu()  # the trials', in the order given
        out = []
        for k in members:
            member_losses = {key: values[k] for key, values in losses.items()}
            diverged = not all(math.isfinite(v) for v in member_losses.values()) or not bool(torch.isfinite(samples[k]).all())
            metrics = dict.fromkeys(self.metric_keys, math.nan)
            if not diverged:
                try:
                    values = self.evaluator(samples[k])
                except Exception as err:  # noqa: BLE001 - one member's failure is its own, not its pack's
                    self.stopped[k] = True
                    self.model.freeze(k)
                    out.append(Evaluation(k, {}, snapshot(samples[k]), f"{type(err).__name__}: {err}"))
                    continue
                check_declared(values, self.metric_keys, f"evaluator of {self.cfg.dataset}")
                metrics.update(values)
            else:
                self.stopped[k] = True
                self.model.freeze(k)
            row = {"step": self.step, "wall_s": self.wall, **member_losses, **metrics, "diverged": diverged,
                   "collapsed": is_collapsed(self.cfg.collapse_rule, metrics, diverged), **self.provenance}
            self.rows[k].append(row)
            out.append(Evaluation(k, row, snapshot(samples[k])))
        return out

    def compile_note(self) -> str | None:
        """A compiled pack's line when its compile cannot repay itself, "" when it can or the
        pack is eager, None while undecided (CompiledGAN.note)."""
        compiled = getattr(self.model, "compiled", None)
        return compiled.note(self.cfg.iterations) if compiled is not None else ""

    def member_done(self, k: int) -> bool:
        return self.stopped[k] or self.step >= self.cfg.iterations

    @property
    def done(self) -> bool:
        return all(self.member_done(k) for k in range(len(self)))

    def member_state(self, k: int) -> dict:
        """Member k's checkpoint (only members still training are checkpointed)."""
        rows = [{str.__str__(key): value for key, value in row.items()} for row in self.rows[k]]  # plain str keys
        return {"step": self.step, "wall": self.wall, "rows": rows,
                "gen": self.gens[k].get_state(), "model": self.model.member_state(k)}

    def trial_rows(self, i: int) -> list[dict]:
        """The rows of the i-th trial given (at its place in the pack)."""
        return self.rows[self.places[i]]

    def load_member_states(self, states: list[dict]) -> None:
        """The trials' checkpoints, in the order given (the stand-ins keep their frozen state)."""
        steps = {s["step"] for s in states}
        if len(steps) != 1:
            raise ValueError(f"a pack resumes members at one step, not {sorted(steps)}")
        if len(states) != len(self.places):
            raise ValueError(f"{len(states)} checkpoints for a pack of {len(self.places)} trials")
        self.step, self.wall = states[0]["step"], max(s["wall"] for s in states)
        by_place = dict(zip(self.places, states, strict=True))
        states = [by_place[k] if k in by_place else self.member_state(k) for k in range(len(self))]
        self.rows = [list(s["rows"]) for s in states]
        for gen, s in zip(self.gens, states, strict=True):
            gen.set_state(s["gen"])
        self.model.load_member_states([s["model"] for s in states])


def evaluations(trial: Trial) -> Iterator[list[Evaluation]]:
    """Train to the end, yielding the evaluations of each round; a member whose loss is not
    finite is evaluated at once (its diverged row is its last) while the others go on."""
    cfg = trial.cfg
    autocast = torch.autocast(trial.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    scheduled = set(cfg.evaluation_steps())
    while not trial.done:
        start = time.perf_counter()
        trial.model.iteration = trial.step
        with autocast:
            losses = trial.model.train_iteration()
        trial.step += 1
        values = {key: v.tolist() for key, v in losses.items()}
        check_declared(values, trial.loss_keys, f"model {cfg.model}")
        live = [k for k in range(len(trial)) if not trial.stopped[k]]
        broken = [k for k in live if not all(math.isfinite(v[k]) for v in values.values())]
        due = trial.step in scheduled
        evals = trial.evaluate(live if due else broken, values) if (due or broken) else []
        trial.wall += time.perf_counter() - start
        for e in evals:
            if e.row:
                e.row["wall_s"] = trial.wall
        if evals:
            yield evals
