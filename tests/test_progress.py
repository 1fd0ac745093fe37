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
    assert "1/2 done" in line and line.endswith("ETA 5m00s"), line
    progress.running_cost["dear"] = 0.5 * 15000  # halfway through the dear one, three minutes in
    progress.start = time.monotonic() - 210
    assert progress.line(running=1).endswith("ETA 2m30s")
