"""The driver's progress line: its ETA weighs each pack by its cost (iterations x network
updates per iteration), not every trial as equal."""

import time

from tests.conftest import tiny
from vi_sweeps.sweep.control import Progress
from vi_sweeps.sweep.driver import trial_cost


def test_the_eta_weighs_packs_by_their_cost():
    cheap, dear = tiny(iterations=1000), tiny(iterations=1000, d_steps=5, g_steps=5)
    assert (trial_cost(cheap), trial_cost(dear)) == (3000, 15000)  # 1 + 1 x 2 updates, 5 + 5 x 2
    progress = Progress("s", total=2, done_before=0, cost_todo=18000.0, start=time.monotonic() - 60)
    progress.cost_done, progress.completed = 3000.0, 1  # the cheap one took a minute
    line = progress.line(running=1)
    # five minutes left for the dear one (counting trials: half done, one more minute)
    assert "1/2 seeds done · 1 packs running" in line and line.endswith("ETA 5m00s"), line
    progress.running_cost["dear"] = 0.5 * 15000  # halfway through the dear one, three minutes in
    progress.start = time.monotonic() - 210
    assert progress.line(running=1).endswith("ETA 2m30s")


def test_the_line_counts_seeds_names_the_running_conditions_and_waits_for_a_finished_pack_to_estimate():
    """Issue 39: 'done' mixed seeds and packs, nothing said what ran, and the ETA jumped (55m,
    57m, 29m, 20m) from start-up's partial progress while nothing had finished."""
    progress = Progress("s", total=64, done_before=0, cost_todo=64.0, start=time.monotonic() - 60)
    progress.running_cost.update({"a": 0.5, "b": 0.3})  # partial progress only
    line = progress.line(2, seeds_running=40, conditions=("gan/ring8 lam=0.0", "gan/ring8 lam=5.0", "gan/grid25 lam=0.0"))
    assert line.startswith("[s] 0/64 seeds done · 2 packs running (40 seeds): gan/ring8 lam=0.0; gan/ring8 lam=5.0; +1 more")
    assert line.endswith("ETA after the first pack"), line
