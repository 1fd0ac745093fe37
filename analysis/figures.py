"""Figures, one function each: frames in, a matplotlib Figure out. Panels are model x data
set; the x axis is the treatment (the study's compare axis, lam by default) as ordered
categories; colours, markers and dashes are regimes. Every metric figure shows each seed as a
dot beside its condition's median and (where n >= 5) bootstrap interval."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from analysis.tables import MIN_N_INTERVAL, RULES, compare_column  # noqa: E402
from vi_contract.columns import column_of, config  # noqa: E402

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", ":", "-.")

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
plt.rcParams["figure.max_open_warning"] = 0  # a report holds every figure until it saves them


def save(fig, base, dpi: int = 110) -> None:
    """`base`.png and `base`.svg, then the figure closed. The SVG is the same bytes for the same
    figure (no date, clip-path ids salted by the file's name), so a regenerated committed report
    changes in git only where a figure did (each regeneration rewrote 23 MB of SVG before)."""
    fig.savefig(f"{base}.png", dpi=dpi)
    with matplotlib.rc_context({"svg.hashsalt": Path(str(base)).name}):
        fig.savefig(f"{base}.svg", metadata={"Date": None})
    plt.close(fig)


def _panels(frame: pd.DataFrame, cols_key: str = "dataset", rows_key: str = "model", width: float = 4.4,
            height: float = 3.3, sharey: bool = False):
    rows, cols = sorted(frame[rows_key].unique()), sorted(frame[cols_key].unique())
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(max(7.5, width * len(cols) + 0.6), height * len(rows) + 1.4),
                             squeeze=False, sharey=sharey)
    panels = [(axes[i, j], frame[(frame[rows_key] == r) & (frame[cols_key] == c)], f"{r} · {c}")
              for i, r in enumerate(rows) for j, c in enumerate(cols)]
    return fig, panels


def _finish(fig, title: str, legend_title: str):
    handles, labels = {}, []
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
            if lab not in handles and not lab.startswith("_"):
                handles[lab] = h
                labels.append(lab)
    ncol = max(1, min(len(labels), int(fig.get_figwidth() // 3.4)))
    if handles:
        fig.legend([handles[lab] for lab in labels], labels, title=legend_title, loc="lower center",
                   ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
    width = int(fig.get_figwidth() * 11)  # characters that fit at fontsize 11
    title = "\n".join(textwrap.fill(line, width) for line in title.split("\n"))
    fig.suptitle(title, fontsize=11)
    legend_height = (0.35 + 0.28 * math.ceil(len(labels) / ncol)) / fig.get_figheight() if labels else 0.02
    fig.tight_layout(rect=(0, legend_height, 1, 1 - (0.2 + 0.25 * (title.count("\n") + 1)) / fig.get_figheight()))
    return fig


def _n_note(table: pd.DataFrame, column: str = "n") -> str:
    if column not in table:  # a metric no condition has a value of (every seed diverged)
        return "no values"
    ns = sorted(int(v) for v in table[column].dropna().unique())
    if not ns:
        return "no trials"
    return f"n = {ns[0]} per condition" if len(ns) == 1 else f"n = {ns[0]}-{ns[-1]} per condition"


def treatments(frame: pd.DataFrame, compare: str | None) -> list[str]:
    """The treatment labels in axis order (numeric order for a numeric compare axis)."""
    column = compare_column(compare) if compare_column(compare) in frame else \
        column_of(compare, None, frame.columns) if compare else None  # a derived table names it; trials have its column
    if column in frame and pd.api.types.is_numeric_dtype(frame[column]):
        return list(dict.fromkeys(frame.sort_values(column)["treatment"]))
    return sorted(frame["treatment"].unique())


def _slots(regimes: list[str], width: float = 0.7) -> dict[str, float]:
    """Horizontal offset of each regime within a category, so regimes never overlap and each
    category keeps its own tick."""
    step = width / max(1, len(regimes))
    return {r: -width / 2 + step * (k + 0.5) for k, r in enumerate(regimes)}


def _style(regimes: list[str]) -> dict[str, dict]:
    palette = sns.color_palette("colorblind", max(1, len(regimes)))
    return {r: {"color": palette[k], "marker": MARKERS[k % len(MARKERS)], "ls": DASHES[k % len(DASHES)]}
            for k, r in enumerate(regimes)}


def _x_axis(ax, cats: list[str], compare: str | None) -> None:
    ax.set_xticks(range(len(cats)), [f"{compare} = {c}" if compare else str(c) for c in cats],
                  rotation=30 if len(cats) > 3 else 0, ha="right" if len(cats) > 3 else "center")
    ax.set_xlim(-0.6, len(cats) - 0.4)
    ax.set_xlabel(compare or "")


def collapse_rate(table: pd.DataFrame, compare: str | None, rule: str = "end"):
    """Collapse rate with Wilson 95% intervals; each point annotated k/n."""
    rate, lo, hi, count = f"{rule}_rate", f"{rule}_lo", f"{rule}_hi", f"collapsed_{rule}"
    regimes = sorted(table["regime"].unique())
    style, slots, cats = _style(regimes), _slots(regimes), treatments(table, compare)
    fig, panels = _panels(table, sharey=True)
    for ax, sub, title in panels:
        for regime in regimes:
            s = sub[sub["regime"] == regime]
            if s.empty:
                continue
            s = s.set_index("treatment").reindex([c for c in cats if c in set(s["treatment"])]).reset_index()
            xs = np.array([cats.index(c) for c in s["treatment"]]) + slots[regime]
            st = style[regime]
            ax.errorbar(xs, s[rate], yerr=[(s[rate] - s[lo]).clip(lower=0), (s[hi] - s[rate]).clip(lower=0)],
                        color=st["color"], marker=st["marker"], ls="none", capsize=3, ms=5, lw=1.2, label=regime)
            for x, y, k, n in zip(xs, s[rate], s[count], s["n"], strict=True):
                ax.annotate(f"{int(k)}/{int(n)}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=6.5,
                            color="0.3")
        _x_axis(ax, cats, compare)
        ax.set_ylim(-0.05, 1.08)
        ax.set_ylabel("collapse rate (95% Wilson CI)")
        ax.set_title(title)
    return _finish(fig, f"Share of trials collapsed or diverged, {rule}: {RULES[rule]} · {_n_note(table)}", "regime")


def metric_by_condition(trials: pd.DataFrame, table: pd.DataFrame, metric: str, label: str, compare: str | None,
                        log: bool = False):
    """Each seed as a dot (diverged seeds have no value), the median as a bar, and the
    bootstrap 95% interval where n >= MIN_N_INTERVAL."""
    name = metric.removeprefix("eval/")
    regimes = sorted(table["regime"].unique())
    style, slots = _style(regimes), _slots(regimes)
    fig, panels = _panels(trials)
    rng = np.random.default_rng(0)
    for ax, sub, title in panels:
        cats = treatments(sub, compare)
        for regime in regimes:
            s = sub[(sub["regime"] == regime) & ~sub["diverged"].astype(bool)]
            if s.empty or s[metric].isna().all():
                continue
            st, width = style[regime], 0.7 / max(1, len(regimes))
            xs = np.array([cats.index(c) for c in s["treatment"]]) + slots[regime]
            ax.scatter(xs + rng.uniform(-width * 0.3, width * 0.3, len(xs)), s[metric], s=9, alpha=0.55,
                       color=st["color"], marker=st["marker"], linewidths=0, label="_seed")
            t = table[(table["regime"] == regime) & table["model"].isin(s["model"]) & table["dataset"].isin(s["dataset"])]
            t = t[t["treatment"].isin(cats)]
            if f"{name}_median" not in t:
                continue
            tx = np.array([cats.index(c) for c in t["treatment"]]) + slots[regime]
            ax.hlines(t[f"{name}_median"], tx - width * 0.4, tx + width * 0.4, color=st["color"], lw=2.2, label=regime)
            ok = t[f"{name}_lo"].notna()
            ax.vlines(tx[ok.values], t.loc[ok, f"{name}_lo"], t.loc[ok, f"{name}_hi"], color=st["color"], lw=1)
        _x_axis(ax, cats, compare)
        if log and (sub[metric] > 0).any():
            ax.set_yscale("log")
        ax.set_ylabel("\n".join(textwrap.wrap(label, 38)), fontsize=8)
        ax.set_title(title)
    return _finish(fig, f"{name}: each seed (dot), median (bar), bootstrap 95% CI where n >= {MIN_N_INTERVAL}\n"
                        f"{_n_note(table, f'{name}_n')} (diverged seeds have no value)", "regime")


def time_to_converge(trials: pd.DataFrame, table: pd.DataFrame, rule: str, compare: str | None):
    """Steps to converge per seed, as metric_by_condition draws a metric; a seed that never
    converged (or diverged) sits on the dashed "not reached" line above the budget."""
    cap = float(trials[config("iterations")].max()) * 1.1
    capped = lambda v: v.replace(np.inf, cap)  # noqa: E731
    seeds = trials.assign(converge_steps=capped(trials["steps_to_converge"]), diverged=False)
    medians = table.assign(converge_steps_median=capped(table["steps_median"]), converge_steps_lo=capped(table["steps_lo"]),
                           converge_steps_hi=capped(table["steps_hi"]), converge_steps_n=table["n"])
    fig = metric_by_condition(seeds, medians, "converge_steps", f"steps until {rule}", compare)
    for ax in fig.axes:
        ax.axhline(cap, color="0.4", ls="--", lw=0.8)
        ax.text(ax.get_xlim()[0], cap, " not reached", va="bottom", fontsize=7, color="0.3")
    fig.suptitle(textwrap.fill(f"Steps until {rule}: each seed (dot), median (bar), bootstrap 95% CI where n >= "
                               f"{MIN_N_INTERVAL}; never or diverged: on the dashed line", int(fig.get_figwidth() * 11)),
                 fontsize=11)
    return fig


ONSET_SEEDS = 400  # the most seeds a panel of the onsets figure draws, one line each (beyond: the table only)


def onsets(seeds: pd.DataFrame, order: list[str], rule: str, compare: str | None = None):
    """Each seed's course, one line a seed: grey over its budget; from the first evaluation
    meeting the convergence rule (a dot) to its end, green if it did not end collapsed and red
    if it did; a cross at its first collapse after getting good (a dip it may have come back
    from). Conditions (regime x treatment) in blocks, seeds in order; one LineCollection a
    colour, so a panel of hundreds of seeds stays small. A one-line title and a legend; the axes
    as tall as their seeds (the report's text says the rest)."""
    per_panel = seeds.groupby(["model", "dataset"]).size().max()
    blocks_most = seeds.groupby(["model", "dataset"])[["regime", "treatment"]].value_counts().groupby(level=[0, 1]).size().max()
    tall = min(max(0.075 * per_panel, 0.2 * blocks_most, 0.9), 30.0)  # a seed 0.075 in, a block's label 0.2 in
    fig, panels = _panels(seeds, width=6.0, height=tall)
    fig.set_figheight(seeds["model"].nunique() * (tall + 0.8) + 0.6)  # the axes, their titles and x axes, title, legend
    fig.set_layout_engine("constrained")
    for ax, sub, title in panels:
        blocks = sorted({(r, t) for r, t in zip(sub["regime"], sub["treatment"], strict=True)},
                        key=lambda rt: (rt[0], order.index(rt[1]) if rt[1] in order else len(order)))
        lines: dict[str, list] = {"budget": [], "kept": [], "ended": []}
        dots, crosses, ticks, y = [], [], [], 0.0
        for regime, treatment in blocks:
            block = sub[(sub["regime"] == regime) & (sub["treatment"] == treatment)].sort_values("seed")
            top = y
            if ticks:
                ax.axhline(y - 0.75, color="0.6", lw=0.6)  # between blocks, none after the last
            for end, good, dip, ended in block[["steps_done", "good_at", "collapse_at", "ended_collapsed"]].itertuples(index=False):
                lines["budget"].append([(0, y), (float(end), y)])
                if math.isfinite(good):
                    lines["ended" if ended == 1 else "kept"].append([(good, y), (max(float(end), good), y)])
                    dots.append((good, y))
                    if math.isfinite(dip):
                        crosses.append((dip, y))
                y += 1
            label = f"{compare} {treatment}" if compare else str(treatment)
            ticks.append(((top + y - 1) / 2, label if regime in ("all", "") else f"{regime} · {label}"))
            y += 0.5
        for kind, colour, width in (("budget", "0.85", 1.0), ("kept", "tab:green", 2.0), ("ended", "tab:red", 2.0)):
            if lines[kind]:
                ax.add_collection(LineCollection(lines[kind], colors=colour, linewidths=width, rasterized=True))
        if dots:
            ax.scatter(*zip(*dots, strict=True), s=8, color="tab:green", zorder=3, rasterized=True)
        if crosses:
            ax.scatter(*zip(*crosses, strict=True), s=14, marker="x", color="black", linewidths=1.0, zorder=3, rasterized=True)
        ax.set_xlim(0, float(sub["steps_done"].max()) * 1.02)
        ax.set_ylim(y - 0.5 - 0.25, -0.75)  # the seeds' rows and half a row around them
        ax.set_yticks([t for t, _ in ticks], [lab for _, lab in ticks], fontsize=7)
        ax.grid(False, axis="y")
        ax.set_xlabel("training step")
        ax.set_title(title, fontsize=9)
    key = [Line2D([], [], color="0.85", lw=1.0, label="before it got good"),
           Line2D([], [], color="tab:green", marker="o", ms=3, lw=2.0, label=f"got good ({rule}), not collapsed at its end"),
           Line2D([], [], color="tab:red", lw=2.0, label="ended collapsed"),
           Line2D([], [], color="black", marker="x", lw=0, label="first collapse after good")]
    fig.legend(handles=key, loc="outside lower center", ncol=4 if fig.get_figwidth() >= 10 else 2, frameon=False, fontsize=7)
    fig.suptitle("Each seed: when it got good, and whether it collapsed after", fontsize=10)
    return fig


def lambda_sensitivity(table: pd.DataFrame, compare: str):
    """Collapse rate against a numeric treatment on a symmetric log axis (0 at the left)."""
    regimes = sorted(table["regime"].unique())
    style = _style(regimes)
    values = sorted(table[compare_column(compare)].unique())
    positive = [v for v in values if v > 0]
    fig, panels = _panels(table, sharey=True)
    for ax, sub, title in panels:
        for regime in regimes:
            s = sub[sub["regime"] == regime].sort_values(compare_column(compare))
            if s.empty:
                continue
            st = style[regime]
            x = s[compare_column(compare)]
            ax.plot(x, s["end_rate"], marker=st["marker"], ls=st["ls"], color=st["color"], label=regime, lw=1.6)
            ax.fill_between(x, s["end_lo"], s["end_hi"], color=st["color"], alpha=0.15, lw=0)
        ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.minorticks_off()
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(f"{compare} (symmetric log scale; 0 at the left)")
        ax.set_ylabel("collapse rate (95% band)")
        ax.set_title(title)
    return _finish(fig, f"Dose-response of collapse to {compare} · {_n_note(table)}", "regime")


def over_time(curves: pd.DataFrame, value: str, ylabel: str, title: str, band: tuple[str, str] | None,
              order: list[str], log: bool = False, legend: str = "treatment"):
    """Rows: model x data set; columns: regimes; one line per treatment."""
    curves = curves.assign(panel=curves["model"] + " · " + curves["dataset"])
    palette = sns.color_palette("viridis", max(1, len(order)))
    fig, panels = _panels(curves, cols_key="regime", rows_key="panel", width=3.8, sharey=False)
    for ax, sub, name in panels:
        for k, treatment in enumerate(order):
            s = sub[sub["treatment"] == treatment].sort_values("step")
            if s.empty or value not in s or s[value].isna().all():
                continue
            ax.plot(s["step"], s[value], color=palette[k], label=treatment, lw=1.4, ls=DASHES[k % len(DASHES)])
            if band:
                ax.fill_between(s["step"], s[band[0]], s[band[1]], color=palette[k], alpha=0.12, lw=0)
        if log and value in sub and (sub[value] > 0).any():
            ax.set_yscale("log")
        if value == "collapsed_share":
            ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(name, fontsize=9)
    return _finish(fig, f"{title} · up to n = {int(curves['n'].max()) if len(curves) else 0} seeds per line", legend)


def loss_curves(curves: pd.DataFrame, keys: list[tuple[str, str]], order: list[str], legend: str = "treatment"):
    """Median of each loss over seeds: rows model x data set x loss (its y label), columns regimes."""
    frames = [curves[curves["loss"] == key].assign(panel=lambda f, lab=label: f["model"] + " · " + f["dataset"] + " · " + lab)
              for key, label in keys]
    frame = pd.concat(frames, ignore_index=True) if frames else curves.assign(panel="")
    palette = sns.color_palette("viridis", max(1, len(order)))
    fig, panels = _panels(frame, cols_key="regime", rows_key="panel", width=3.8, height=2.6)
    for ax, sub, name in panels:
        for k, treatment in enumerate(order):
            s = sub[sub["treatment"] == treatment].sort_values("step")
            if not s.empty:
                ax.plot(s["step"], s["median"], color=palette[k], label=treatment, lw=1.3, ls=DASHES[k % len(DASHES)])
        ax.set_xlabel("iteration")
        cell, _, regime = name.rpartition(" · ")
        model_data, _, loss = cell.rpartition(" · ")
        ax.set_ylabel(textwrap.fill(loss, 30), fontsize=7.5)
        ax.set_title(f"{model_data} · {regime}", fontsize=8)
    return _finish(fig, "Losses during training (median over seeds)", legend)


def at_a_glance(rows: pd.DataFrame, order: list[str], compare: str | None = None, alpha: float = 0.05):
    """Every comparison of the findings at a glance: one row per cell (model · data set ·
    regime), one column per treatment; left the difference in collapse rate (end) against the
    baseline, right the difference in the cell's quality metric (each metric on its own scale);
    blue is better, red worse, a black frame and a star mark a difference significant after Holm.
    A quality metric blind to modes (its `blind_to`, e.g. fd_2d) is grey: shown, never better or worse."""

    cells = list(dict.fromkeys(" · ".join(str(r[k]) for k in ("model", "dataset", "regime"))
                               for r in rows.to_dict("records")))
    cols = [t for t in order if t in set(rows["treatment"])] + sorted(set(rows["treatment"]) - set(order))
    quality = "quality_metric" in rows and rows["quality_metric"].notna().any()
    names = sorted(rows["quality_metric"].dropna().unique()) if quality else []
    base = f" vs {compare or 'baseline'} = {rows['baseline'].iloc[0]}"
    panels = [("collapse", f"collapse rate difference (end){base}")]
    blind = sorted({m for m, b in rows[["quality_metric", "quality_blind_to"]].itertuples(index=False)
                    if isinstance(b, str) and b}) if "quality_blind_to" in rows else []
    if quality:
        panels.append(("quality", f"{names[0] if len(names) == 1 else 'quality metric'} difference{base}"
                       + (f" ({'' if blind == names else ', '.join(blind) + ': '}blind to modes: grey, not in the verdict)"
                          if blind else "")))
    width = max(1.15 * len(cols), 2.6)
    fig_width = max(8.6, min(10.4, 2.6 + width * len(panels)))
    fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(fig_width, 2.5 + 0.36 * len(cells)),
                             layout="constrained")
    cmap = matplotlib.colormaps["RdBu"]
    scale = {}
    if quality:
        for key, g in rows.groupby(["dataset", "quality_metric"]):  # a metric's scale differs by data set
            finite = g["quality_diff"].abs().replace(np.inf, np.nan).dropna()
            scale[key] = float(finite.max()) if len(finite) and finite.max() > 0 else 1.0
    for ax, (kind, title) in zip(axes[0], panels, strict=True):
        ax.set_xlim(0, len(cols))
        ax.set_ylim(len(cells), 0)
        for r in rows.to_dict("records"):
            y, x = cells.index(" · ".join(str(r[k]) for k in ("model", "dataset", "regime"))), cols.index(r["treatment"])
            if kind == "collapse":
                d, p = r["collapse_diff"], r["collapse_p_holm"]
                value, text = -d, f"{d:+.2f}"
            else:
                m, d, p = r.get("quality_metric"), r.get("quality_diff", math.nan), r.get("quality_p_holm", math.nan)
                if not isinstance(m, str) or d != d:
                    ax.add_patch(Rectangle((x, y), 1, 1, color="0.9"))
                    ax.text(x + 0.5, y + 0.5, "no test", ha="center", va="center", fontsize=7, color="0.4")
                    continue
                good = 1 if r.get("quality_lower_better", True) else -1
                value = -good * d / scale[(r["dataset"], m)]
                text = f"{d:+.3g}" if len(names) == 1 else f"{m}\n{d:+.3g}"
            significant = p == p and p < alpha
            # colour encodes the difference only where Holm decides it; an undecided difference is
            # drawn pale, so a large effect at n = 3 does not look as sure as a decided one
            shade = float(np.clip(value, -1, 1)) if value == value else 0.0
            colour = cmap(0.5 + 0.5 * (shade if significant else 0.25 * shade))
            if kind == "quality" and r.get("quality_metric") in blind:
                colour, value = "0.8", 0.0  # blind to modes: neither better nor worse, whatever its size
            ax.add_patch(Rectangle((x, y), 1, 1, facecolor=colour, edgecolor="white", lw=1,
                                   hatch=None if significant else "////"))
            if significant:
                ax.add_patch(Rectangle((x + 0.04, y + 0.06), 0.92, 0.88, fill=False, edgecolor="black", lw=1.8))
            dark = significant and abs(value) > 0.6 if value == value else False
            ax.text(x + 0.5, y + 0.5, text + ("*" if significant else ""), ha="center", va="center",
                    fontsize=7 if kind == "quality" and len(names) > 1 else 8, color="white" if dark else "0.1",
                    fontweight="bold" if significant else "normal", linespacing=0.95)
        ax.set_xticks(np.arange(len(cols)) + 0.5, [f"{compare} = {c}" if compare else str(c) for c in cols], fontsize=8)
        ax.xaxis.tick_top()
        ax.set_yticks(np.arange(len(cells)) + 0.5, cells if ax is axes[0, 0] else [], fontsize=8)
        ax.tick_params(length=0)
        ax.grid(False)
        ax.set_title(textwrap.fill(title, int(fig_width * 12 / len(panels) * 0.8)), fontsize=9, pad=16)
        for side in ax.spines.values():
            side.set_visible(False)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(-1, 1), cmap=cmap), ax=list(axes[0]),
                       orientation="horizontal", fraction=0.05, pad=0.04, aspect=40, ticks=[-1, -0.5, 0, 0.5, 1])
    bar.ax.set_xticklabels(["worse", "", "no difference", "", "better"], fontsize=7)
    bar.set_label("collapse: the rate difference (-1 to +1); quality: the difference over the largest of its data set",
                  fontsize=7)
    note = textwrap.fill(f"blue: better than the baseline, red: worse (collapse: lower is better; quality: by each "
                         f"metric's direction{'; grey: blind to modes' if blind else ''}); framed, * and full colour: "
                         f"significant after Holm (p < {alpha}); hatched and pale: not decided", int(fig_width * 15))
    fig.supxlabel(note, fontsize=7.5, color="0.25")
    return fig
