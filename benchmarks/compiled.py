"""Eager against compiled (`compile: true`, vi_sweeps.gan.compiled) on whatever device torch
finds (CUDA when there is one, else the CPU, one thread). `python benchmarks/compiled.py [NAME ...]`
or `python benchmarks/bench.py compiled`:

- step:        ms per pack iteration, eager and compiled alternating in one process (best of
               rounds), their ratio, and each against the compute floor (the iteration's FLOPs
               over a large matmul's FLOP/s): ring8 K = 1 and 16, BN and not; Stacked-digits
               DCGAN 16 px, K = 1 and 4.
- stabilisers: each stabiliser's ms per iteration compiled and eager, ring8, a pack of 16, BN.
- compile:     the first iteration's seconds in a fresh process: with an empty inductor cache
               (cold) and again with the cache the first left (warm).
- e2e:         a study through `vi-sweep run` eager and with --set compile=true (cold cache),
               wall seconds including the compile (default studies/quickstart.yaml; --study,
               --only KEY=VALUE as vi-sweep run's).
Figures are ratios measured in one run; run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = {
    "ring8 K=1 bn": (dict(dataset="ring8", bn=True, lam=5.0), 1),
    "ring8 K=1 no-bn": (dict(dataset="ring8", bn=False, lam=5.0), 1),
    "ring8 K=16 bn": (dict(dataset="ring8", bn=True, lam=5.0), 16),
    "ring8 K=16 no-bn": (dict(dataset="ring8", bn=False, lam=5.0), 16),
    "stacked-digits 16px K=1 bn": (dict(dataset="stacked-digits", image_size=16, bn=True, lam=5.0), 1),
    "stacked-digits 16px K=4 bn": (dict(dataset="stacked-digits", image_size=16, bn=True, lam=5.0), 4),
    "ring8 K=16 no-bn 5x5": (dict(dataset="ring8", bn=False, lam=5.0, d_steps=5, g_steps=5), 16),
}
STABILISERS = {"none": {}, "anchor": {"lam": 5.0}, "r1": {"r1": 1.0}, "r2": {"r2": 1.0},
               "wgan-gp": {"loss": "wasserstein", "gp": 10.0}, "sn": {"sn": True}, "ema": {"ema": 0.999},
               "ttur": {"lr_g": 2.5e-4}, "hinge": {"loss": "hinge"}}


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def make(keys: dict, k: int, compile: bool):
    import torch

    from vi_sweeps.engine.trial import Trial
    from vi_sweeps.study.config import TrialConfig

    torch.set_num_threads(1)
    cfgs = [TrialConfig(**keys, seed=s, pack_size=k, pack_index=s, compile=compile, device=device(),
                        iterations=10**6, eval_every=10**6) for s in range(k)]
    return Trial(cfgs)


def timed(trial, iters: int) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        trial.model.train_iteration()
    sync()
    return (time.perf_counter() - start) / iters


def pair(keys: dict, k: int, rounds: int, seconds: float, flops: bool = True) -> tuple[float, float, float]:
    """(eager s/iteration, compiled s/iteration, FLOPs per iteration), best of alternating rounds
    (FLOPs nan without `flops`: torch's FLOP counter's module hooks break R1's input gradient)."""
    from torch.utils.flop_counter import FlopCounterMode

    eager, compiled = make(keys, k, False), make(keys, k, True)
    for trial in (eager, compiled):
        for _ in range(3):  # the compile, and warm-up
            trial.model.train_iteration()
    counted = float("nan")
    if flops:
        with FlopCounterMode(display=False) as counter:
            eager.model.train_iteration()
        counted = float(counter.get_total_flops())
    iters = max(3, int(seconds / timed(eager, 3)))
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, trial in enumerate((eager, compiled)):
            best[i] = min(best[i], timed(trial, iters))
    return best[0], best[1], counted


def bench_step(rounds: int = 5, seconds: float = 1.0) -> None:
    from benchmarks.bench import matmul_flops_per_second

    peak = matmul_flops_per_second() if device() == "cpu" else None
    print(f"step ({device()}, one thread): ms per pack iteration, best of {rounds} alternating rounds")
    for label, (keys, k) in CASES.items():
        e, c, flops = pair(keys, k, rounds, seconds)
        floor = f"  floor {1000 * flops / peak:6.3f} ms: eager {e * peak / flops:4.2f}x, compiled {c * peak / flops:4.2f}x" \
            if peak else ""
        print(f"  {label:28} eager {1000 * e:8.3f}  compiled {1000 * c:8.3f}  x{e / c:4.2f}{floor}", flush=True)


def bench_stabilisers(rounds: int = 3, seconds: float = 1.0) -> None:
    print(f"stabilisers ({device()}): ring8, a pack of 16, BN, ms per iteration; x none, and compiled's speed-up")
    base = None
    for name, option in STABILISERS.items():
        e, c, _ = pair({"dataset": "ring8", "bn": True, **option}, 16, rounds, seconds, flops=False)
        base = base or (e, c)
        print(f"  {name:8} eager {1000 * e:8.3f} ({e / base[0]:4.2f}x none)  compiled {1000 * c:8.3f} "
              f"({c / base[1]:4.2f}x none)  x{e / c:4.2f}", flush=True)


FIRST = """
import json, sys, time, torch
sys.path.insert(0, {root!r})
from benchmarks.compiled import make
trial = make(json.loads({keys!r}), {k}, True)
start = time.perf_counter(); trial.model.train_iteration(); print(time.perf_counter() - start)
"""


def bench_compile(cases: tuple[str, ...] = ("ring8 K=16 bn", "ring8 K=16 no-bn 5x5", "stacked-digits 16px K=4 bn")) -> None:
    print("compile: the first compiled iteration in a fresh process, cold (empty inductor cache) and warm")
    for label in cases:
        keys, k = CASES[label]
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "VI_SWEEPS_CACHE": cache}
            times = []
            for _ in range(2):
                out = subprocess.run([sys.executable, "-c", FIRST.format(root=str(ROOT), keys=json.dumps(keys), k=k)],
                                     env=env, capture_output=True, text=True, check=True)
                times.append(float(out.stdout.split()[-1]))
        print(f"  {label:28} cold {times[0]:6.1f} s  warm {times[1]:6.1f} s", flush=True)


def bench_e2e(study: str = "studies/quickstart.yaml", only: tuple[str, ...] = ()) -> None:
    subset = [a for o in only for a in ("--only", o)]
    print(f"e2e: {study} {' '.join(subset)} through vi-sweep run, eager and compiled (a cold inductor cache), wall s")
    walls = {}
    for label, extra in (("eager", []), ("compiled", ["--set", "compile=true"])):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "VI_SWEEPS_CACHE": str(Path(tmp) / "cache")}
            start = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "vi-sweep"), "run", study, "--results", str(Path(tmp) / "r"),
                            "--address", "local", "--no-report", *subset, *extra], env=env, check=True, capture_output=True)
            walls[label] = time.perf_counter() - start
        print(f"  {label:9} {walls[label]:7.1f} s", flush=True)
    print(f"  compiled / eager wall: {walls['compiled'] / walls['eager']:.2f}")


BENCHES = {"step": bench_step, "stabilisers": bench_stabilisers, "compile": bench_compile, "e2e": bench_e2e}


def main(names: list[str] | None = None) -> None:
    for name in names or ["step", "stabilisers", "compile"]:
        BENCHES[name]()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHES)} (default: step, stabilisers, compile)")
    parser.add_argument("--study", default="studies/quickstart.yaml", help="the study of e2e")
    parser.add_argument("--only", action="append", default=[], help="e2e: run only these trials (vi-sweep run --only)")
    args = parser.parse_args()
    if unknown := [n for n in args.names if n not in BENCHES]:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; valid choices: {', '.join(BENCHES)}")
    if "e2e" in args.names:
        BENCHES["e2e"] = lambda: bench_e2e(args.study, tuple(args.only))
    main(args.names)
