"""`vi-sweep status`: what a sweep has done, read from its files alone (no Ray, nothing
written): totals, the trials in progress, and progress per condition (every axis but the seed).
"""

from __future__ import annotations

import json
import socket

import pandas as pd
import yaml

from vi_contract import schema, yamlsafe
from vi_contract.columns import condition_columns, config, name_of
from vi_contract.files import subfolder
from vi_contract.lease import lease_pid, pid_alive, read_lease
from vi_contract.read import load_location, still_tuning
from vi_contract.store import Store
from vi_contract.tables import pack_hours, pack_of, setting_values
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.load import load_study_as_run
from vi_sweeps.study.protocol import chosen_values, frozen


def _expected(study_text: str, source: str, location: str = "") -> pd.DataFrame | None:
    """Every trial the study defines (id, axes); None if the study no longer validates, if it
    is a search (`vi-sweep tune`), whose trials are what its sampler suggested, or a protocol
    not yet tuned. A protocol's test trials carry the values its tuning chose (protocol.json)."""

    try:
        study = load_study_as_run(study_text, source)
        trials = study.trials
        if study.spec.protocol is not None:
            trials = _tested(study, location)
        rows = [{"trial_id": t.trial_id, **setting_values(t.config.model_dump(), t.labels)} for t in trials or []]
    except (ConfigError, OSError):
        return None
    return None if study.spec.search is not None or trials is None else pd.DataFrame(rows)


def _tested(study, location: str):
    """A protocol's test trials with their chosen values, or None before its tuning finished."""
    store = Store.open(location, create=False)
    if not store.exists(schema.PROTOCOL_FILE):
        return None
    try:
        return frozen(study.trials, chosen_values(json.loads(store.read_bytes(schema.PROTOCOL_FILE))))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _driver(location: str) -> dict | None:
    """The driver that holds the folder now (its lease), or None: then a trial still marked
    running was interrupted, and a re-run starts it again."""

    try:
        held = read_lease(Store.open(location, create=False))
    except OSError:
        return None
    if not held:
        return None
    if held.get("host") == socket.gethostname() and not pid_alive(lease_pid(held)):
        return None
    return held


def sweep_status(location: str, as_json: bool = False) -> str:
    tuning = tuning_status(location, as_json)
    if tuning is not None:
        return tuning
    trials, _, source, notes = load_location(location)
    if not source["study"]:
        raise FileNotFoundError(f"{location}: no {schema.STUDY_FILE}, not a results folder")
    expected = _expected(source["study"], subfolder(location, schema.STUDY_FILE), location)
    driver = _driver(location)
    contract = source["contract"]
    if driver is None and len(trials):
        trials = trials.assign(status=trials["status"].replace({"running": "interrupted"}))
    status = trials.set_index("trial_id")["status"] if len(trials) else pd.Series(dtype=str)
    if expected is not None and len(trials) and not trials["trial_id"].isin(expected["trial_id"]).all():
        # ids of another identity (a folder written before a schema or identity change): this
        # version's expansion names other trials, so only what the folder records is counted
        foreign = int((~trials["trial_id"].isin(expected["trial_id"])).sum())
        notes = [*notes, f"{foreign} of the {len(trials)} recorded trials are not trials of the study as this version "
                         "expands it (ids of an earlier identity): the counts are of the recorded trials"]
        expected = trials.drop(columns="status")
    table = expected if expected is not None else trials
    table = table.assign(status=table["trial_id"].map(status).fillna("pending")) if len(table) else \
        pd.DataFrame({"trial_id": [], "status": []})
    keys = condition_columns(table, contract)
    counts = table["status"].value_counts().to_dict()
    done = counts.get("finished", 0) + counts.get("diverged", 0)
    running = trials[trials["status"].isin(["running", "interrupted"])] if len(trials) else trials
    running = list(running[["trial_id", "steps_done", config("iterations")]].itertuples(index=False)) if len(running) else []
    per_condition = (table.assign(done=table["status"].isin(schema.FINISHED))
                     .groupby(keys, dropna=False, sort=True)
                     .agg(trials=("trial_id", "size"), done=("done", "sum"),
                          running=("status", lambda s: int(s.isin(["running", "interrupted"]).sum())),
                          errors=("status", lambda s: int((s == "error").sum())))
                     .reset_index().rename(columns=shown_name)) if keys else pd.DataFrame()
    if driver is None and len(per_condition):  # no driver: nothing runs; those trials were interrupted
        per_condition = per_condition.rename(columns={"running": "interrupted"})
    collapsed = int((trials["collapsed"].astype(bool) & trials["status"].isin(schema.FINISHED)).sum()) if len(trials) else 0
    summary = {"location": location, "study": (source["contract"] or {}).get("study") or _name(source["study"]),
               "total": len(table), "done": done, "finished": counts.get("finished", 0),
               "diverged": counts.get("diverged", 0), "collapsed": collapsed, "running": counts.get("running", 0),
               "interrupted": counts.get("interrupted", 0), "search": expected is None,
               "driver": {k: driver.get(k) for k in ("host", "pid")} if driver else None,
               "pruned": counts.get("pruned", 0), "errors": counts.get("error", 0), "pending": counts.get("pending", 0),
               "notes": notes}
    if as_json:
        summary["in_progress"] = [{"trial_id": tid, "step": int(step), "iterations": int(budget)}
                                  for tid, step, budget in running]
        summary["conditions"] = json.loads(per_condition.to_json(orient="records"))
        return json.dumps(summary, indent=1, default=str)
    by = f"driver {driver.get('host')}:{driver.get('pid')}" if driver else "no driver (stopped or finished)"
    in_progress = (f"{summary['running']} in progress" if driver else
                   f"{summary['interrupted']} interrupted (run the same command again to resume them)")
    total = f"{len(table)} suggested so far" if expected is None else f"{len(table)}"
    lines = [f"study {summary['study']} in {location}; {by}",
             f"trials: {done}/{total} done ({summary['finished']} finished, {summary['diverged']} diverged, "
             f"{collapsed} collapsed), {in_progress}, {summary['pruned']} pruned, "
             f"{summary['errors']} errors, {summary['pending']} not started"]
    lines += [f"  {tid}  step {step}/{budget}" for tid, step, budget in running]
    if len(per_condition):
        lines += ["per condition:", per_condition.to_string(index=False)]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def tuning_status(location: str, as_json: bool = False) -> str | None:
    """A tune-then-test protocol whose test trials have not started (RESULTS holds its searches
    in RESULTS/tune and no study file yet): each arm-and-cell search's completed suggestions
    against the budget; None for any other folder."""
    if not still_tuning(location):  # (load_location says what is wrong with a location, in one line)
        return None
    tune = subfolder(location, schema.TUNE_DIR)
    trials, _, source, notes = load_location(tune)
    study_file = subfolder(tune, schema.STUDY_FILE)
    try:
        study = load_study_as_run(source["study"], study_file)
    except ConfigError as err:
        raise FileNotFoundError(f"{study_file}: no longer validates ({err.problems[0]})") from None
    budget, seeds = study.spec.protocol.tune.trials, len(study.spec.protocol.tune.seeds)
    searches = pd.DataFrame([setting_values(t.config.model_dump(), t.labels) for t in study.trials])
    keys = condition_columns(searches, source["contract"])
    searches = searches[keys].drop_duplicates(ignore_index=True)
    driver = _driver(tune)
    if len(trials):
        # a suggestion is its pack (its seeds' ids name it; a resumed one gets a new Optuna number, its id stays)
        finished = trials[trials["status"].isin(schema.FINISHED)].groupby([*keys, "pack_id"], dropna=False).size()
        done = (finished == seeds).groupby(level=keys, dropna=False).sum().rename("done")
        open_ = trials[trials["status"] == "running"].groupby(keys, dropna=False)["pack_id"].nunique()
        searches = searches.merge(done.reset_index(), how="left").merge(open_.rename("running").reset_index(), how="left")
    searches = searches.reindex(columns=[*keys, "done", "running"]).fillna({"done": 0, "running": 0})
    searches["done"] = searches["done"].clip(upper=budget).astype(int)
    arm = next((k for k in keys if name_of(k) == study.spec.compare.axis), None)
    spent, left, levels = tuning_hours(trials, searches, keys, arm, budget, seeds)
    # a search at its budget runs nothing: a suggestion still marked running there was abandoned by a stopped driver
    searches["running"] = searches["running"].where(searches["done"] < budget, 0).astype(int)
    if driver is None:
        searches = searches.rename(columns={"running": "interrupted"})
    searches = searches.rename(columns=shown_name)
    at_budget = int((searches["done"] >= budget).sum())
    summary = {"location": location, "study": study.name, "phase": "tuning", "budget": budget, "tuning_seeds": seeds,
               "searches": len(searches), "at_budget": at_budget, "suggestions_done": int(searches["done"].sum()),
               "driver": {k: driver.get(k) for k in ("host", "pid")} if driver else None, "notes": notes,
               "pack_hours": round(spent, 3), "pack_hours_left_estimate": None if left is None else round(left, 3),
               "estimated_from": levels}
    if as_json:
        return json.dumps({**summary, "per_search": json.loads(searches.to_json(orient="records"))}, indent=1)
    by = f"driver {driver.get('host')}:{driver.get('pid')}" if driver else \
        "no driver (stopped: run the same command again to go on tuning)"
    lines = [f"study {study.name} in {location}: a tune-then-test protocol, tuning; {by}",
             f"searches: {at_budget}/{len(searches)} at their budget of {budget} suggestions ({seeds} tuning seeds "
             f"each); {summary['suggestions_done']}/{budget * len(searches)} suggestions done. The test trials start "
             f"when every search is at its budget ({tune} holds the searches)",
             f"compute: at least {spent:.2f} pack-hours so far (the packs' training wall times, each one Ray trial "
             "with the study's resources)" + ("" if left is None else
                                              f"; about {left:.1f} more for the suggestions left, each search's at the "
                                              "mean finished suggestion of " +
                                              ", ".join(f"{lv} ({n})" for lv, n in levels.items() if n)),
             "per search (an arm in a cell):", searches.to_string(index=False)]
    return "\n".join(lines + [f"note: {n}" for n in notes])


LEVELS = ("its own", "its cell's", "its later keys' (a regime's)", "every search's")  # where an estimate came from


def tuning_hours(trials: pd.DataFrame, searches: pd.DataFrame, keys: list[str], arm: str | None, budget: int,
                 seeds: int) -> tuple[float, float | None, dict[str, int]]:
    """(pack-hours spent, pack-hours left or None before any suggestion finished, how many searches
    were estimated at each of LEVELS): every pack that trained (pack_hours: at least, as the time
    after a stopped pack's last evaluation is not kept), and each search's suggestions still to run
    at the mean wall time of its own finished suggestions (packs whose `seeds` members all
    finished), else of its cell's (the other arms; `arm`, the compare axis' column), else of the
    searches sharing the cell's later keys (the study's axes, such as a regime, before the model
    and data set: the keys dropped from the front, the nearest first), else of all. A suggestion
    still running counts whole: an estimate, on the generous side."""
    spent, _ = pack_hours(trials)
    done = trials[trials["status"].isin(schema.FINISHED)] if len(trials) else trials
    if not len(done) or "wall_s" not in done:
        return spent, None, {}
    done = done.assign(pack_id=pack_of(done))
    packs = done.groupby([*keys, "pack_id"], dropna=False).agg(members=("trial_id", "size"), wall=("wall_s", "max"))
    packs = packs.loc[(packs["members"] == seeds) & packs["wall"].notna(), "wall"].reset_index()
    if not len(packs):
        return spent, None, {}
    cells = [k for k in keys if k != arm]
    est = searches[[*keys, "done"]].assign(mean=float("nan"), level=LEVELS[-1])
    for i, by in enumerate([keys, *(cells[j:] for j in range(len(cells)))]):
        found = est[by].merge(packs.groupby(by, dropna=False)["wall"].mean().rename("m").reset_index(), on=by,
                              how="left")["m"].to_numpy()  # (a merge matches a NaN setting to a NaN setting)
        new = est["mean"].isna() & pd.notna(found)
        est.loc[new, "mean"], est.loc[new, "level"] = found[new.to_numpy()], LEVELS[min(i, 2)]
    est["mean"] = est["mean"].fillna(packs["wall"].mean())
    left = float(((budget - est["done"]).clip(lower=0) * est["mean"]).sum())
    return spent, left / 3600, {level: int((est["level"] == level).sum()) for level in LEVELS}


COUNTS = ("trials", "done", "running", "errors", "interrupted")  # the per-condition counts beside the axes


def shown_name(column: str) -> str:
    """An axis's column by its study name; a count's name with " (axis)" (an axis may be called done)."""
    name = name_of(column)
    return f"{name} (axis)" if column != name and name in COUNTS else name


def _name(study_text: str) -> str:
    try:
        return str((yamlsafe.safe_load(study_text) or {}).get("name", "?"))
    except yaml.YAMLError:
        return "?"
