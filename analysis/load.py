"""Read one or more results folders (local paths or URIs) into two frames and the contract
that says what they mean. Each folder is read by vi_contract.read (every schema version, the
shims, skipped files named); this module combines folders.

Folders are combined by identity, never by appearance. Folders of different studies, or of
different compare axes, are refused in one line (each has its own comparison: report them
apart). A config key that one folder lacks (written before the key existed) is filled with the
key's documented default, declared in the other folders' contract; with no declaration it stays
empty and forms its own condition, never merged. A key that sets folders apart beyond the
study's axes (a run with --set lr=...) becomes an axis of the combined results, so trials of
different settings never share a condition. A trial in several folders is taken once: the
finished copy, else the one furthest on; two finished copies whose rows differ are refused.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vi_contract import schema
from vi_contract.columns import condition_columns, name_of, suggested
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
    check_one_study(locations, trials, sources)
    contract = merge_contracts([s["contract"] for s in sources])
    trials = fill_defaults(trials, contract, notes) if len(trials) > 1 else trials
    # a trial in several folders: the finished copy, else the one furthest on; its metrics whole
    trials = [t.assign(_source=i) for i, t in enumerate(trials)]
    metrics = [m.assign(_source=i) for i, m in enumerate(metrics)]
    check_same_rows(locations, pd.concat(trials, ignore_index=True), pd.concat(metrics, ignore_index=True))
    ranked = pd.concat(trials, ignore_index=True)
    ranked = ranked.assign(_done=ranked["status"].isin(schema.FINISHED)).sort_values(
        ["_done", "steps_done", "_source"], ascending=[False, False, False], kind="stable")
    all_trials = ranked.drop_duplicates("trial_id", keep="first").drop(columns="_done")
    chosen = dict(zip(all_trials["trial_id"], all_trials["_source"], strict=True))
    where = {tid: locations[i] for tid, i in chosen.items()}
    all_metrics = pd.concat(metrics, ignore_index=True)
    all_metrics = all_metrics[all_metrics["trial_id"].map(chosen) == all_metrics["_source"]]
    if len(locations) > 1:
        contract = with_identity_axes(all_trials, contract, locations, notes)
    all_trials = all_trials.drop(columns="_source").sort_values(["study", "trial_id"], kind="stable")
    all_metrics = all_metrics.drop(columns="_source")
    if warn:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    return Results(all_trials.reset_index(drop=True), all_metrics.reset_index(drop=True), sources, contract, notes, where)


NOT_A_CONDITION = ("seed", "pack_size", "pack_index")  # what varies within a condition: its seeds and their places


def study_of(trials: pd.DataFrame, source: dict) -> tuple[str, str]:
    """(study name, what it compares) of one folder, as its contract (else its trials) records."""
    contract = source["contract"]
    names = sorted(set(trials["study"].dropna().astype(str))) if "study" in trials else []
    name = contract.get("study") or ", ".join(names) or "?"
    compare = contract.get("compare") or schema.default_compare(contract.get("axes") or [])
    shown = f"{compare['axis']} against {compare['baseline']!r}" if compare else "nothing"
    return name, shown


def check_one_study(locations: list[str], trials: list[pd.DataFrame], sources: list[dict]) -> None:
    """Folders of different studies or compare axes are refused: each has its own comparison,
    and one combined report would keep only the first's."""
    seen = [(loc, *study_of(t, s)) for loc, t, s in zip(locations, trials, sources, strict=True)]
    for loc, name, compare in seen[1:]:
        if (name, compare) != seen[0][1:]:
            raise ResultsError(f"{loc} holds study {name!r} comparing {compare}, {seen[0][0]} study {seen[0][1]!r} "
                               f"comparing {seen[0][2]}: a report compares within one study, so report each on its own")
    searched = {loc: bool(suggested(t).any()) for loc, t in zip(locations, trials, strict=True) if len(t)}
    if len(set(searched.values())) > 1:  # a protocol's tuning beside its test compared tuned and tested arms as one
        loc, other = (next(k for k, v in searched.items() if v is kind) for kind in (True, False))
        raise ResultsError(f"{loc} holds a search's trials (a protocol's tuning or `vi-sweep tune`'s) and {other} "
                           "trials of the study's own settings: report each on its own (a protocol's report draws its "
                           "tuning from RESULTS/tune)")


def result_rows(metrics: pd.DataFrame, tid: str, source: int, columns: list[str]) -> np.ndarray:
    rows = metrics[(metrics["trial_id"] == tid) & (metrics["_source"] == source)].sort_values("step", kind="stable")
    return rows[columns].astype("float64").to_numpy()


def check_same_rows(locations: list[str], trials: pd.DataFrame, metrics: pd.DataFrame) -> None:
    """A trial finished in several folders is counted once, and only if its rows are equal (the
    same id names the same numbers; its wall time aside): else one line naming it."""
    done = trials[trials["status"].isin(schema.FINISHED)]
    twice = done[done["trial_id"].duplicated(keep=False)]
    columns = ["step", "collapsed", "diverged", *sorted(c for c in metrics.columns if schema.is_result_key(c))]
    for tid, copies in twice.groupby("trial_id"):
        first, *others = list(copies["_source"])
        rows = result_rows(metrics, tid, first, columns)
        for other in others:
            if not np.array_equal(rows, result_rows(metrics, tid, other, columns), equal_nan=True):
                raise ResultsError(f"trial {tid} is finished in {locations[first]} and in {locations[other]} with "
                                   "different rows: one trial id names one sequence of numbers, so report them apart")


def with_identity_axes(trials: pd.DataFrame, contract: dict, locations: list[str], notes: list[str]) -> dict:
    """The contract with every experiment key that sets folders' trials apart beyond the study's
    axes as an axis (one value per folder's condition, another in another folder's): the trial
    id's own definition keys a condition, never the axes alone. A key that varies within one
    folder's condition (a searched one) stays out."""
    axes = condition_columns(trials, contract)
    groups = [trials[c].astype(str) for c in axes] or [pd.Series(0, index=trials.index)]
    declared = contract.get("config") or {}
    extra = []
    for col in schema.setting_columns(trials.columns):
        key = name_of(col)
        if col in axes or not col.startswith(schema.CONFIG) or key in NOT_A_CONDITION or (declared.get(key) or {}).get("execution"):
            continue
        values = trials[col].astype(str)
        if values.groupby([*groups, trials["_source"]]).nunique().max() == 1 and values.groupby(groups).nunique().max() > 1:
            extra.append(key)
            per_folder = "; ".join(f"{locations[i]}: {', '.join(sorted(set(v)))}" for i, v in values.groupby(trials["_source"]))
            notes.append(f"the folders differ in {key} ({per_folder}): an axis of these results, so their trials "
                         "never share a condition")
    if not extra:
        return contract
    named = [a for a in contract.get("axes", []) if a != "seed"]
    return {**contract, "axes": [*named, *extra, "seed"]}
