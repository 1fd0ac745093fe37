"""Name -> builder registries: every axis of a study (data sets, architectures, objectives,
metrics) is looked up by the name a study file uses, and a wrong name lists the valid ones.

A built-in name is declared with its spec in a light module (no torch) and its builder as a
"module:attribute" reference (`Lazy`), imported when first used: checking a study reads the
specs only, so it never loads the model zoo."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class Lazy:
    """A callable named by "module:attribute", imported at its first use (and then kept)."""

    def __init__(self, ref: str):
        module, sep, attr = ref.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"{ref!r}: a reference is 'module:attribute'")
        self.ref, self._target = ref, None

    def resolve(self) -> Any:
        if self._target is None:
            module, _, attr = self.ref.partition(":")
            self._target = getattr(importlib.import_module(module), attr)
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return (self._target or self.resolve())(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({self.ref!r})"


def resolved(value: Any) -> Any:
    """A Lazy reference's target; anything else as it is."""
    return value.resolve() if isinstance(value, Lazy) else value


class UnknownName(KeyError):
    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(choices)}")

    def __str__(self) -> str:
        return self.args[0]


LOADING: list[str] = []  # the plugin module being imported now (vi_sweeps.core.plugins), innermost last


class Registry:
    """Maps names to builders, each with its metadata: free-form keywords, or, where the
    registry declares a `spec` type (a frozen dataclass), one instance of it, so a misspelt or
    missing field fails at registration (at import), naming it. A name is registered once: a
    plugin cannot shadow a built-in."""

    def __init__(self, kind: str, spec: type | None = None):
        self.kind, self.spec = kind, spec
        self._entries: dict[str, tuple[Callable | None, Any]] = {}
        self._origins: dict[str, str] = {}  # name -> the plugin module that registered it

    def register(self, name: str, *, spec: Any = None, **meta: Any) -> Callable[[Callable], Callable]:
        """`@REGISTRY.register(name, ...)` on a builder; a registry of specs registers the spec
        at once (`REGISTRY.register(name, spec=Spec(...))`, with or without a builder)."""
        if self.spec is not None:
            if meta or not isinstance(spec, self.spec):
                raise TypeError(f"{self.kind} {name!r}: register it with spec={self.spec.__name__}(...)"
                                + (f", not {', '.join(sorted(meta))}" if meta else ""))
            self._add(name, None, spec)

        def add(builder: Callable) -> Callable:
            if self.spec is None:
                self._add(name, builder, meta)
            else:
                self._entries[name] = (builder, spec)
            return builder

        return add

    def declare(self, name: str, spec: Any, builder: str | None = None) -> None:
        """A built-in name with its spec, its builder a "module:attribute" reference imported
        at its first `get` (the module holding it needs torch; the declaration does not)."""
        self.register(name, spec=spec)
        if builder is not None:
            self._entries[name] = (Lazy(builder), spec)

    def loaded(self, name: str) -> Any:
        """`name`'s builder if it is imported already (a plugin's, or a built-in's once used),
        else None; never imports."""
        builder = self._entry(name)[0]
        if isinstance(builder, Lazy):
            return builder._target
        return builder

    def _add(self, name: str, builder: Callable | None, meta: Any) -> None:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind} name {name!r}: a non-empty name without surrounding spaces")
        if "/" in name or "\\" in name or name.startswith("."):  # names become parts of paths (Ray's trial folders)
            raise ValueError(f"{self.kind} name {name!r}: no / or \\, not starting with .")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice (a built-in or another plugin has it); "
                             "give it another name")
        self._entries[name] = (builder, meta)
        if LOADING:
            self._origins[name] = LOADING[-1]

    def origin(self, name: str) -> str | None:
        """The plugin module that registered `name` (None: a built-in)."""
        return self._origins.get(name)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Callable:
        return resolved(self._entry(name)[0])

    def meta(self, name: str) -> Any:
        return self._entry(name)[1]

    def _entry(self, name: str) -> tuple[Callable | None, Any]:
        if name not in self._entries:
            raise UnknownName(self.kind, name, self.names())
        return self._entries[name]
