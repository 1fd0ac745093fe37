"""The one error a user fixes: a config or study problem, its source named, one line a problem."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config or study problem a user must fix; `problems` are one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


def shown(value: Any, width: int = 60) -> str:
    """A value as a message quotes it: at most `width` characters, of a repr read no further
    than that (a nested value's full repr can be gigabytes: aliases repeating one list)."""
    pieces, length = [], 0
    for piece in _repr_pieces(value):
        pieces.append(piece)
        length += len(piece)
        if length > width:
            break
    text = "".join(pieces)
    return text if len(text) <= width else text[:width - 3] + "..."


def _repr_pieces(value: Any):
    """repr(value), lazily, piece by piece, for the lists, tuples and dicts YAML builds."""
    if type(value) not in (list, tuple, dict):
        yield repr(value)
        return
    opening, closing = {dict: "{}", tuple: "()"}.get(type(value), "[]")
    yield opening
    for i, item in enumerate(value.items() if isinstance(value, dict) else value):
        yield ", " if i else ""
        if isinstance(value, dict):
            yield from _repr_pieces(item[0])
            yield ": "
            item = item[1]  # noqa: PLW2901 - a dict item's value, after its key
        yield from _repr_pieces(item)
    yield "," if type(value) is tuple and len(value) == 1 else ""
    yield closing
