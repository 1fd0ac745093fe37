"""The search part of a report, from search.parquet (Optuna's trials, flattened: params_*,
value, state, user_attrs_trial_ids) and search.json (direction and parameter importances,
computed when the search ran): files only, so a copied results folder reports the same."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pyarrow.parquet as pq
import seaborn as sns

from analysis.figures import save
from analysis.load import Results
from analysis.tables import metric_keys
from vi_contract import schema, yamlsafe
from vi_contract.files import open_location as _open
from vi_contract.read import read_checked
from vi_contract.searches import ATTRS, QUEUED, search_table


def load_search(locations: list[str]) -> tuple[pd.DataFrame, dict]:
    frames, meta = [], {}
    for location in locations:
        fs, root = _open(location)
        path = f"{root}/{schema.SEARCH_FILE}"
        if fs.get_file_info(path).type.name == "NotFound":
            continue
        frames.append(read_checked(fs, path, "search")[0])
        with fs.open_input_stream(f"{root}/{schema.SEARCH_META}") as f:
            info = json.loads(f.read())
        meta.update({name: info for name in info["studies"]})
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), meta


def best_table(search: pd.DataFrame, meta: dict, res: Results) -> pd.DataFrame:
    """Per search study: the best suggestion, its parameters, and the spread of its seeds."""
    rows = []
    done = search[search["state"] == "COMPLETE"]
    for name, g in done.groupby("search_study"):
        mode = meta[name]["mode"]
        best = g.loc[g["value"].idxmin() if mode == "min" else g["value"].idxmax()]
        ids = [i for i in str(best.get("user_attrs_trial_ids", "")).split(",") if i]
        seeds = res.trials[res.trials["trial_id"].isin(ids)]
        row = {"search_study": name, "trials": len(g), "best_trial": int(best["number"]), "objective": best["value"]}
        row.update({c.removeprefix("params_"): best[c] for c in g.columns if c.startswith("params_")})
        for metric in metric_keys(seeds, res.contract):
            vals = seeds[metric].dropna() if metric in seeds else pd.Series(dtype=float)
            if len(vals):
                short = metric.removeprefix("eval/")
                row.update({f"{short}_min": vals.min(), f"{short}_median": vals.median(), f"{short}_max": vals.max()})
        row["seeds"] = len(seeds)
        row["collapsed_seeds"] = int(seeds["collapsed"].sum()) if len(seeds) else 0
        rows.append(row)
    return pd.DataFrame(rows)


def history_figure(search: pd.DataFrame, meta: dict, x_param: str):
    """Per search study: the optimisation history, and the objective against one parameter
    (a log axis for a positive numeric parameter, categories for a categorical one)."""
    names = sorted(search["search_study"].unique())
    fig, axes = plt.subplots(2, len(names), figsize=(max(7.5, 4.6 * len(names)), 7.2), squeeze=False)
    palette = sns.color_palette("colorblind", 2)
    label = x_param.removeprefix("params_")
    for j, name in enumerate(names):
        g = search[(search["search_study"] == name) & (search["state"] == "COMPLETE")].sort_values("number")
        ax = axes[0, j]
        ax.set_title(f"optimisation history\n{name}", fontsize=9)
        if g.empty:
            ax.text(0.5, 0.5, "no completed trial", ha="center", va="center", transform=ax.transAxes)
            axes[1, j].axis("off")
            continue
        best = g["value"].cummin() if meta[name]["mode"] == "min" else g["value"].cummax()
        ax.plot(g["number"], g["value"], "o", color=palette[0], ms=4, label="trial (mean over seeds)")
        ax.plot(g["number"], best, "-", color=palette[1], label="best so far")
        ax.set_xlabel("Optuna trial")
        ax.set_ylabel("objective")
        ax = axes[1, j]
        x = g[x_param]
        numeric = pd.api.types.is_numeric_dtype(x)
        if not numeric:
            cats = sorted(x.astype(str).unique())
            x = x.astype(str).map(cats.index)
            ax.set_xticks(range(len(cats)), cats)
        ax.scatter(x, g["value"], c=g["number"], cmap="cividis", s=22)
        log = numeric and bool((x > 0).all())
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(label + (" (log scale)" if log else ""))
        ax.set_ylabel("objective")
        ax.set_title(f"objective against {label} (colour: trial order)", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def importance_figure(meta: dict):
    """Optuna's parameter importances of every search study that searched several keys, as
    computed when the search ran (search.json); None when there are none."""
    found = {name: info["importances"][name] for name, info in meta.items() if name in info.get("importances", {})}
    if not found:
        return None
    fig, axes = plt.subplots(1, len(found), figsize=(max(7.5, 4.6 * len(found)), 3.2), squeeze=False)
    for ax, (name, values) in zip(axes[0], sorted(found.items()), strict=True):
        keys = sorted(values, key=values.get)
        ax.barh(keys, [values[k] for k in keys], color=sns.color_palette("colorblind", 1)[0])
        ax.set_xlabel("importance (share of the objective's variance)")
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return fig


def search_sections(locations: list[str], res: Results, out_dir: Path) -> list[tuple[str, str, object]]:
    search, meta = load_search(locations)
    if search.empty:
        return []
    sections = [("Search: best suggestion and the spread of its seeds", "", best_table(search, meta, res))]
    params = [c for c in search.columns if c.startswith("params_")]
    x_param = "params_lam" if "params_lam" in params else params[0]
    figs = {"search_history": history_figure(search, meta, x_param)}
    fig = importance_figure(meta)
    if fig is not None:
        figs["search_importances"] = fig
    for name, fig in figs.items():
        save(fig, out_dir / name, dpi=120)
    sections.append((f"Search: optimisation history and objective against {x_param.removeprefix('params_')}",
                     "search_history", None))
    if "search_importances" in figs:
        sections.append(("Search: parameter importances", "search_importances", None))
    return sections


def open_storage(location: str):
    """The Optuna storage of a search's results folder or export: the journal beside search.json
    where search.json names a relative file, else the URL it names (the driver's own storage).
    Needs Optuna; `optuna.load_study(study_name=NAME, storage=open_storage(FOLDER))`."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    fs, root = _open(location)
    with fs.open_input_stream(f"{root}/{schema.SEARCH_META}") as f:
        info = json.loads(f.read())
    url = info["storage"]
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise FileNotFoundError(f"{url}: not on this machine")  # RDBStorage would create an empty one there
    if "://" in url:
        return optuna.storages.RDBStorage(url) if url.split(":", 1)[0].startswith(("sqlite", "postgresql", "mysql")) else url
    if "://" in location:
        raise ValueError(f"{location}: a journal file on object storage; copy the folder locally first")
    path = Path(location) / url
    if not path.is_file():  # JournalFileBackend would create an empty one
        raise FileNotFoundError(f"{path}: the search's Optuna journal is not there")
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def space_distributions(study_text: str) -> dict:
    """Optuna's distributions of a study file's `search.space` (as vi_sweeps.sweep.search builds them)."""
    import optuna

    out = {}
    for key, e in ((yamlsafe.safe_load(study_text) or {}).get("search") or {}).get("space", {}).items():
        if e["type"] == "categorical":
            out[key] = optuna.distributions.CategoricalDistribution(e["choices"])
        elif e["type"] == "int":
            out[key] = optuna.distributions.IntDistribution(int(e["low"]), int(e["high"]))
        else:
            out[key] = optuna.distributions.FloatDistribution(float(e["low"]), float(e["high"]),
                                                              log=e["type"] == "loguniform")
    return out


def rebuild_journal(search: pd.DataFrame, meta: dict, study_text: str, path: Path) -> None:
    """An Optuna journal at `path` holding the studies of search.parquet, rebuilt with Optuna's
    own API (create_trial, add_trial): every trial's number order, state, value, parameters,
    user_attrs trial_ids and datetimes. For a search whose storage did not travel with it."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    distributions = space_distributions(study_text)
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    direction = "minimize" if meta.get("mode") == "min" else "maximize"
    states = {s.name: s for s in optuna.trial.TrialState}
    if "search_study" not in search:  # no suggestion yet: the studies alone
        search = pd.DataFrame({"search_study": [], "number": []})
    for name in meta["studies"]:
        study = optuna.create_study(study_name=name, storage=storage, direction=direction)
        for row in search[search["search_study"] == name].sort_values("number").to_dict("records"):
            state = states[str(row["state"]).removeprefix("TrialState.")]
            if isinstance(row.get(ATTRS), str) and row[ATTRS]:
                attrs = json.loads(row[ATTRS])
            else:  # a table written before attrs_json: the trial ids alone
                attrs = {"trial_ids": [i for i in str(row.get("user_attrs_trial_ids") or "").split(",") if i]}
            queued = row.get(QUEUED)
            if state == optuna.trial.TrialState.WAITING and isinstance(queued, str) and queued:
                study.enqueue_trial(json.loads(queued), user_attrs=attrs)  # queued again, its values fixed
                continue
            params = {k.removeprefix("params_"): v for k, v in row.items() if k.startswith("params_") and v == v}
            trial = optuna.trial.create_trial(
                state=state, value=row["value"] if state == optuna.trial.TrialState.COMPLETE else None,
                params=params, distributions={k: distributions[k] for k in params}, user_attrs=attrs)
            for attr in ("datetime_start", "datetime_complete"):
                value = row.get(attr)
                setattr(trial, attr, None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime())
            study.add_trial(trial)


def export_storage(location: str, out: Path) -> str:
    """The search of `location` as an Optuna journal in `out` (copied with optuna.copy_study
    from its storage, or rebuilt from search.parquet where that storage is not reachable), and
    search.json rewritten to name it relative to `out`. Returns how it was made."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not an info line per copied study on the terminal
    meta = json.loads((out / schema.SEARCH_META).read_text())
    target = out / schema.JOURNAL_FILE
    how = "copied"
    try:
        source = open_storage(location)
        names = set(optuna.get_all_study_names(source))
        if not set(meta["studies"]) <= names:
            raise KeyError(sorted(set(meta["studies"]) - names))
        to = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(target)))
        for name in meta["studies"]:
            optuna.copy_study(from_study_name=name, from_storage=source, to_storage=to)
    except Exception:  # noqa: BLE001 - a storage on another machine, gone, or of another Optuna: rebuild
        target.unlink(missing_ok=True)
        search, _ = load_search([str(out)])
        rebuild_journal(search, meta, (out / schema.STUDY_FILE).read_text(), target)
        how = "rebuilt from search.parquet"
    else:  # the table of what the journal holds: a live search may have finished a suggestion since
        table = search_table(to, meta["studies"])  # search.parquet was copied
        if table is not None:
            pq.write_table(table, out / schema.SEARCH_FILE)
    meta.setdefault("storage_as_run", meta["storage"])
    meta.update(storage=schema.JOURNAL_FILE, storage_made=how)
    (out / schema.SEARCH_META).write_text(json.dumps(meta))
    return how
