"""The one error a user fixes: a config or study problem, its source named, one line a problem."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config or study problem a user must fix; `problems` are one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))
