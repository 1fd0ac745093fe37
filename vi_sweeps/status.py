"""`vi-sweep status`: what a sweep has done, read from its files alone (no Ray needed)."""

from __future__ import annotations

from collections import Counter

import yaml

from analysis import schema
from vi_sweeps.storage import Store


def sweep_status(location: str) -> str:
    store = Store.open(location)
    if not store.exists(schema.STUDY_FILE):
        return f"{location}: no study.yaml, not a results folder"
    spec = yaml.safe_load(store.read_bytes(schema.STUDY_FILE))
    lines = [f"study {spec.get('name')} in {location}"]
    statuses, running, collapsed = Counter(), [], 0
    for name in store.listdir("trials"):
        table = store.read_table(f"trials/{name}")
        last = table.slice(len(table) - 1).to_pylist()[0]
        statuses[last["status"]] += 1
        collapsed += bool(last["collapsed"]) and last["status"] in schema.FINISHED
        if last["status"] == "running":
            running.append(f"  {last['trial_id']}  step {last['step']}/{last['iterations']}")
    errors = len(store.listdir("errors"))
    try:
        from vi_sweeps.study import load_study_text

        total = len(load_study_text(store.read_bytes(schema.STUDY_FILE).decode(), store.path(schema.STUDY_FILE)).trials)
    except Exception:  # a study file that no longer validates still has readable results
        total = None
    done = statuses["finished"] + statuses["diverged"]
    lines.append(f"trials: {done}/{total if total is not None else '?'} done "
                 f"({statuses['finished']} finished, {statuses['diverged']} diverged, {collapsed} collapsed), "
                 f"{statuses['running']} in progress, {statuses['pruned']} pruned, {errors} errors")
    lines += running
    return "\n".join(lines)
