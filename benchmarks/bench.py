"""Benchmarks (not tests): run `python benchmarks/bench.py [NAME ...]`, default all.

- trial:  a GAN trial on ring8, 5,000 iterations, one thread (target: under 60 s).
- dcgan:  one DCGAN iteration on 16x16 digits, batch 64, the trial engine against a plain
          PyTorch loop written the obvious way for the same networks and the same work
          (1 D step, anchors, 2 G updates with the penalty); alternating rounds, one run.
- ray:    the quickstart study through `vi-sweep run` with 1 and with 2 concurrent trials,
          against the same trials back to back in one process without Ray.
- report: a full report from 1,000 trials x 200 evaluations (target: under 15 s).
Figures are ratios measured in one run; this machine is noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_trial() -> None:
    import torch

    from vi_sweeps.config import TrialConfig
    from vi_sweeps.trial import Trial, evaluations

    torch.set_num_threads(1)
    cfg = TrialConfig(dataset="ring8", iterations=5000, eval_every=1000, lam=5.0, threads=1)
    start = time.perf_counter()
    rows = list(evaluations(Trial(cfg)))
    wall = time.perf_counter() - start
    print(f"trial: GAN ring8 5000 iterations, 1 thread: {wall:.1f} s (target < 60 s), "
          f"{1000 * wall / 5000:.2f} ms/iteration, final modes {rows[-1]['eval/modes']:.0f}")


def bench_dcgan(rounds: int = 5, iters: int = 40) -> None:
    import torch
    import torch.nn.functional as F

    from vi_sweeps.config import TrialConfig
    from vi_sweeps.trial import Trial

    torch.set_num_threads(1)
    cfg = TrialConfig(dataset="digits", image_size=16, batch_size=64, lam=5.0, bn=True, threads=1)
    engine = Trial(cfg)
    torch.manual_seed(0)
    plain = Trial(cfg)  # the same networks, driven by the loop below
    G, D = plain.model.modules["G"], plain.model.modules["D"]
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    images = plain.data.images

    def plain_iteration():
        x = images[torch.randint(len(images), (64,))]
        z = torch.randn(64, cfg.z_dim)
        with torch.no_grad():
            fake = G(z)
        real_out, fake_out = D(x), D(fake)
        d_loss = 0.5 * (F.binary_cross_entropy_with_logits(real_out, torch.ones_like(real_out))
                        + F.binary_cross_entropy_with_logits(fake_out, torch.zeros_like(fake_out)))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        z = torch.randn(64, cfg.z_dim)
        with torch.no_grad():
            anchor = G(z)
        for _ in range(2):
            fake = G(z)
            out = D(fake)
            g_loss = F.binary_cross_entropy_with_logits(out, torch.ones_like(out)) + 5.0 * F.mse_loss(fake, anchor)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()

    def timed(fn) -> float:
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - start) / iters

    timed(engine.model.train_iteration), timed(plain_iteration)  # warm up
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(timed(engine.model.train_iteration))
        theirs.append(timed(plain_iteration))
    o, t = min(ours), min(theirs)
    print(f"dcgan: 16x16 digits batch 64, 1 thread: engine {1000 * o:.1f} ms/iteration, plain loop "
          f"{1000 * t:.1f} ms/iteration, ratio engine/plain {o / t:.3f} (best of {rounds} rounds of {iters})")


def bench_ray() -> None:
    from vi_sweeps.runner import Member, PackRunner
    from vi_sweeps.storage import Store
    from vi_sweeps.study import load_study

    study = load_study(ROOT / "studies/quickstart.yaml")
    tmp = Path(tempfile.mkdtemp(prefix="vi-bench-"))
    start = time.perf_counter()
    store = Store.open(str(tmp / "inprocess"))
    for t in study.trials:
        list(PackRunner(store, [Member(t.as_dict(), t.labels)], study.name).run())
    inprocess = time.perf_counter() - start
    walls = {}
    for n in (1, 2):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "run", str(ROOT / "studies/quickstart.yaml"),
                        "--results", str(tmp / f"ray{n}"), "--max-concurrent", str(n), "--no-report"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls[n] = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"ray: quickstart ({len(study.trials)} trials) in one process without Ray {inprocess:.1f} s; "
          f"vi-sweep run 1 at a time {walls[1]:.1f} s (Ray overhead {100 * (walls[1] - inprocess) / walls[1]:.1f}% "
          f"of wall time, target <= 15%); 2 at a time {walls[2]:.1f} s "
          f"(speed-up {walls[1] / walls[2]:.2f}x, target >= 1.7x)")


def bench_report() -> None:
    from analysis.report import build_report
    from analysis.synthetic import synthetic_results

    tmp = Path(tempfile.mkdtemp(prefix="vi-bench-"))
    rates = {(bn, g, lam): 0.6 / (1 + lam) for bn, g in ((True, 1), (False, 5)) for lam in (0.0, 0.5, 5.0, 50.0)}
    synthetic_results(tmp / "r", rates, seeds=125, evaluations=200)  # 8 x 125 = 1,000 trials
    start = time.perf_counter()
    build_report([str(tmp / "r")], str(tmp / "r" / "report"))
    wall = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"report: 1000 trials x 200 evaluations (200,000 metric rows): {wall:.1f} s (target < 15 s)")


BENCHES = {"trial": bench_trial, "dcgan": bench_dcgan, "ray": bench_ray, "report": bench_report}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHES)} (default: all)")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; valid choices: {', '.join(BENCHES)}")
    os.environ.setdefault("VI_SWEEPS_CACHE", str(Path.home() / ".cache" / "vi-sweeps"))
    for name in args.names or BENCHES:
        BENCHES[name]()
