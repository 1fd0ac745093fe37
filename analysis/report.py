"""results folders -> figures (PNG and SVG), REPORT.md and one self-contained report.html."""

from __future__ import annotations

import base64
import html
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis import figures, tables
from analysis.load import Results, load_results
from analysis.search import search_sections

FIGURES = {
    "collapse_rate": "Collapse rate by BN x G steps x λ",
    "fd": "Frechet distance by condition",
    "modes": "Mode coverage by condition",
    "lambda_sensitivity": "Sensitivity to λ",
    "training_curves": "Training curves",
    "collapse_over_time": "Collapse over time",
}


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else (f"{v:.3g}" if abs(v) < 1e4 else f"{v:.4g}")
    return str(v)


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(_fmt(v) for v in row) + " |\n" for row in frame.itertuples(index=False))


def make_figures(res: Results) -> tuple[dict[str, plt.Figure], dict[str, pd.DataFrame]]:
    table = tables.condition_table(res.trials)
    effect = tables.lambda_effect(table)
    metric = "eval/fd_2d"
    for m in tables.FD_METRICS:
        if m in res.metrics and res.metrics[m].notna().any():
            metric = m
            break
    curves = tables.over_time(res.trials[res.trials["status"] != "error"], res.metrics, metric)
    figs = {
        "collapse_rate": figures.collapse_rate(table),
        "fd": figures.metric_by_condition(table, "fd", "Frechet distance", "Final Frechet distance", log=True),
        "modes": figures.metric_by_condition(table, "modes_frac", "share of modes captured", "Final mode coverage"),
        "lambda_sensitivity": figures.lambda_sensitivity(table),
        "training_curves": figures.over_time(curves, "median", f"{metric.removeprefix('eval/')} (median, IQR band)",
                                             f"{metric.removeprefix('eval/')} during training", ("q25", "q75"),
                                             log=True),
        "collapse_over_time": figures.over_time(curves, "collapsed_share", "share of seeds collapsed",
                                                "Collapse over time", None),
    }
    return figs, {"conditions": table, "lambda_effect": effect, "curves": curves}


def build_report(locations: list[str], out: str) -> Path:
    res = load_results(locations)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs, frames = make_figures(res)
    for name, fig in figs.items():
        fig.savefig(out_dir / f"{name}.png", dpi=120)
        fig.savefig(out_dir / f"{name}.svg")
        plt.close(fig)
    frames["conditions"].to_csv(out_dir / "conditions.csv", index=False)
    frames["lambda_effect"].to_csv(out_dir / "lambda_effect.csv", index=False)
    sections = report_sections(res, frames)
    sections[4:4] = search_sections(locations, res, out_dir)
    (out_dir / "REPORT.md").write_text(render_markdown(sections))
    (out_dir / "report.html").write_text(render_html(sections, out_dir))
    return out_dir / "REPORT.md"


def report_sections(res: Results, frames: dict[str, pd.DataFrame]) -> list[tuple[str, str, object]]:
    """(heading, figure name or '', table frame or text) in report order."""
    t = res.trials
    statuses = ", ".join(f"{v} {k}" for k, v in t["status"].value_counts().sort_index().items())
    rules = ", ".join(f"`{r}`" for r in sorted(t["collapse_rule"].unique()))
    versions = pd.DataFrame([{"results": s["location"], **s["versions"]} for s in res.sources])
    cond = frames["conditions"]
    keep = [c for c in cond.columns if c in ("model", "dataset", "regime", "lam", "n", "collapsed", "collapse_rate",
                                            "rate_lo", "rate_hi", "diverged_share") or c.startswith(("fd_", "modes_frac_"))]
    summary = (f"{len(t)} trials ({statuses}). Collapse rule: {rules}; a trial counts as collapsed when its "
               "last evaluation meets the rule, and a diverged trial counts as collapsed. Intervals: Wilson 95% "
               "for rates, percentile bootstrap 95% (2000 resamples) for medians, Newcombe's hybrid score "
               "interval for differences of rates, Fisher's exact test for p-values.")
    sections = [("Summary", "", summary), ("Versions", "", versions),
                ("Collapse rate by BN x G steps x λ", "collapse_rate", cond[keep]),
                ("Effect of λ on collapse (against λ = 0 in the same regime)", "", frames["lambda_effect"]),
                ("Final Frechet distance", "fd", None), ("Final mode coverage", "modes", None),
                ("Sensitivity to λ", "lambda_sensitivity", None), ("Training curves", "training_curves", None),
                ("Collapse over time", "collapse_over_time", None)]
    sections += [(f"Study as run: {s['location']}", "", f"```yaml\n{s['study'].strip()}\n```") for s in res.sources]
    return sections


def render_markdown(sections) -> str:
    out = [f"# vi-sweeps report\n\n_generated {time.strftime('%Y-%m-%d %H:%M:%S')}_\n"]
    for heading, fig, body in sections:
        out.append(f"\n## {heading}\n")
        if fig:
            out.append(f"\n![{heading}]({fig}.png) ([svg]({fig}.svg))\n")
        if isinstance(body, pd.DataFrame):
            out.append("\n" + markdown_table(body))
        elif body:
            out.append(f"\n{body}\n")
    return "".join(out)


def render_html(sections, out_dir: Path) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>vi-sweeps report</title><style>"
             "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>"
             f"<h1>vi-sweeps report</h1><p><i>generated {time.strftime('%Y-%m-%d %H:%M:%S')}</i></p>"]
    for heading, fig, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if fig:
            data = base64.b64encode((out_dir / f"{fig}.png").read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{data}'>")
        if isinstance(body, pd.DataFrame):
            parts.append(body.to_html(index=False, float_format=lambda v: _fmt(v), na_rep=""))
        elif isinstance(body, str) and body.startswith("```"):
            parts.append(f"<pre>{html.escape(body.strip('`').removeprefix('yaml'))}</pre>")
        elif body:
            parts.append(f"<p>{html.escape(body)}</p>")
    return "".join(parts) + "</body></html>"
