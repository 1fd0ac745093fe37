"""paper-64 DCGAN step at batch 64 on the device, fp32 / tf32 / bf16: ms per iteration (one D
update, the anchors, two G updates), model FLOPs per iteration (torch's FlopCounterMode) and MFU
against the H200's dense spec-sheet peak and against a measured large matmul of the same precision."""
import os, sys, torch
from torch.utils.flop_counter import FlopCounterMode
from common import DEVICE, timed, dump
from vi_sweeps.config import TrialConfig
from vi_sweeps.trial import Trial, set_precision
root = sys.argv[1]
SPEC = {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12}  # H200 SXM dense (sparsity off)
def matmul_peak(precision):
    set_precision(precision, torch.device(DEVICE))
    n = int(os.environ.get("MATMUL_N", "8192"))
    dt = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=DEVICE, dtype=dt), torch.randn(n, n, device=DEVICE, dtype=dt)
    return 2 * n**3 / timed(lambda: a @ b, min_s=1.0)
rows = []
REGIMES = {"exp1-bn-1x1": dict(bn=True), "exp2-nobn-5x5": dict(bn=False, d_steps=5, g_steps=5)}
for regime, kw in REGIMES.items():
    if regime not in os.environ.get("REGIMES", ",".join(REGIMES)).split(","):
        continue
    for precision in os.environ.get("PRECISIONS", "fp32,tf32,bf16").split(","):
        cfg = TrialConfig(dataset="image-folder", data_root=root, arch="paper-64", image_size=64, crop=108, z_dim=100,
                          batch_size=64, lr=2e-4, beta1=0.5, lam=5.0, fid_weights="none", device=DEVICE,
                          precision=precision, iterations=10**6, eval_every=10**6, **kw)
        trial = Trial(cfg)
        assert all(p.device.type == torch.device(DEVICE).type for p in trial.model.modules["G"].parameters())
        ac = torch.autocast(trial.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        def it():
            with ac:
                return trial.model.train_iteration()
        for _ in range(int(os.environ.get("WARM", "10"))):  # cudnn.benchmark picks its kernels here
            it()
        with FlopCounterMode(display=False) as fc:
            it()
        flops = fc.get_total_flops()
        sec = timed(it, min_s=float(os.environ.get("MIN_S", "3")))
        peak = matmul_peak(precision) if DEVICE.startswith("cuda") else float("nan")
        rows.append({"regime": regime, "precision": precision, "ms_per_iteration": round(1e3 * sec, 3),
                     "gflop_per_iteration": round(flops / 1e9, 2), "achieved_tflops": round(flops / sec / 1e12, 2),
                     "mfu_vs_spec": round(flops / sec / SPEC[precision], 4), "matmul_tflops": round(peak / 1e12, 1),
                     "mfu_vs_matmul": round(flops / sec / peak, 4)})
        print(rows[-1], flush=True)
        del trial
dump("dcgan", rows)
