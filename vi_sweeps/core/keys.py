"""Result keys (`loss/*`, `eval/*`), each declared once where it is computed.

A Key is the string used as column name and dict key, carrying what everything else needs to
know about it: a label for figures and tables, a format for the progress line, and for metrics
which direction is better, its role (`quality`: the distance a data set's findings compare;
`modes`: a count of modes captured), a note the report prints under its figure, the scale
its figures use (linear or log), and what it is blind to (`modes`: it can score a generator
that covers few modes as well as one that covers all, so the report's at-a-glance verdict never
counts it). Objectives and evaluators register the keys they report; the results contract, the
collapse rule, the search objective, the progress line and the figures all read those
declarations (the analysis layer reads them from the results' metadata).
"""

from __future__ import annotations

from typing import Any

ROLES = ("", "quality", "modes")
SCALES = ("linear", "log")
BLIND = ("", "modes")  # what a metric may declare itself blind to


class Key(str):
    label: str
    fmt: str
    better: str
    role: str
    note: str
    scale: str
    blind_to: str

    def __new__(cls, name: str, label: str, fmt: str = "{:.3f}", better: str = "", role: str = "", note: str = "",
                scale: str = "linear", blind_to: str = "") -> Key:
        if not name.startswith(("loss/", "eval/")):
            raise ValueError(f"a result key starts with loss/ or eval/, not {name!r}")
        if better not in ("", "higher", "lower"):
            raise ValueError(f"better: 'higher', 'lower' or '', not {better!r}")
        if role not in ROLES or scale not in SCALES:
            raise ValueError(f"role: one of {ROLES}, scale: one of {SCALES}; not {role!r}, {scale!r}")
        if blind_to not in BLIND:
            raise ValueError(f"blind_to: one of {BLIND}, not {blind_to!r}")
        if role == "quality" and not better:
            raise ValueError(f"{name}: a quality key says which direction is better")
        key = super().__new__(cls, name)
        key.label, key.fmt, key.better, key.role, key.note, key.scale = label, fmt, better, role, note, scale
        key.blind_to = blind_to
        return key

    def __reduce__(self):
        return Key, (str(self), self.label, self.fmt, self.better, self.role, self.note, self.scale, self.blind_to)

    @property
    def short(self) -> str:
        return self.split("/", 1)[1]

    def describe(self) -> dict[str, Any]:
        # blind_to only where declared: the contracts of every other key stay as they were written
        return {"label": self.label, "fmt": self.fmt, "better": self.better, "role": self.role, "note": self.note,
                "scale": self.scale, **({"blind_to": self.blind_to} if self.blind_to else {})}
