"""Name -> builder registries: every axis of a study (data sets, architectures, objectives,
metrics) is looked up by the name a study file uses, and a wrong name lists the valid ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class UnknownName(KeyError):
    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(choices)}")

    def __str__(self) -> str:
        return self.args[0]


class Registry:
    """Maps names to builders, each with free-form metadata (e.g. a data set's kind)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, tuple[Callable, dict[str, Any]]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable], Callable]:
        def add(builder: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = (builder, meta)
            return builder

        return add

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable:
        return self._entry(name)[0]

    def meta(self, name: str) -> dict[str, Any]:
        return self._entry(name)[1]

    def _entry(self, name: str) -> tuple[Callable, dict[str, Any]]:
        if name not in self._entries:
            raise UnknownName(self.kind, name, self.names())
        return self._entries[name]
