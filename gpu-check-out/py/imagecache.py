"""Images/s delivered by the decode-once image cache as training batches: resident in device
memory (the normal path on a GPU), from pinned host memory (forced: as when it does not fit), and on the CPU."""
import os, sys, torch
from common import DEVICE, timed, dump
from vi_sweeps.config import TrialConfig
from vi_sweeps.datasets import ImageFolder, build_dataset
root = sys.argv[1]
cfg = TrialConfig(dataset="image-folder", data_root=root, image_size=64, crop=108, fid_weights="none", device=DEVICE)
data = build_dataset(cfg)
dev = torch.device(DEVICE)
gen = torch.Generator().manual_seed(0)
rows = []
def measure(where, device, batch):
    sec = timed(lambda: data.sample(batch, gen, device), min_s=1.5)
    src = data.images(device)
    rows.append({"where": where, "batch": batch, "images_per_s": round(batch / sec), "source_device": str(src.device),
                 "pinned": bool(src.is_pinned()) if src.device.type == "cpu" else None, "cache_images": len(data)})
    print(rows[-1], flush=True)
for b in (64, 1024):
    measure("resident", dev, b)
if dev.type == "cuda":
    assert data.images(dev).is_cuda, "the cache should be resident on the device when it fits"
    ImageFolder._resident.clear()
    real = torch.cuda.mem_get_info
    torch.cuda.mem_get_info = lambda device=None: (0, real(device)[1])  # pretend it does not fit
    try:
        for b in (64, 1024):
            measure("pinned-host", dev, b)
        assert data.images(dev).is_pinned()
    finally:
        torch.cuda.mem_get_info = real
    for b in (64, 1024):
        measure("cpu", torch.device("cpu"), b)
dump("imagecache", rows)
