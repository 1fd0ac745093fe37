"""Where a config key may be set: one table, read by one check, with one message.

A study sets each config key in one place: `base:`, a grid axis (a list of values), a labelled
axis (settings that go together), `budget:`, the search space, or `--set` on the command line;
`seeds:`, `models:`, `datasets:` and `pack_seeds:` set the keys of their own. A key that is no
config key (of that place) is named with the valid keys; a config key that belongs elsewhere is
named with where it is set. (That a key is set in two places at once depends on the whole
study and is checked where the study is expanded: vi_sweeps.study.expansion, .load.)
"""

from __future__ import annotations

from dataclasses import dataclass

from vi_sweeps.study.config import EXECUTION_KEYS, config_keys, unknown

SET_BY = {"seed": "seeds", "model": "models", "dataset": "datasets", "pack_size": "pack_seeds",
          "pack_index": "pack_seeds"}  # the study keys that set them
NOT_AXES = tuple(SET_BY)
PACKING = ("seed", "pack_size", "pack_index")  # what a labelled axis may not set either


@dataclass(frozen=True)
class Place:
    """A place of a study that sets config keys."""

    phrase: str  # how a refusal names it: "set by `seeds:`, not {phrase}"
    unknown: str = "unknown key"  # what a name that is no config key is called here
    refused: tuple[str, ...] = NOT_AXES  # config keys another field of the study sets (SET_BY)
    execution: bool = True  # execution keys may be set here
    only: tuple[str, ...] | None = None  # the keys of a place that takes a few of its own (budget)


PLACES = {
    "base": Place("in base"),
    "grid": Place("as an axis", unknown="unknown axis", execution=False),
    "label": Place("in a labelled axis", refused=PACKING),
    "budget": Place("in the budget", refused=(), only=("iterations", "eval_every")),
    "search": Place("in a search space", unknown="not a searchable config key"),
    "--set": Place("by --set"),
}


def misplaced(place: str, key: str, where: str) -> str | None:
    """Why `key` may not be set at `place` (one line starting with `where`), or None."""
    p = PLACES[place]
    keys = list(p.only) if p.only is not None else config_keys()
    if key not in keys:
        return unknown(where, keys, p.unknown)
    if key in p.refused:
        return f"{where}: set by `{SET_BY[key]}:`, not {p.phrase}"
    if not p.execution and key in EXECUTION_KEYS:
        return (f"{where}: an execution key, not an axis: it does not change the experiment, so its values would be "
                "one trial run twice; set it in base")
    return None
