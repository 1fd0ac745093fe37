import json, torch, ray, sys
from common import dump
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "available": torch.cuda.is_available(), "ray": ray.__version__, "python": sys.version.split()[0]}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                bf16=torch.cuda.is_bf16_supported())
dump("env", info)
sys.exit(0 if info["available"] else 3)
