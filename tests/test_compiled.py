"""The compiled training step (`compile: true`, vi_sweeps.gan.compiled) against eager, against
itself, and its refusals. Each distinct configuration costs one compile (15-70 s on this
machine), so the tests share three module-scoped graphs; the exhaustive matrix (every loss and
architecture alone) is tests/test_compiled_matrix.py, run by scripts/test-compile.sh."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from vi_sweeps.engine.trial import Trial, evaluations
from vi_sweeps.study.config import TrialConfig

from .helpers import rows_without_wall

pytestmark = pytest.mark.slow

# One graph for the CI suite (each distinct configuration costs a compile of 15-70 s here):
# every built-in stabiliser at once, without BN (so no parameter's gradient is mere rounding),
# at beta2 = 1 - 1e-7, where Adam's second-moment bias correction 1 - beta2^t is 1e-7 at t = 1:
# in float32 beta2 is 0.99999988 and 1 - beta2^t is 19% off, so a first update of lr becomes
# 1.09 lr; and a step counter stuck at 1 makes the later updates too large.
CFG = dict(bn=False, r1=1.0, r2=1.0, gp=1.0, sn=True, ema=0.9, lr_d=4e-4, loss="hinge", lam=5.0, beta2=1 - 1e-7,
           hidden=32, mlp_layers=2)
K = 3


def pack(compile: bool, k: int = K, seed: int = 0, **keys) -> Trial:
    return Trial([TrialConfig(seed=seed + s, pack_size=k, pack_index=s, compile=compile, **keys) for s in range(k)])


def params(trial: Trial) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone().double() for n, m in trial.model.modules.items()
            for k, v in m.state_dict().items() if v.is_floating_point()}


def train(trial: Trial, n: int) -> list[dict]:
    out = []
    for i in range(n):
        trial.model.iteration = i
        out.append({k: v.clone() for k, v in trial.model.train_iteration().items()})
    return out


def update_errors(before, eager, compiled) -> dict[str, float]:
    """Per tensor: |compiled update - eager update| / |eager update| (tensors that moved)."""
    return {k: float((compiled[k] - eager[k]).norm() / (eager[k] - before[k]).norm())
            for k in before if (eager[k] - before[k]).norm() > 0}


@pytest.fixture(scope="module")
def runs():
    """Eager and compiled packs of CFG, three iterations, the parameters before and after each."""
    eager, compiled = pack(False, **CFG), pack(True, **CFG)
    snaps, losses = [(params(eager), params(compiled))], []
    for i in range(3):
        step = []
        for t in (eager, compiled):
            t.model.iteration = i
            step.append({k: v.clone() for k, v in t.model.train_iteration().items()})
        losses.append(step)
        snaps.append((params(eager), params(compiled)))
    return eager, compiled, snaps, losses


def test_every_stabiliser_matches_eager_after_one_iteration(runs):
    """r1, r2, gp (its draws), sn (its power iteration), ema, ttur, the anchor and hinge, one
    graph: every parameter's update within 1e-3 of eager's (measured: up to 1.3e-4, the averaged
    G's biases), the losses within 1e-5 (measured: 4e-6)."""
    _, _, snaps, losses = runs
    errors = update_errors(snaps[0][0], *snaps[1])
    assert "G_ema.layers.0.weight" in errors and "D.layers.0.u" in errors  # the average and sn's vectors moved
    assert max(errors.values()) < 1e-3, max(errors.items(), key=lambda kv: kv[1])
    le, lc = losses[0]
    for key in le:
        torch.testing.assert_close(lc[key], le[key], rtol=1e-5, atol=1e-7)


def test_bias_corrections_are_float64(runs):
    """D's first Adam update moves each weight by lr_d (m / sqrt(v / (1 - beta2)) = sign(g) at
    t = 1): the median |update| / lr_d is 1 to 1e-3. Bias corrections computed in the graph, in
    float32, give 1.09 (a 0.33 relative update error against eager, shown by mutation)."""
    _, _, snaps, _ = runs
    (before, _), (_, after) = snaps[0], snaps[1]
    moved = torch.cat([(after[k] - before[k]).abs().flatten() for k in after
                       if k.startswith("D.") and k.endswith("weight")])
    ratio = (moved[moved > 0] / CFG["lr_d"]).median().item()
    assert abs(ratio - 1) < 1e-3, ratio


def test_step_count_advances(runs):
    """The step counter advances every update: the third iteration's update as eager's, and the
    optimiser state says 3 and 6 updates (D once, G twice an iteration). A 0-d float64 counter
    updated in the graph stays at 1 in torch 2.13: 0.18 relative error (shown by mutation)."""
    _, compiled, snaps, _ = runs
    (e2, c2), (e3, c3) = snaps[2], snaps[3]
    moved = {k: float(((c3[k] - c2[k]) - (e3[k] - e2[k])).norm() / (e3[k] - e2[k]).norm())
             for k in e3 if (e3[k] - e2[k]).norm() > 0}
    assert max(moved.values()) < 1e-2, max(moved.items(), key=lambda kv: kv[1])
    steps = {name: {float(s["step"]) for s in opt.state.values()} for name, opt in compiled.model.optims.items()}
    assert steps == {"D": {3.0}, "G": {6.0}}


def test_packs_that_differ_in_loss_weights_share_one_graph(runs):
    """lam, r1, r2 and gp enter the graph as tensors: a pack at other weights runs the graph
    already compiled (a weight read as a number was a full compile per value: 84 s)."""
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    other = pack(True, **{**CFG, "lam": 0.5, "r1": 2.0, "gp": 0.1})
    train(other, 2)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    assert other.model.weights["lam"].item() == 0.5


def test_frozen_member_stays_frozen(runs):
    """Freezing a member (a tensor mask, no recompile) zeroes it and its updates stay zero."""
    compiled = pack(True, **CFG)
    train(compiled, 1)
    compiled.model.freeze(1)
    train(compiled, 2)
    for name, t in params(compiled).items():
        assert not t[1].any(), name
    assert all(t[0].any() for name, t in params(compiled).items() if name.endswith("weight"))


BUDGET = dict(iterations=30, eval_every=10, eval_samples=500)


def run_rows(trial: Trial) -> list[list[dict]]:
    list(evaluations(trial))
    return [rows_without_wall(r) for r in trial.rows]


def test_compiled_runs_bit_for_bit(runs):
    """Two compiled runs of a pack: the same rows to the last bit (and not eager's)."""
    first, second = run_rows(pack(True, **CFG, **BUDGET)), run_rows(pack(True, **CFG, **BUDGET))
    assert first == second
    assert first != run_rows(pack(False, **CFG, **BUDGET))


def test_resume_at_an_evaluation_equals_a_straight_run(runs):
    """Checkpoints after the first evaluation, a new pack loads them (its compiled step is built
    again from the loaded optimiser state) and finishes: the rows of a straight run."""
    straight = run_rows(pack(True, **CFG, **BUDGET))
    trial = pack(True, **CFG, **BUDGET)
    next(evaluations(trial))
    states = [trial.member_state(k) for k in range(K)]
    resumed = pack(True, **CFG, **BUDGET)
    resumed.load_member_states(states)
    assert run_rows(resumed) == straight


def test_two_processes_agree_and_load_the_nodes_cache(runs, tmp_path):
    """`vi-sweep trial --set compile=true` (the trial at place 0 of a pack of K) in two fresh
    processes: the same rows to the last bit, and the rows of this process's compiled run; both
    load the graph this process compiled from the node's inductor cache under VI_SWEEPS_CACHE."""
    cache = Path(os.environ["VI_SWEEPS_CACHE"]) / "inductor" / torch.__version__
    assert any(cache.rglob("*")), "no inductor cache written"
    keys = {**CFG, **BUDGET, "compile": True, "pack_size": K, "pack_index": 0}
    sets = [a for k, v in keys.items() for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]
    outs = []
    for i in range(2):
        out = tmp_path / f"rows{i}.parquet"
        subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "trial", "--iterations", str(BUDGET["iterations"]),
                        *sets, "--out", str(out)], check=True, capture_output=True)
        outs.append(pd.read_parquet(out).drop(columns=["wall_s"]))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    assert math.isfinite(outs[0]["loss/d"].iloc[-1])
    mine = run_rows(pack(True, **CFG, **BUDGET))[0]
    assert [r["loss/d"] for r in mine] == outs[0]["loss/d"].tolist()
