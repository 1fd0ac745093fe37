"""Helpers that more than one test file uses (plain functions and values; the fixtures live in
conftest.py). A test file imports from here or conftest, never from another test file."""

import json
import math
import time

# the collapse rate planted per condition (bn, d_steps, lam) in the synthetic results folders of
# tests/test_report_sizes.py and tests/test_schema3.py
R = {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.2, (False, 5, 0.0): 0.9, (False, 5, 5.0): 0.3}


def as_pack(cfgs):
    """The trials as one pack: each of them says so (pack_size is part of a trial's identity)."""
    return [c.model_copy(update={"pack_size": len(cfgs), "pack_index": i}) for i, c in enumerate(cfgs)]


def losses_of(cfgs, n=20):
    """The losses of `n` training iterations of the trials trained as one pack."""
    from vi_sweeps.engine.trial import Trial

    trial = Trial(as_pack(cfgs))
    return [{key: v.tolist() for key, v in trial.model.train_iteration().items()} for _ in range(n)]


def rows_without_wall(rows):
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "wall_s"}
            for r in rows]


def rewrite(folder, fn_trials=None, fn_metrics=None, contract=None):
    """A results folder's tables (and contract) passed through the given functions, written back."""
    import pandas as pd
    import pyarrow.parquet as pq

    from vi_contract.tables import with_metadata

    c = contract or json.loads((folder / "contract.json").read_text())
    t, m = pd.read_parquet(folder / "trials.parquet"), pd.read_parquet(folder / "metrics.parquet")
    t, m = (fn_trials or (lambda x: x))(t), (fn_metrics or (lambda x: x))(m)
    pq.write_table(with_metadata(t, c), folder / "trials.parquet")
    pq.write_table(with_metadata(m, c), folder / "metrics.parquet")
    (folder / "contract.json").write_text(json.dumps(c))


def wait_for(predicate, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.3)
    return predicate()


def session_gone(sid: int) -> bool:
    """No process left in the session the killed driver led (Ray's workers run in their own
    process groups and outlive killpg by a second or two)."""
    for stat in __import__("glob").glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            return False
    return True
