"""One compiled training step per pack (`compile: true`): the GAN iteration as one graph.

Eager PyTorch spends most of a small pack's iteration outside arithmetic: ~2,000 aten ops a
ring8 iteration, each through Python, the dispatcher, the autograd engine and the optimiser's
wrappers. Compiling pieces does not repay (issue 40's measurements); compiling the whole
iteration does: D's updates, the anchors, G's updates, the penalties' input gradients
(`torch.autograd.grad` traced into the graph) and Adam, written out here, as one graph.

What stays outside the graph, in eager order per member, so that each member keeps its own
stream of random numbers exactly as in the eager step: the data batches and the noise (and the
interpolation weights of gp), drawn before the graph runs. What enters it as tensors, so that
nothing recompiles from one iteration to the next: the `alive` mask (a member frozen later is
one more False), Adam's per-update step sizes and bias corrections and the ema decay, as
float64 scalars computed in Python. The step count stays a Python int (an in-place update of a
0-d float64 tensor inside a compiled graph is dropped in torch 2.13, and a bias correction
computed in the graph would be float32: tests/test_compiled.py pins both).

The optimiser state is torch.optim.Adam's own (`exp_avg`, `exp_avg_sq`, `step` per parameter),
so freezing a member, a member's checkpoint and a resume read and write it unchanged; after a
resume the step is built again from the loaded state. Eager stays the reference path: the
compiled step agrees with it to rounding after one iteration and then, as any last-bit change
in a GAN, goes its own way, so `compile` is part of a trial's identity, as `precision` is. On a
GPU the graph is replayed as a CUDA graph (mode "reduce-overhead").
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import torch

from vi_sweeps.core.paths import cache_dir
from vi_sweeps.core.registry import resolved
from vi_sweeps.gan import stabilisers
from vi_sweeps.gan.declared import GAN_LOSSES

BEST_SPEEDUP = 3.09  # the largest eager / compiled ratio measured (benchmarks/RESULTS.md: ring8 K = 1, BN)
NOTE_PREFIX = "compile:"  # the driver says a compile note once a sweep (vi_sweeps.sweep.control)


def cache_root() -> Path:
    """The node's inductor cache: under the node's cache directory (VI_SWEEPS_CACHE), one per
    torch version, shared by the node's workers, so a study compiles each pack shape once."""
    return cache_dir() / "inductor" / torch.__version__


def configure() -> None:
    """Settings every compiled step needs, set before the first compile of the process."""
    # always the node's (torch writes its own default into the environment at its first compile,
    # and a worker inherits its parent's environment)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_root())
    torch._dynamo.config.trace_autograd_ops = True  # autograd.grad inside the graph (penalties, updates)
    # packs of other shapes or settings in one worker each compile once; past the limit a
    # fullgraph compile raises (FailOnRecompileLimitHit), failing the trial
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 1024)
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 4096)


class CompiledGAN:
    """The GAN family's iteration as one compiled graph; `step()` runs one iteration and returns
    the family's losses (as GAN.train_iteration)."""

    def __init__(self, family):
        configure()
        self.fam, c, dev = family, family.cfg, family.device
        if dev.type == "cpu" and not any(shutil.which(x) for x in (os.environ.get("CXX", ""), "g++", "clang++") if x):
            raise RuntimeError("compile: true on a CPU needs a C++ compiler on the node (g++ or clang++, or CXX); "
                               "none found: install one or set compile: false")
        # the loss's and the penalties' functions imported now: a graph cannot import a module
        loss = GAN_LOSSES.meta(c.loss)
        for fn in (loss.d, loss.g, *(f for _, s in family.d_penalties + family.g_penalties for f in (s.d_penalty, s.g_penalty))):
            resolved(fn)
        self.updates = {"D": c.d_steps, "G": c.g_steps * c.g_repeats}
        self.gp = any(name == "gp" for name, _ in family.d_penalties)  # the one penalty that draws
        self.params = {name: [p for group in opt.param_groups for p in group["params"]]
                       for name, opt in family.optims.items()}
        self.hyper = {name: (opt.param_groups[0]["lr"], *opt.param_groups[0]["betas"], opt.param_groups[0]["eps"])
                      for name, opt in family.optims.items()}
        self.moments, self.steps, self.t = {}, {}, {}
        for name, opt in family.optims.items():
            for p in self.params[name]:
                if not opt.state[p]:  # as fused Adam lays it out at its first step
                    opt.state[p] = {"step": torch.tensor(0.0, device=dev), "exp_avg": torch.zeros_like(p),
                                    "exp_avg_sq": torch.zeros_like(p)}
            states = [opt.state[p] for p in self.params[name]]
            self.moments[name] = [(s["exp_avg"], s["exp_avg_sq"]) for s in states]
            self.steps[name] = [s["step"] for s in states]
            self.t[name] = int(states[0]["step"])  # one read at build; then counted here
        # the per-update scalars, filled before each run (persistent: a CUDA graph reads fixed addresses)
        self.scalars = {name: torch.zeros(n, 2, dtype=torch.float64, device=dev) for name, n in self.updates.items()}
        self.decay = torch.zeros((), dtype=torch.float64, device=dev)
        self.probes: dict[tuple, torch.Tensor] = {}
        # the loss weights as tensors, so packs that differ in them share one graph (a weight
        # read as a Python number would be a constant of the graph: a full compile per value)
        family.weights = {k: torch.tensor(float(getattr(c, k)), device=dev) for k in family.WEIGHTS}
        for t in [*self.scalars.values(), self.decay, family.alive, *family.weights.values(),
                  *(m for pairs in self.moments.values() for pair in pairs for m in pair)]:
            self.static(t)
        options = {"mode": "reduce-overhead"} if dev.type == "cuda" else {"options": {"cpp_wrapper": True}}
        self.graph = torch.compile(self.core, fullgraph=True, dynamic=False, **options)
        self.calls: list[float] = []  # when the first steps began (perf_counter), for note()
        self.first_s = 0.0  # the first call's seconds: the compile (or a cache load) and one iteration
        self.start = family.iteration  # the iteration it starts at (after a resume, the checkpoint's)

    @staticmethod
    def static(t: torch.Tensor) -> torch.Tensor:
        """A tensor the graph updates in place or reads at a fixed address: a CUDA graph replays
        only when every such input is marked (parameters and buffers are by torch itself)."""
        torch._dynamo.mark_static_address(t, guard=False)
        return t

    def probe(self, like: torch.Tensor) -> torch.Tensor:
        """A zero leaf that requires grad, of `like`'s shape: `like + probe` is `like` with a
        gradient to take (a graph cannot create a leaf that requires grad, nor flip the flag)."""
        key = (tuple(like.shape), like.dtype)
        if key not in self.probes:
            self.probes[key] = self.static(torch.zeros(like.shape, dtype=like.dtype, device=like.device,
                                                       requires_grad=True))
        return self.probes[key]

    def draws(self) -> tuple[list, list, list, list]:
        """The iteration's random numbers, in the eager step's order per member's generator."""
        fam, c = self.fam, self.fam.cfg
        xs, zs, us = [], [], []
        for _ in range(c.d_steps):
            xs.append(fam.real(c.batch_size))
            zs.append(fam.noise(c.batch_size))
            if self.gp:
                us.append(stabilisers.uniform_draws(fam.gens, xs[-1]))
        return xs, zs, us, [fam.noise(c.batch_size) for _ in range(c.g_steps)]

    def fill(self) -> None:
        """Step sizes and bias corrections of this iteration's updates, in float64 (Python)."""
        for name, n in self.updates.items():
            lr, b1, b2, _ = self.hyper[name]
            rows = []
            for t in range(self.t[name] + 1, self.t[name] + n + 1):
                rows.append((lr / (1 - b1**t), (1 - b2**t) ** 0.5))
            self.scalars[name].copy_(torch.tensor(rows, dtype=torch.float64))
        c = self.fam.cfg
        self.decay.fill_(c.ema if self.fam.iteration >= c.ema_start else 0.0)

    def step(self) -> dict:
        start = time.perf_counter()
        if len(self.calls) < 12:
            self.calls.append(start)
        xs, zs, us, gzs = self.draws()
        self.fill()
        probes = {"real": self.probe(xs[0]), "fake": self.probe(xs[0])}
        if us:
            probes["gp"] = self.probe(xs[0])
        checked = len(self.calls) <= 2  # a draw from the global generator happens every call: two suffice
        before = stabilisers.global_states(self.fam.device) if checked else None
        out = self.graph(xs, zs, us, gzs, probes, self.fam.alive, self.scalars, self.decay)
        if checked and not stabilisers.same_states(before, stabilisers.global_states(self.fam.device)):
            raise ValueError("compile: a penalty drew from torch's global random generator inside the compiled step, "
                             "which makes a trial's rows depend on its pack; draw nothing in a compilable penalty")
        if len(self.calls) == 1:
            self.first_s = time.perf_counter() - start
        for name, n in self.updates.items():
            self.t[name] += n
            torch._foreach_add_(self.steps[name], float(n))
        return out

    def note(self, iterations: int) -> str | None:
        """A line when this pack's compile cannot repay itself: its compile took longer than
        the time the best speed-up measured (BEST_SPEEDUP) could save over the iterations it
        trains (from its start, a resume's step, to `iterations`); "" when it can, None while
        fewer than three iterations are timed."""
        if len(self.calls) < 3:
            return None
        gaps = sorted(b - a for a, b in zip(self.calls[1:], self.calls[2:], strict=False))  # between later iterations
        per_iteration = gaps[len(gaps) // 2]
        compile_s = max(self.first_s - per_iteration, 0.0)
        iterations -= self.start
        train_s = per_iteration * iterations
        if compile_s <= (BEST_SPEEDUP - 1) * train_s:
            return ""
        return (f"{NOTE_PREFIX} this pack's step took {compile_s:.0f} s to compile and its {iterations:,} iterations "
                f"train in about {train_s:.0f} s compiled; at the best speed-up measured ({BEST_SPEEDUP}x) eager would "
                f"need at most {BEST_SPEEDUP * train_s:.0f} s, so compile: false is faster for packs this short "
                "(a warm cache compiles in seconds)")

    def adam(self, name: str, losses: torch.Tensor, i: int, scalars: dict, alive: torch.Tensor) -> None:
        """One Adam update of player `name` (its i-th this iteration), as torch.optim.Adam's."""
        params = self.params[name]
        grads = torch.autograd.grad(torch.where(alive, losses, 0.0).sum(), params, allow_unused=True)
        _, b1, b2, eps = self.hyper[name]
        step_size, bc2_sqrt = scalars[name][i, 0], scalars[name][i, 1]
        with torch.no_grad():
            for p, g, (m, v) in zip(params, grads, self.moments[name], strict=True):
                if g is None:  # fused Adam would leave it and its step count alone: one counter a player cannot
                    raise ValueError(f"compile: a parameter of {name} gets no gradient from its loss; the compiled "
                                     "step counts one Adam step per player, so every parameter must; set compile: false")
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(step_size * m / (v.sqrt() / bc2_sqrt + eps))

    def core(self, xs, zs, us, gzs, probes, alive, scalars, decay):
        fam, c = self.fam, self.fam.cfg
        G = fam.modules["G"]
        for i in range(c.d_steps):
            with torch.no_grad():
                fake = G(zs[i])
            d_loss = fam.d_loss(xs[i], fake, probes=probes, drawn=us[i] if us else None)
            self.adam("D", d_loss, i, scalars, alive)
        with torch.no_grad():
            anchors = [G(z) for z in gzs]
        i = 0
        for z, anchor in zip(gzs, anchors, strict=True):
            for _ in range(c.g_repeats):
                g_loss, adv, reg = fam.g_loss(z, anchor)
                self.adam("G", g_loss, i, scalars, alive)
                fam.average(decay)
                i += 1
        return d_loss.detach(), adv.detach(), reg.detach()
