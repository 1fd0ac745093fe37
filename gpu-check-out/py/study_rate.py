"""seed-iterations/s of a finished `vi-sweep run` from its trials.parquet (wall_s is the pack's)."""
import sys, pandas as pd
from common import dump
name, results = sys.argv[1], sys.argv[2]
t = pd.read_parquet(f"{results}/trials.parquet")
packs = t.groupby("wall_s")  # members of one pack share its wall_s
out = {"study": name, "trials": len(t), "finished": int((t.status == "finished").sum()),
       "devices_recorded": sorted(t.device.unique()), "packs": packs.ngroups,
       "seed_iterations_per_s_per_pack": round(float((t.steps_done / t.wall_s).sum() / packs.ngroups), 1),
       "max_wall_s": round(float(t.wall_s.max()), 2)}
dump(f"study-{name}", out)
sys.exit(0 if out["finished"] == out["trials"] else 1)
