"""Shared by the checks: device, timing with CUDA synchronisation, JSON output."""
import json, os, time
import torch

DEVICE = os.environ.get("DEVICE", "cuda")
OUT = os.environ.get("VI_OUT", ".")

def sync():
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()

def timed(fn, min_s=2.0, min_n=int(os.environ.get("MIN_N", "5"))):
    """Seconds per call of fn, after a synchronised start, at least min_s and min_n calls."""
    sync(); n, t0 = 0, time.perf_counter()
    while n < min_n or time.perf_counter() - t0 < min_s:
        fn(); n += 1
    sync()
    return (time.perf_counter() - t0) / n

def dump(name, obj):
    with open(os.path.join(OUT, "results", f"{name}.json"), "w") as f:
        json.dump(obj, f, indent=1, default=str)
    print(json.dumps(obj, indent=1, default=str))
