"""Helpers that more than one test file uses (plain functions and values; the fixtures live in
conftest.py). A test file imports from here or conftest, never from another test file."""

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from analysis.synthetic import KEYS, synthetic_contract
from vi_contract import schema
from vi_contract.tables import setting_values, with_metadata

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


# A planted claims study (tests/test_claims.py, test_no_worse.py, test_verdicts.py)
SEEDS = 20
# lam -> (seeds that lose modes, high-quality share, fd_2d): 5 a real drop in mode loss, 50 a null,
# 0.5 blur only (every mode still holds a high-quality sample as often as the baseline, but fewer samples do)
ARMS = {0.0: (10, 0.9, 0.10), 5.0: (0, 0.9, 0.10), 50.0: (10, 0.9, 0.10), 0.5: (10, 0.3, 1.10)}
CLAIMS = [
    {"id": "modes", "statement": "lambda > 0 loses modes less often", "treatment": [0.5, 5.0, 50.0], "baseline": 0.0,
     "within": {}, "primary": {"endpoint": "mode_loss", "expect": "lower"}, "secondary": [], "family": None, "alpha": 0.05},
    {"id": "blur", "statement": "lambda 0.5 ends with better samples", "treatment": [0.5], "baseline": 0.0, "within": {},
     "primary": {"endpoint": "quality", "expect": "lower"},
     "secondary": [{"endpoint": "hq_share", "expect": "higher"}], "family": None, "alpha": 0.05},
]


def planted_study(tmp_path, claims=CLAIMS, arms=ARMS) -> Path:
    rng = np.random.default_rng(0)
    trials, metrics = [], []
    for lam, (lost, hq, fd) in arms.items():
        for s in range(SEEDS):
            tid = f"t-{lam}-{s}"
            lit = 0.25 if s < lost else 1.0
            row = {"eval/modes_frac": lit if hq > 0.5 else 0.25, "eval/modes_lit_frac": lit,
                   "eval/hq_frac": hq + 0.01 * rng.standard_normal(), "eval/fd_2d": fd + 0.01 * rng.standard_normal()}
            config = {"model": "gan", "dataset": "ring8", "seed": s, "bn": True, "g_steps": 1, "d_steps": 1, "lam": lam,
                      "collapse_rule": "modes_frac<0.5", "iterations": 200, "eval_every": 100}
            trials.append({**setting_values(config, {}), "trial_id": tid, "study": "planted", "status": "finished",
                           "search_trial": None, "pack_id": None, "steps_done": 200, "wall_s": 1.0, **row,
                           "collapsed": row["eval/modes_frac"] < 0.5, "diverged": False, "error": None})
            metrics.append(pd.DataFrame([{"trial_id": tid, "step": step, "wall_s": 0.5, **row,
                                          "collapsed": row["eval/modes_frac"] < 0.5, "diverged": False}
                                         for step in (100, 200)]))
    contract = synthetic_contract() | {"study": "planted", "claims": {"declared": "2026-12-07", "claims": claims,
                                                                      "amendments": [], "sha256": "x"}}
    contract["keys"] = KEYS | {"eval/modes_lit_frac": {"better": "higher"}, "eval/hq_frac": {"better": "higher"},
                               "eval/fd_2d": {**KEYS["eval/fd_2d"], "role": "quality"}}
    frame = pd.DataFrame(trials).astype({"search_trial": "Int64"})
    pq.write_table(with_metadata(frame, contract), tmp_path / schema.TRIALS_FILE)
    pq.write_table(with_metadata(pd.concat(metrics, ignore_index=True), contract), tmp_path / schema.METRICS_FILE)
    (tmp_path / schema.CONTRACT_FILE).write_text(json.dumps(contract))
    (tmp_path / schema.STUDY_FILE).write_text("name: planted\n")
    return tmp_path


STUDY = """name: claimed
datasets: [ring8]
grid: {lam: [0.0, 5.0]}
seeds: 2
budget: {iterations: 20, eval_every: 10}
compare: {axis: lam, baseline: 0.0}
claims:
  - id: C1
    statement: lambda 5 loses modes less often
    primary: {endpoint: mode_loss, expect: lower}
"""


# A tune-then-test protocol in minutes: two arms, two suggestions each on two tuning seeds, two test seeds
# (tests/test_protocol.py; tests/test_s3.py runs it on object storage)
SMALL_PROTOCOL = """name: fair_small
datasets: [ring8]
base: {hidden: 16, batch_size: 32, eval_samples: 200, mlp_layers: 2}
budget: {iterations: 20, eval_every: 10}
grid:
  stabiliser: {none: {}, anchor: {lam: 1.0}}
pack_seeds: 2
compare: {axis: stabiliser, baseline: none}
claims:
  - {id: small, statement: the anchor loses modes less often, primary: {endpoint: mode_loss, expect: lower}}
protocol:
  tune:
    trials: 2
    seeds: [10, 11]
    space: {anchor: {lam: {type: loguniform, low: 0.1, high: 10}}}
    shared: {lr: {type: loguniform, low: 1.0e-4, high: 3.0e-3}}
  test: {seeds: 2}
"""
