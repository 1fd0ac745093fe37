"""A search stopped before every suggestion started (Ctrl-C in a protocol's tuning): the
suggestions without a config name no pack. Seen on stabilisers_fair: SIGINT during the tuning of
ring8/nobn-5x5 ended the driver in `TypeError: 'NoneType' object is not subscriptable`
(search._search_cell) instead of the stop message."""

from types import SimpleNamespace

from vi_sweeps.engine.runner import Member, PackSpec
from vi_sweeps.sweep.search import ran_of


def test_results_without_a_config_name_no_pack():
    template = PackSpec("file:///tmp/r", "s", (Member({"seed": 0, "lam": 0.0}, {}),), space=("lam",))
    grid = [SimpleNamespace(config={"lam": 5.0, "search_trial": 3}, error=None),
            SimpleNamespace(config=None, error=None),  # suggested, never started: the stop came first
            SimpleNamespace(config={"lam": 0.5, "search_trial": 4}, error=RuntimeError("lost"))]
    ran = ran_of(template, grid)
    assert [(p.members[0].config["lam"], p.search_trial, e) for p, e in ran] == \
        [(5.0, 3, None), (0.5, 4, "RuntimeError('lost')")]
