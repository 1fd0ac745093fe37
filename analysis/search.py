"""The search part of a report, from search.parquet (Optuna's trials, flattened: params_*,
value, state, user_attrs_trial_ids) and search.json (direction and parameter importances,
computed when the search ran): files only, so a copied results folder reports the same."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from analysis import schema
from analysis.contract import open_location as _open
from analysis.figures import save
from analysis.load import Results, read_checked
from analysis.tables import metric_keys


def load_search(locations: list[str]) -> tuple[pd.DataFrame, dict]:
    frames, meta = [], {}
    for location in locations:
        fs, root = _open(location)
        path = f"{root}/{schema.SEARCH_FILE}"
        if fs.get_file_info(path).type.name == "NotFound":
            continue
        frames.append(read_checked(fs, path, ("search_study", "number", "value", "state"))[0])
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



