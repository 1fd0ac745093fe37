"""A tune-then-test protocol's report sections (vi_sweeps.sweep.protocol wrote the files): the
setting each arm and cell was tested with, the budget each arm's search received, and the
tuning history, from RESULTS/protocol.json and RESULTS/tune/search.parquet."""

from __future__ import annotations

import json

import pandas as pd

from analysis.search import load_search
from vi_contract import schema
from vi_contract.files import open_location


def read_protocol(location: str) -> dict | None:
    """The folder's protocol record (plain JSON: nothing in it runs), or None."""
    fs, root = open_location(location)
    path = f"{root}/{schema.PROTOCOL_FILE}"
    if fs.get_file_info(path).type.name == "NotFound":
        return None
    with fs.open_input_stream(path) as f:
        record = json.loads(f.read())
    return record if isinstance(record, dict) and isinstance(record.get("chosen"), dict) else None


def chosen_table(record: dict, search: pd.DataFrame) -> pd.DataFrame:
    """One row per arm and cell: its search, the values its test trials use, its budget, and its
    tuning scores (best, median of the suggestions)."""
    rows = []
    for chosen in record["chosen"].values():
        name = chosen["search"]
        g = search[(search["search_study"] == name) & (search["state"] == "COMPLETE")] if len(search) else search
        row = {"cell": name.rsplit("/", 1)[0], "arm": chosen["arm"],
               "chosen": ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                                   for k, v in sorted(chosen.items()) if k not in ("arm", "search")),
               "suggestions": record["budgets"].get(name, len(g))}
        if len(g):
            row.update({"best score": g["value"].max() if record.get("mode", "max") == "max" else g["value"].min(),
                        "median score": g["value"].median()})
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["cell", "arm"], ignore_index=True) if rows else pd.DataFrame()


def protocol_sections(locations: list[str]) -> list[tuple[str, str, object]]:
    sections = []
    for location in locations:
        record = read_protocol(location)
        if record is None:
            continue
        search, _ = load_search([f"{location.rstrip('/')}/tune"])
        table = chosen_table(record, search)
        budgets = sorted(set(record["budgets"].values()))
        said = (f"Every arm of every cell was tuned with the same budget: {budgets[0]} suggestions on the same tuning "
                "seeds, scored on the claim's endpoint; its best setting was then tested on seeds no tuning saw."
                if len(budgets) == 1 else f"Unequal tuning budgets ({', '.join(map(str, budgets))} suggestions): "
                "the comparison is not on equal terms.")
        sections += [("Tune-then-test protocol: the setting each arm was tested with", "", [said]),
                     ("Tune-then-test protocol: chosen settings and tuning budgets", "", table)]
    return sections
