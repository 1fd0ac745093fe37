"""Read one or more results folders (local paths or URIs) into two frames and the contract
that says what they mean. Each folder is read by vi_contract.read (every schema version, the
shims, skipped files named); this module combines folders.

When folders are combined, a config key that one folder lacks (written before the key
existed) is filled with the key's documented default, declared in the other folders'
contract; with no declaration it stays empty and forms its own condition, never merged. A
trial in several folders is taken once: the finished copy, else the one furthest on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import pandas as pd

from vi_contract import schema
from vi_contract.columns import name_of
from vi_contract.read import ResultsError, load_location


@dataclass
class Results:
    trials: pd.DataFrame
    metrics: pd.DataFrame
    sources: list[dict] = field(default_factory=list)  # per folder: location, study text, versions
    contract: dict = field(default_factory=dict)  # merged over folders
    notes: list[str] = field(default_factory=list)  # what the reader did (skipped files, filled keys)
    locations: dict[str, str] = field(default_factory=dict)  # trial_id -> the folder it came from


def merge_contracts(contracts: list[dict]) -> dict:
    merged: dict = {"axes": [], "labelled": {}, "compare": None, "config": {}, "keys": {}, "datasets": {}}
    for c in contracts:
        merged["axes"] += [a for a in c.get("axes", []) if a not in merged["axes"]]
        merged["compare"] = merged["compare"] or c.get("compare")
        for section in ("labelled", "config", "keys", "datasets"):
            value = c.get(section)
            merged[section].update(value if isinstance(value, dict) else {})  # a hand-made contract may hold anything
    if merged["axes"] and "seed" in merged["axes"]:
        merged["axes"] = [a for a in merged["axes"] if a != "seed"] + ["seed"]
    return merged


def fill_defaults(frames: list[pd.DataFrame], contract: dict, notes: list[str]) -> list[pd.DataFrame]:
    """Give every frame every config column another frame has: the declared default, or
    nothing (its own condition) where no contract declares one."""
    columns = [c for f in frames for c in schema.setting_columns(f.columns)]
    columns = list(dict.fromkeys(columns))
    out = []
    for i, frame in enumerate(frames):
        frame = frame.copy()
        for col in columns:
            if col in frame:
                continue
            decl = contract.get("config", {}).get(name_of(col)) if col.startswith(schema.CONFIG) else None
            frame[col] = decl["default"] if decl else None
            notes.append(f"results folder {i + 1}: no `{col}` column; "
                         + (f"filled with its documented default {decl['default']!r}" if decl else
                            "no documented default, so its trials form their own condition"))
        out.append(frame)
    return out


def load_results(locations: list[str], warn: bool = True) -> Results:
    trials, metrics, sources, notes = [], [], [], []
    for location in locations:
        try:
            t, m, source, n = load_location(location)
        except OSError as err:  # a folder or file this user may not read, a store that refuses
            raise ResultsError(f"{location}: cannot be read ({getattr(err, 'strerror', None) or err})") from None
        trials.append(t)
        metrics.append(m)
        sources.append(source)
        notes += n
    contract = merge_contracts([s["contract"] for s in sources])
    trials = fill_defaults(trials, contract, notes) if len(trials) > 1 else trials
    # a trial in several folders: the finished copy, else the one furthest on; its metrics whole
    trials = [t.assign(_source=i) for i, t in enumerate(trials)]
    metrics = [m.assign(_source=i) for i, m in enumerate(metrics)]
    ranked = pd.concat(trials, ignore_index=True)
    ranked = ranked.assign(_done=ranked["status"].isin(schema.FINISHED)).sort_values(
        ["_done", "steps_done", "_source"], ascending=[False, False, False], kind="stable")
    all_trials = ranked.drop_duplicates("trial_id", keep="first").drop(columns="_done")
    chosen = dict(zip(all_trials["trial_id"], all_trials["_source"], strict=True))
    where = {tid: locations[i] for tid, i in chosen.items()}
    all_metrics = pd.concat(metrics, ignore_index=True)
    all_metrics = all_metrics[all_metrics["trial_id"].map(chosen) == all_metrics["_source"]]
    all_trials = all_trials.drop(columns="_source").sort_values(["study", "trial_id"], kind="stable")
    all_metrics = all_metrics.drop(columns="_source")
    if warn:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    return Results(all_trials.reset_index(drop=True), all_metrics.reset_index(drop=True), sources, contract, notes, where)
