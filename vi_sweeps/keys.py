"""Result keys (`loss/*`, `eval/*`), each declared once where it is computed.

A Key is the string used as column name and dict key, carrying what everything else needs to
know about it: a label for figures and tables, a format for the progress line, and for metrics
which direction is better. Objectives and evaluators register the keys they report; the
results contract, the collapse rule, the search objective, the progress line and the figures
all read those declarations (the analysis layer reads them from the results' metadata).
"""

from __future__ import annotations

from typing import Any


class Key(str):
    label: str
    fmt: str
    better: str

    def __new__(cls, name: str, label: str, fmt: str = "{:.3f}", better: str = "") -> Key:
        if not name.startswith(("loss/", "eval/")):
            raise ValueError(f"a result key starts with loss/ or eval/, not {name!r}")
        if better not in ("", "higher", "lower"):
            raise ValueError(f"better: 'higher', 'lower' or '', not {better!r}")
        key = super().__new__(cls, name)
        key.label, key.fmt, key.better = label, fmt, better
        return key

    def __reduce__(self):
        return Key, (str(self), self.label, self.fmt, self.better)

    @property
    def short(self) -> str:
        return self.split("/", 1)[1]

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "fmt": self.fmt, "better": self.better}
