"""Sample snapshots (samples/<trial_id>/<step>.npy or .png): reading them, choosing the
representative seeds of a condition (best, median, worst by the collapse rule's metric), and
drawing them as a grid of panels."""

from __future__ import annotations

import io
import posixpath
import textwrap

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
from PIL import Image, UnidentifiedImageError

from analysis.figures import plt  # the Agg backend and the report's style
from vi_contract import schema
from vi_contract.columns import config
from vi_contract.files import open_location
from vi_contract.rules import RuleError, collapse_rule


def snapshot_steps(location: str, trial_id: str) -> dict[int, str]:
    """{step: path} of a trial's snapshots (none for an id that is not one folder name: a crafted
    table's `../x` would read, and export would write, outside the folders)."""
    if trial_id != posixpath.basename(trial_id) or trial_id.strip(".") == "" or "\\" in trial_id:
        return {}
    fs, root = open_location(location)
    folder = posixpath.join(root, schema.SAMPLES_DIR, trial_id)
    out = {}
    for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
        name = posixpath.basename(info.path)
        stem, _, suffix = name.partition(".")
        if info.type == pafs.FileType.File and stem.isdigit() and suffix in ("npy", "png"):
            out[int(stem)] = info.path
    return dict(sorted(out.items()))


def read_snapshot(location: str, path: str) -> np.ndarray | bytes | None:
    """2-D points as an (n, 2) array, or an image grid as PNG bytes; None for a snapshot that
    cannot be read or is not one (its panel is left empty)."""
    fs, _ = open_location(location)
    try:
        with fs.open_input_stream(path) as f:
            data = f.read()
        if not path.endswith(".npy"):
            return data
        points = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return points if points.ndim == 2 and points.shape[1] == 2 else None


def rule_metric(rule: str) -> tuple[str, bool]:
    """The metric a collapse rule reads, and whether higher is better for it (a rule that does
    not parse: this project's default, modes_frac)."""
    try:
        parsed = collapse_rule(rule)
    except RuleError:
        return "eval/modes_frac", True
    return parsed.metric, parsed.higher_is_better


def representatives(group: pd.DataFrame, quality: str | None) -> list[tuple[str, pd.Series]]:
    """(best, median, worst) trials of one condition by the collapse rule's metric (ties
    broken by the quality metric); a diverged trial ranks last."""
    metric, higher_better = rule_metric(str(group[config("collapse_rule")].iloc[0]))
    g = group.assign(_dead=group["diverged"].astype(bool))
    keys, ascending = ["_dead"], [True]
    if metric in g:
        keys.append(metric)
        ascending.append(not higher_better)
    if quality and quality in g:
        keys.append(quality)
        ascending.append(True)
    keys.append(config("seed"))
    ascending.append(True)
    ranked = g.sort_values(keys, ascending=ascending, na_position="last").reset_index(drop=True)
    picks = [("best", 0), ("median", (len(ranked) - 1) // 2), ("worst", len(ranked) - 1)]
    seen, out = set(), []
    for name, i in picks:
        if i not in seen:
            seen.add(i)
            out.append((name, ranked.iloc[i]))
    return out


def sample_panels(res, labelled: pd.DataFrame, order: list[str], compare: str | None,
                  quality_of) -> dict[tuple[str, str], tuple[list, list]]:
    """Per (model, data set): the final-sample panels (best, median and worst seed of every
    condition) and the evolution strips (the median seed across at most 9 evaluations), each
    a list of (row label, [(caption, location, snapshot path or None)]). The report draws
    them; `vi-sweep export` keeps exactly these snapshots."""
    out = {}
    done = labelled[labelled["status"].isin(schema.FINISHED)]
    for (model, dataset), facet in done.groupby(["model", "dataset"], sort=True):
        quality = quality_of(facet, res.contract.get("keys", {}))
        finals, strips = [], []
        for (regime, treatment), group in sorted(facet.groupby(["regime", "treatment"]),
                                                 key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
            label = f"{regime}\n{compare or ''} {treatment}".strip()
            reps = representatives(group, quality)
            cells = []
            for name, row in reps:
                loc = res.locations.get(row["trial_id"])
                steps = snapshot_steps(loc, row["trial_id"]) if loc else {}
                cells.append((f"{name} (seed {int(row[config('seed')])})", loc, steps[max(steps)] if steps else None))
            finals.append((label, cells))
            median = reps[len(reps) // 2][1]
            loc = res.locations.get(median["trial_id"])
            steps = snapshot_steps(loc, median["trial_id"]) if loc else {}
            picked = list(steps)[:: max(1, -(-len(steps) // 8))]
            if steps and picked[-1] != max(steps):
                picked.append(max(steps))
            strips.append((label, [(f"step {s}", loc, steps[s]) for s in picked]))
        out[(model, dataset)] = (finals, strips)
    return out


def scatter_panel(ax, points: np.ndarray, centres: np.ndarray, sigma: float, lim: float) -> None:
    """2-D samples over the true modes with their 3-sigma acceptance circles, on fixed axes: a
    sample within 3 sigma of its nearest mode (what the mode metrics count) in blue, any other in
    grey; a sample beyond the axes' limits is drawn at the edge as a red triangle and counted in
    the corner, never dropped silently."""
    for c in centres:
        ax.add_patch(plt.Circle(c, 3 * sigma, fill=False, color="#d55e00", lw=0.8))
    ax.scatter(centres[:, 0], centres[:, 1], s=6, color="#d55e00", marker="x", lw=0.8)
    finite = np.isfinite(points).all(1)
    shown = points[finite]
    counted = np.zeros(len(shown), dtype=bool)
    if len(centres) and sigma > 0 and len(shown):
        d2 = ((shown[:, None, :] - centres[None, :, :]) ** 2).sum(-1).min(1)
        counted = d2 <= (3 * sigma) ** 2
    outside = (np.abs(shown) > lim).any(1)
    inside = shown[~outside]
    # rasterized: an SVG of a few hundred panels of 1,000 points each stays small (a picture in the SVG)
    for mask, colour in ((~counted[~outside], "0.55"), (counted[~outside], "#0072b2")):
        ax.scatter(inside[mask, 0], inside[mask, 1], s=1.5, alpha=0.5, color=colour, linewidths=0, rasterized=True)
    if outside.any() or not finite.all():
        edge = np.clip(shown[outside], -0.97 * lim, 0.97 * lim)
        ax.scatter(edge[:, 0], edge[:, 1], s=7, marker="^", color="#cc0000", linewidths=0)
        ax.text(0.03, 0.03, f"{int(outside.sum()) + int((~finite).sum())} off the axes", transform=ax.transAxes,
                fontsize=6, color="#cc0000")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _image(png: bytes) -> np.ndarray | None:
    try:
        return np.asarray(Image.open(io.BytesIO(png)))
    except (UnidentifiedImageError, OSError):
        return None  # an unreadable snapshot: its panel says so


def sample_grid(rows: list[tuple[str, list[tuple[str, object]]]], geometry: dict, title: str):
    """A grid of sample panels: one row per condition, one column per (caption, sample)."""
    ncol = max(len(cells) for _, cells in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.9 * ncol + 2.2, 1.9 * len(rows) + 0.8), squeeze=False)
    centres = np.asarray(geometry.get("centres", []), dtype=float)
    lim = (np.abs(centres).max() + 1.0) if len(centres) else 1.0
    for i, (label, cells) in enumerate(rows):
        for j in range(ncol):
            ax = axes[i, j]
            if j >= len(cells):
                ax.axis("off")
                continue
            caption, sample = cells[j]
            img = _image(sample) if isinstance(sample, bytes) else None
            if isinstance(sample, np.ndarray) and sample.ndim == 2 and sample.shape[1] == 2:
                scatter_panel(ax, sample.astype(np.float64), centres, geometry.get("sigma", 0.0), lim)
            elif img is not None:
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.text(0.5, 0.5, "no snapshot", ha="center", va="center", fontsize=7, transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(caption, fontsize=7)
            if j == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if len(centres):
        legend = ("circles: each mode's 3-sigma acceptance radius; blue: samples the mode metrics count, "
                  "grey: outside every circle; red triangles: beyond the axes")
        title += "\n" + textwrap.fill(legend, int(fig.get_figwidth() * 13))
    fig.suptitle(title, fontsize=10 if len(centres) == 0 else 9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig
