"""Packed 2-D GAN (ring8, lambda 5, BN on/off x 1x1/5x5) on the device at K = 1, 16, 256:
seed-iterations/s of the training step alone (synchronised), in this process."""
import os, torch
from torch.utils.flop_counter import FlopCounterMode
from common import DEVICE, timed, dump
from vi_sweeps.config import TrialConfig
from vi_sweeps.trial import Trial
KS = [int(k) for k in os.environ.get("KS", "1,16,256").split(",")]
CASES = {"bn-1x1": dict(bn=True), "nobn-5x5": dict(bn=False, d_steps=5, g_steps=5)}
rows = []
for case, kw in CASES.items():
    for k in KS:
        cfgs = [TrialConfig(dataset="ring8", lam=5.0, lr=1e-3, iterations=10**6, eval_every=10**6, seed=s,
                            device=DEVICE, **kw) for s in range(k)]
        trial = Trial(cfgs)
        assert trial.model.real(2).device.type == torch.device(DEVICE).type
        for _ in range(5):
            trial.model.train_iteration()
        with FlopCounterMode(display=False) as fc:
            trial.model.train_iteration()
        per_iter = timed(trial.model.train_iteration, min_s=float(os.environ.get("MIN_S", "3")))
        rows.append({"case": case, "K": k, "ms_per_pack_iteration": round(1e3 * per_iter, 3),
                     "seed_iterations_per_s": round(k / per_iter, 1), "mflop_per_seed_iteration": round(fc.get_total_flops() / k / 1e6, 3)})
        print(rows[-1], flush=True)
        del trial
        if DEVICE.startswith("cuda"):
            torch.cuda.empty_cache()
for r in rows:
    base = next(b for b in rows if b["case"] == r["case"] and b["K"] == KS[0])
    r["speedup_vs_K1"] = round(r["seed_iterations_per_s"] / base["seed_iterations_per_s"], 2)
dump("pack2d", rows)
