"""Config keys, each declared once by what reads it: the trial itself, a model family, a data
set, an architecture, a loss, a stabiliser or an evaluator (in the light `declared` module of
its subpackage, which imports no torch). `vi_sweeps.study.config` builds `TrialConfig` from
these declarations; nothing here knows pydantic.

A key is of one of three kinds: `experiment` (part of the trial id), `added` (an experiment
key added after results existed: part of the id only away from its default, so older trials
keep theirs) or `execution` (how or where a trial runs: never part of the id). A key whose
values are the names of a registry says which (`choices`), so `vi-sweep trial --list-keys`
lists the registry's names as they are now, a plugin's included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("experiment", "added", "execution")
BOUNDS = ("gt", "ge", "lt", "le")


@dataclass(frozen=True)
class Setting:
    """One config key: its name, type (a Python annotation), default, one-line doc, kind, bounds
    (`gt`, `ge`, `lt`, `le`) and, where its values are registered names, that registry."""

    name: str
    type: Any
    default: Any
    doc: str
    kind: str = "experiment"
    bounds: dict[str, Any] = field(default_factory=dict)
    choices: Any = None  # a vi_sweeps.core.registry.Registry whose names are its values
    extra_choices: tuple[str, ...] = ()  # values beside the registry's names (arch: auto)

    def __post_init__(self):
        if not self.name.isidentifier() or self.name.startswith("_"):
            raise ValueError(f"config key {self.name!r}: a Python identifier not starting with _")
        if self.kind not in KINDS:
            raise ValueError(f"config key {self.name}: kind one of {KINDS}, not {self.kind!r}")
        if not self.doc:
            raise ValueError(f"config key {self.name}: a one-line doc")
        if set(self.bounds) - set(BOUNDS):
            raise ValueError(f"config key {self.name}: bounds are {BOUNDS}, not {sorted(set(self.bounds) - set(BOUNDS))}")

    def names(self) -> list[str]:
        """The values a key of registered names takes now (empty: it is no such key)."""
        return [*self.extra_choices, *self.choices.names()] if self.choices is not None else []


SETTINGS: dict[str, Setting] = {}  # name -> its declaration, in the order declared
OWNERS: dict[str, str] = {}  # name -> what declared it ("stabiliser r1", "data sets", ...)


def declare(owner: str, *settings: Setting) -> None:
    """Declare config keys; a key is declared once (a second declaration is a mistake)."""
    for s in settings:
        if s.name in SETTINGS:
            raise ValueError(f"config key {s.name!r} is declared by {OWNERS[s.name]} already ({owner} declares it again)")
        SETTINGS[s.name] = s
        OWNERS[s.name] = owner
