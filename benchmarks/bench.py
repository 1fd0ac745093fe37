"""Benchmarks (not tests): run `python benchmarks/bench.py [NAME ...]`, default all.

- trial:   a GAN trial on ring8, 5,000 iterations, one thread (target: under 60 s).
- dcgan:   one DCGAN iteration on 16x16 digits, batch 64, the trial engine against a plain
           PyTorch loop written the obvious way for the same networks and the same work
           (1 D step, anchors, 2 G updates with the penalty); alternating rounds, one run.
- pack:    seed-iterations per second of packs of K = 1, 4, 16, 64 seeds, two processes at a
           time (one thread each, as two Ray trials on 2 cores), against K = 1 (single-seed
           trials 2 at a time); ring8 GAN (BN on/off x 1/5 phases) and Stacked-digits DCGAN
           16 px; with the compute floor (the iteration's FLOPs over a large matmul's FLOP/s).
- ray:     the quickstart study through `vi-sweep run` with 1 and with 2 concurrent packs,
           against the same packs back to back in one process without Ray.
- report:  a full report from 1,000 trials x 200 evaluations (target: under 15 s).
- scale:   a synthetic 10,000-trial results folder: validate, status, report, and the
           driver's incremental consolidation (targets: 5 s, 30 s, 30 s).
- images:  images/s from a folder of 5,000 CelebA-sized JPEGs: decoding each draw (the old
           path) against the decode-once cache (target >= 50x).
- frechet: the Frechet distance of 2048-d statistics, scipy's sqrtm against the eigenvalue form.
- stabilisers: seconds per training iteration of each loss and stabiliser against none, on
           ring8 (a pack of 16, BN, 1 phase) and Stacked-digits 16 px (a pack of 1), one
           thread, alternating rounds in one run.
- compiled: eager against `compile: true` (benchmarks/compiled.py: step, stabilisers, compile).
- cost:    C4's cost: every arm of studies/stabilisers*.yaml in every regime as the studies
           train it (their packs, weights, phases), written to
           docs/reproduction/stabiliser_cost.csv, which docs/reproduction/README.md cites for C4.
Figures are ratios measured in one run; this machine is noisy: run it alone.
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

    from vi_sweeps.engine.trial import Trial, evaluations
    from vi_sweeps.study.config import TrialConfig

    torch.set_num_threads(1)
    cfg = TrialConfig(dataset="ring8", iterations=5000, eval_every=1000, lam=5.0, threads=1)
    start = time.perf_counter()
    trial = Trial(cfg)
    list(evaluations(trial))
    wall = time.perf_counter() - start
    print(f"trial: GAN ring8 5000 iterations, 1 thread: {wall:.1f} s (target < 60 s), "
          f"{1000 * wall / 5000:.2f} ms/iteration, final modes {trial.rows[0][-1]['eval/modes']:.0f}")


def bench_dcgan(rounds: int = 5, iters: int = 40) -> None:
    import torch
    import torch.nn.functional as F

    from vi_sweeps.engine.trial import Trial
    from vi_sweeps.gan.architectures import build_nets
    from vi_sweeps.study.config import TrialConfig

    torch.set_num_threads(1)
    cfg = TrialConfig(dataset="digits", image_size=16, batch_size=64, lam=5.0, bn=True, threads=1)
    engine = Trial(cfg)
    torch.manual_seed(0)
    nets = build_nets(cfg, engine.data.shape)  # the same architecture as plain nn modules
    G, D = nets.generator(), nets.critic()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    images = engine.data.images

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
    print(f"dcgan: 16x16 digits batch 64, 1 thread: engine (a pack of one) {1000 * o:.1f} ms/iteration, plain nn loop "
          f"{1000 * t:.1f} ms/iteration, ratio engine/plain {o / t:.3f} (best of {rounds} rounds of {iters})")


PACK_CASES = {
    "ring8 bn 1x1": dict(dataset="ring8", bn=True, d_steps=1, g_steps=1, lr=1e-3),
    "ring8 nobn 1x1": dict(dataset="ring8", bn=False, d_steps=1, g_steps=1, lr=1e-3),
    "ring8 bn 5x5": dict(dataset="ring8", bn=True, d_steps=5, g_steps=5, lr=1e-3),
    "ring8 nobn 5x5": dict(dataset="ring8", bn=False, d_steps=5, g_steps=5, lr=1e-3),
    "stacked-digits 16px bn 1x1": dict(dataset="stacked-digits", bn=True, d_steps=1, g_steps=1, image_size=16),
}


def _pack_worker(args) -> tuple[float, float]:
    """(seconds per pack iteration, FLOPs per pack iteration) of a pack of K, one thread."""
    case, k, offset, seconds = args
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vi_sweeps.engine.trial import Trial
    from vi_sweeps.study.config import TrialConfig

    torch.set_num_threads(1)
    cfgs = [TrialConfig(**PACK_CASES[case], lam=5.0, iterations=10**6, eval_every=10**6, seed=offset + s) for s in range(k)]
    trial = Trial(cfgs)
    for _ in range(2):
        trial.model.train_iteration()
    with FlopCounterMode(display=False) as counter:
        trial.model.train_iteration()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2:
        trial.model.train_iteration()
        n += 1
    return (time.perf_counter() - start) / n, float(counter.get_total_flops())


def matmul_flops_per_second() -> float:
    """One core's FLOP/s on a large float32 matmul: the compute floor's denominator."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048**3 / (time.perf_counter() - start)


def bench_pack(ks: tuple[int, ...] = (1, 4, 16, 64), seconds: float = 6.0) -> None:
    import multiprocessing as mp

    peak = matmul_flops_per_second()
    print(f"pack: one core's float32 matmul (2048^2): {peak / 1e9:.1f} GFLOP/s; two processes at a time, one thread each")
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        for case in PACK_CASES:
            base = None
            for k in ks:
                results = pool.map(_pack_worker, [(case, k, 0, seconds), (case, k, 1000, seconds)])
                per_iter = sum(r[0] for r in results) / 2
                rate = 2 * k / per_iter  # seed-iterations per second, the machine
                flops = results[0][1] / k
                floor_ms = 1000 * flops / peak
                base = base or rate
                print(f"  {case:28} K={k:<3} {rate:8.0f} seed-it/s  {1000 * per_iter / k:7.2f} ms/seed-it per core  "
                      f"x{rate / base:4.2f} vs K=1  floor {floor_ms:6.3f} ms ({flops / 1e6:.1f} MFLOP): "
                      f"{1000 * per_iter / k / floor_ms:4.1f}x the floor")


def bench_ray() -> None:
    from vi_contract.store import Store
    from vi_sweeps.engine.runner import PackRunner
    from vi_sweeps.study.load import load_study
    from vi_sweeps.sweep.driver import make_packs

    study = load_study(ROOT / "studies/quickstart.yaml")
    tmp = Path(tempfile.mkdtemp(prefix="vi-bench-"))
    start = time.perf_counter()
    store = Store.open(str(tmp / "inprocess"))
    for spec in make_packs(study, store.uri, {t.trial_id for t in study.trials}):
        list(PackRunner(store, spec).run())
    inprocess = time.perf_counter() - start
    walls = {}
    for n in (1, 2):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "run", str(ROOT / "studies/quickstart.yaml"),
                        "--results", str(tmp / f"ray{n}"), "--max-concurrent", str(n), "--no-report"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls[n] = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"ray: quickstart ({len(study.trials)} trials in packs of {study.spec.pack_seeds}) in one process without Ray "
          f"{inprocess:.1f} s; "
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


def bench_scale(n_trials: int = 10_000) -> None:
    """validate, status, report and incremental consolidation at 10,000 trials."""
    from analysis.synthetic import synthetic_results
    from vi_contract.tables import TrialFiles

    tmp = Path(tempfile.mkdtemp(prefix="vi-bench-"))
    rates = {(bn, g, lam): 0.5 for bn in (True, False) for g in (1, 5) for lam in (0.0, 0.5, 5.0, 50.0)}
    seeds = n_trials // len(rates)
    study = tmp / "big.yaml"
    study.write_text("name: big\ngrid:\n  bn: [true, false]\n  g_steps: [1, 5]\n  lam: [0.0, 0.5, 5.0, 50.0]\n"
                     f"seeds: {seeds}\n")
    results = tmp / "r"
    synthetic_results(results, rates, seeds=seeds, evaluations=20, per_trial_files=True)
    (results / "study.yaml").write_text(study.read_text())
    times = {}
    for name, cmd in (("validate", ["validate", str(study)]), ("status", ["status", str(results)]),
                      ("report", ["report", str(results), "--out", str(tmp / "report")])):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vi_sweeps.cli", *cmd], check=True, stdout=subprocess.DEVNULL)
        times[name] = time.perf_counter() - start
    import pyarrow.fs as pafs

    files = TrialFiles(pafs.LocalFileSystem(), str(results))
    start = time.perf_counter()
    files.read()
    first = time.perf_counter() - start
    time.sleep(6)  # past the window in which files are re-read as possibly mid-replace (vi_contract/tables.py)
    files.read()
    for p in sorted((results / "trials").iterdir())[:10]:  # ten trials write a new evaluation
        p.write_bytes(p.read_bytes())
    start = time.perf_counter()
    files.read()
    again = time.perf_counter() - start
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"scale: {len(rates) * seeds:,} trials x 20 evaluations: validate {times['validate']:.1f} s (target < 5), "
          f"status {times['status']:.1f} s (< 30), report {times['report']:.1f} s (< 30); consolidation reads all "
          f"trial files in {first:.1f} s, then {again:.2f} s when 10 changed")


def bench_images(n_images: int = 5000, batches: int = 20) -> None:
    """images/s delivered by decoding each drawn image (the old image-folder path) against
    batches drawn from the decode-once cache, on a generated folder of CelebA-sized JPEGs."""
    import numpy as np
    import torch
    from PIL import Image

    from vi_sweeps.data.datasets import build_dataset, image_files
    from vi_sweeps.data.imagecache import preprocess
    from vi_sweeps.study.config import TrialConfig

    tmp = Path(tempfile.mkdtemp(prefix="vi-bench-"))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)
    for i in range(n_images):  # photo-like: smooth base plus per-image noise, JPEG quality 90
        noise = rng.integers(-20, 20, (218, 178, 3))
        Image.fromarray(np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)).save(tmp / f"{i:06d}.jpg", quality=90)
    os.environ["VI_SWEEPS_CACHE"] = str(tmp / "cache")
    cfg = TrialConfig(dataset="image-folder", data_root=str(tmp), image_size=64, crop=108, fid_weights="none")
    files = image_files(str(tmp))
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(batches):
        idx = torch.randint(len(files), (64,), generator=gen)
        torch.stack([torch.from_numpy(preprocess(files[i], 64, 108)) for i in idx.tolist()]).float() / 127.5 - 1
    old = batches * 64 / (time.perf_counter() - start)
    start = time.perf_counter()
    data = build_dataset(cfg)
    build = time.perf_counter() - start
    data.sample(64, gen)
    start = time.perf_counter()
    for _ in range(batches * 50):
        data.sample(64, gen)
    new = batches * 50 * 64 / (time.perf_counter() - start)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"images: {n_images} JPEGs 178x218 -> 64 px: decoding per draw {old:,.0f} images/s "
          f"({1000 * 64 / old:.0f} ms per batch of 64); cache built in {build:.1f} s ({n_images / build:,.0f} images/s, "
          f"once per node), then {new:,.0f} images/s from it ({new / old:,.0f}x; target >= 50x)")


def bench_frechet(dim: int = 2048) -> None:
    """scipy's sqrtm against the eigenvalue form, both on one thread (BLAS and torch)."""
    import numpy as np
    import torch
    from scipy import linalg
    from threadpoolctl import threadpool_limits

    from vi_sweeps.metrics.evaluators import statistics_to_frechet

    torch.set_num_threads(1)
    threadpool_limits(1)

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4 * dim, dim)), rng.standard_normal((4 * dim, dim)) * 1.1 + 0.1
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu1, mu2 = a.mean(0), b.mean(0)
    start = time.perf_counter()
    root = linalg.sqrtm(s1 @ s2).real
    old = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))
    t_old = time.perf_counter() - start
    start = time.perf_counter()
    new = statistics_to_frechet(mu1, s1, mu2, s2)
    t_new = time.perf_counter() - start
    print(f"frechet: {dim}-d statistics: scipy sqrtm {t_old:.1f} s, eigenvalue form {t_new:.2f} s "
          f"({t_old / t_new:.0f}x; target < 5 s); relative difference {abs(new - old) / abs(old):.1e}")


STABILISER_OPTIONS = {"none": {}, "anchor": {"lam": 5.0}, "r1": {"r1": 10.0}, "r2": {"r2": 10.0},
                      "wgan-gp": {"loss": "wasserstein", "gp": 10.0}, "sn": {"sn": True}, "ema": {"ema": 0.999},
                      "ttur": {"lr_g": 2.5e-4}, "hinge": {"loss": "hinge"}}


def bench_stabilisers(rounds: int = 3, iters: int = 30) -> None:
    import torch

    from vi_sweeps.engine.trial import Trial
    from vi_sweeps.study.config import TrialConfig

    torch.set_num_threads(1)
    cases = {"ring8, pack of 16": (dict(dataset="ring8", lr=1e-3), 16),
             "stacked-digits 16 px, pack of 1": (dict(dataset="stacked-digits", image_size=16, lr=2e-4), 1)}
    for label, (base, k) in cases.items():
        trials = {}
        for name, option in STABILISER_OPTIONS.items():
            cfgs = [TrialConfig(**base, **option, seed=s, pack_size=k, pack_index=s) for s in range(k)]
            trials[name] = Trial(cfgs)
            trials[name].model.train_iteration()  # warm up
        best = dict.fromkeys(trials, float("inf"))
        for _ in range(rounds):  # alternating, so drift in the machine's speed hits every option alike
            for name, trial in trials.items():
                start = time.perf_counter()
                for _ in range(iters):
                    trial.model.train_iteration()
                best[name] = min(best[name], (time.perf_counter() - start) / iters)
        print(f"stabilisers: {label}, ms per iteration (best of {rounds} rounds of {iters}) and x none:")
        for name, t in best.items():
            print(f"  {name:8} {1000 * t:8.2f} ms  {t / best['none']:5.2f}x")


COST_STUDIES = ("studies/stabilisers.yaml", "studies/stabilisers_digits.yaml")
COST_FILE = ROOT / "docs" / "reproduction" / "stabiliser_cost.csv"  # cited by docs/reproduction/README.md (C4's cost)


def bench_cost(rounds: int = 3, seconds: float = 1.5, out: Path = COST_FILE) -> None:
    """C4's cost: milliseconds per training iteration of every arm of the stabiliser studies, as
    the studies train them (each regime's first data set, the arm's first pack with the study's
    pack size and weights), one thread, the arms of a regime alternating in each round (best
    round kept); written to `out` (docs/reproduction/stabiliser_cost.csv, cited by docs/reproduction/README.md)."""
    import pandas as pd
    import torch

    from vi_sweeps.engine.trial import Trial
    from vi_sweeps.study.expansion import layout_packs
    from vi_sweeps.study.load import load_study

    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    measured = f"{time.strftime('%Y-%m-%d', time.gmtime())}, commit {commit or 'unknown'}, {os.cpu_count()} cores"
    rows = []
    for path in COST_STUDIES:
        study = load_study(ROOT / path)
        first = study.spec.datasets[0]
        packs = [p for p in layout_packs(study) if p[0].config.dataset == first]
        regimes = dict.fromkeys(p[0].labels["regime"] for p in packs)
        for regime in regimes:
            arms = {p[0].labels["stabiliser"]: Trial([t.config for t in p]) for p in packs
                    if p[0].labels["regime"] == regime and p[0].config.seed == study.trials[0].config.seed}
            for trial in arms.values():
                trial.model.train_iteration()  # warm up
            start = time.perf_counter()
            arms["none"].model.train_iteration()
            iters = max(2, int(seconds / (time.perf_counter() - start)))  # about `seconds` an arm and round
            best = dict.fromkeys(arms, float("inf"))
            for _ in range(rounds):
                for name, trial in arms.items():
                    start = time.perf_counter()
                    for _ in range(iters):
                        trial.model.train_iteration()
                    best[name] = min(best[name], (time.perf_counter() - start) / iters)
            for name, t in best.items():
                k = len(arms[name].places)
                rows.append({"study": study.name, "dataset": first, "regime": regime, "stabiliser": name, "pack_size": k,
                             "ms_per_iteration": round(1000 * t, 3), "ms_per_seed_iteration": round(1000 * t / k, 3),
                             "x_none": round(t / best["none"], 3), "rounds": rounds, "iterations_per_round": iters,
                             "measured": measured})
                print(f"cost: {study.name} {first} {regime:9} {name:8} {1000 * t:8.2f} ms a pack of {k}  "
                      f"{t / best['none']:5.2f}x none")
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"cost: {out}")


def bench_compiled() -> None:
    from benchmarks.compiled import main  # eager against the compiled step (its own file)

    main()


BENCHES = {"trial": bench_trial, "dcgan": bench_dcgan, "pack": bench_pack, "ray": bench_ray, "report": bench_report,
           "scale": bench_scale, "images": bench_images, "frechet": bench_frechet, "stabilisers": bench_stabilisers,
           "cost": bench_cost, "compiled": bench_compiled}
EXPLICIT = ("cost",)  # run only when named: it rewrites a committed file (docs/reproduction/stabiliser_cost.csv)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHES)} (default: all but {', '.join(EXPLICIT)})")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; valid choices: {', '.join(BENCHES)}")
    os.environ.setdefault("VI_SWEEPS_CACHE", str(Path.home() / ".cache" / "vi-sweeps"))
    for name in args.names or [n for n in BENCHES if n not in EXPLICIT]:
        BENCHES[name]()
