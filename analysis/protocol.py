"""A tune-then-test protocol's report sections (vi_sweeps.sweep.protocol wrote the files): the
setting each arm and cell was tested with, the budget each arm's search received, and the
tuning history, from RESULTS/protocol.json and RESULTS/tune/search.parquet."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import yaml

from analysis.figures import plt, save
from analysis.load import load_results
from analysis.search import load_search
from vi_contract import schema, yamlsafe
from vi_contract.endpoints import tuned_metric
from vi_contract.files import open_location, subfolder
from vi_contract.read import ResultsError
from vi_contract.tables import pack_hours


def read_protocol(location: str) -> dict | None:
    """The folder's protocol record (plain JSON: nothing in it runs), or None."""
    fs, root = open_location(location)
    path = f"{root}/{schema.PROTOCOL_FILE}"
    if fs.get_file_info(path).type.name == "NotFound":
        return None
    with fs.open_input_stream(path) as f:
        record = json.loads(f.read())
    return record if isinstance(record, dict) and isinstance(record.get("chosen"), dict) else None


def scored_on(location: str, record: dict) -> str:
    """What a suggestion's score is: the record's metric (or, in a record written before it held
    one, the tuning claim's endpoint's metric, from the study as run), averaged over the tuning seeds."""
    metric = record.get("metric")
    if not metric:
        try:
            fs, root = open_location(location)
            with fs.open_input_stream(f"{root}/{schema.STUDY_FILE}") as f:
                study = yamlsafe.safe_load(f.read().decode()) or {}
            tune = study["protocol"]["tune"]
            metric = (tune.get("objective") or {}).get("metric") or tuned_metric(next(
                c["primary"]["endpoint"] for c in study["claims"] if tune.get("claim") in (None, c["id"])))
        except (OSError, KeyError, TypeError, StopIteration, AttributeError, IndexError, ValueError, yaml.YAMLError):
            return "the score"
    return f"mean {metric} over the {len(record.get('tuning_seeds') or [])} tuning seeds"


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


def history_figure(record: dict, search: pd.DataFrame, score: str = "the score"):
    """Per cell, each arm's best score so far against its suggestion number: equal budgets are
    lines of equal length; a line still rising at its end had more to find."""
    arm_of = {c["search"]: c["arm"] for c in record["chosen"].values()}
    done = search[(search["state"] == "COMPLETE") & search["search_study"].isin(arm_of)].copy()
    def cell(name: str) -> str:  # study/model/dataset/labels.../id8 without the study, the arm and the id
        parts = name.split("/")[1:-1]
        arm = arm_of[name]
        return "/".join(parts[:len(parts) - 1 - parts[::-1].index(arm)] + parts[len(parts) - parts[::-1].index(arm):]
                        if arm in parts else parts)

    done["cell"] = done["search_study"].map(cell)
    cells = sorted(done["cell"].unique())
    cols = min(3, len(cells)) or 1
    rows = -(-len(cells) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 0.6, 3.0 * rows + 1.0), squeeze=False, layout="constrained")
    better = max if record.get("mode", "max") == "max" else min
    for ax, cell in zip(axes.flat, cells, strict=False):
        for name, g in done[done["cell"] == cell].groupby("search_study"):
            g = g.sort_values("number")
            best = g["value"].cummax() if better is max else g["value"].cummin()
            ax.plot(range(1, len(g) + 1), best, marker="o", ms=3, lw=1.2, label=arm_of[name])
        ax.set_title(cell, fontsize=8)
        ax.set_xlabel("suggestion")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(textwrap.fill(f"best {score} so far", 34), fontsize=7)
        ax.legend(fontsize=6.5, title="arm", title_fontsize=7)
    for ax in list(axes.flat)[len(cells):]:
        ax.axis("off")
    fig.suptitle(textwrap.fill("Tuning history: each arm's best score so far (every arm the same number of suggestions)",
                               int(fig.get_figwidth() * 11)), fontsize=10)
    return fig


def compute_text(tune: str, test: pd.DataFrame) -> str:
    """The compute of tuning and of testing, in the packs' wall-time hours."""
    try:
        tuned = load_results([tune], warn=False).trials
    except (ResultsError, OSError):
        tuned = test.iloc[:0]
    (h1, n1), (h2, n2) = pack_hours(tuned), pack_hours(test)
    return (f"Compute: tuning {h1:.2f} pack-hours ({n1} packs), testing {h2:.2f} pack-hours ({n2} packs): the "
            "sums of the packs' training wall times, each pack one Ray trial with the study's resources (its cores).")


def protocol_sections(locations: list[str], res=None, out_dir: Path | None = None) -> list[tuple[str, str, object]]:
    sections = []
    for location in locations:
        record = read_protocol(location)
        if record is None:
            continue
        tune = subfolder(location, schema.TUNE_DIR)
        search, _ = load_search([tune])
        table = chosen_table(record, search)
        budgets = sorted(set(record["budgets"].values()))
        score = scored_on(location, record)
        said = (f"Every arm of every cell was tuned with the same budget: {budgets[0]} suggestions on the same tuning "
                f"seeds, scored on the claim's endpoint ({score}); its best setting was then tested on seeds no "
                "tuning saw."
                if len(budgets) == 1 else f"Unequal tuning budgets ({', '.join(map(str, budgets))} suggestions): "
                "the comparison is not on equal terms.")
        if res is not None:
            said = [said, compute_text(tune, res.trials[res.trials["trial_id"].map(res.locations) == location])]
        else:
            said = [said]
        sections += [("Tune-then-test protocol: the setting each arm was tested with", "", said),
                     ("Tune-then-test protocol: chosen settings and tuning budgets", "", table)]
        if out_dir is not None and len(search):
            save(history_figure(record, search, score), out_dir / "protocol_history", dpi=110)
            sections.append(("Tune-then-test protocol: tuning history", "protocol_history", None))
    return sections
