"""A report's sections rendered: REPORT.md (Markdown tables, figures as files beside it) and
report.html (self-contained, figures embedded or linked, rendered headless in the tests)."""

from __future__ import annotations

import base64
import html
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import tables

PROVENANCE = "Provenance"  # the heading of the appendix's last section


@dataclass(frozen=True)
class Code:
    """A block of user text shown as is (a study as run). REPORT.md fences it with more
    backticks than the longest run in the text, so no line of it closes the block (a study
    `description:` holding a ``` line did, and what followed was raw HTML); report.html escapes it."""

    text: str
    lang: str = ""

    def markdown(self) -> str:
        fence = "`" * max(3, 1 + max(map(len, re.findall("`+", self.text)), default=0))
        return f"{fence}{self.lang}\n{self.text}\n{fence}"


def fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else (f"{v:.3g}" if abs(v) < 1e4 else f"{v:.4g}")
    return str(v)


def markdown_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    esc = tables.md_escape
    head = "| " + " | ".join(esc(c) for c in frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(esc(fmt(v)) for v in row) + " |\n" for row in frame.itertuples(index=False))


def appendix(sections) -> int:
    """Where the evidence ends: before the studies as run and the provenance footer."""
    return next(i for i, (heading, _, _) in enumerate(sections) if heading.startswith(("Study as run", PROVENANCE)))


def render_markdown(sections) -> str:
    out = [f"# vi-sweeps report\n\n_generated {time.strftime('%Y-%m-%d %H:%M:%S')}_\n"]
    esc = tables.md_escape  # every heading, bullet and paragraph may carry user text (labels, names)
    for heading, fig, body in sections:
        if heading:
            out.append(f"\n## {esc(heading)}\n")
        if fig:
            out.append(f"\n![{esc(heading)}]({fig}.png) ([svg]({fig}.svg))\n")
        if isinstance(body, pd.DataFrame):
            out.append("\n" + markdown_table(body))
        elif isinstance(body, list):
            out.append("\n" + "".join(f"- {esc(line)}\n" for line in body))
        elif isinstance(body, Code):
            out.append(f"\n{body.markdown()}\n")
        elif body:
            out.append(f"\n{esc(body)}\n")
    return "".join(out)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"(?<![\w])_(.+?)_(?![\w])", r"<i>\1</i>", text)


def render_html(sections, out_dir: Path, link_figures: bool = False) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>vi-sweeps report</title><style>"
             "body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;font-size:11.5px;width:100%;table-layout:auto}"
             "td,th{border:1px solid #ccc;padding:2px 5px;overflow-wrap:anywhere;vertical-align:top}"
             "th{text-align:left !important;overflow-wrap:normal}"  # a header breaks between words, not inside one
             "img{max-width:100%}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}li{margin:0.3em 0}"
             "h1{font-size:1.45em;margin:0.2em 0}h2{font-size:1.15em;margin:0.9em 0 0.3em}"
             "body>p.generated{margin:0 0 0.4em;color:#666;font-size:12px}ul.summary{margin:0.2em 0}"
             "footer{margin-top:2em;border-top:1px solid #ccc;padding-top:0.5em;font-size:12px;color:#444}"
             "</style></head><body>"
             f"<h1>vi-sweeps report</h1><p class='generated'><i>generated {time.strftime('%Y-%m-%d %H:%M:%S')}</i></p>"]
    for heading, fig, body in sections:
        if heading == PROVENANCE:
            parts.append("<footer>")
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        if fig and link_figures:
            parts.append(f"<img alt='{html.escape(heading)}' src='{html.escape(fig)}.png'>")
        elif fig:
            data = base64.b64encode((out_dir / f"{fig}.png").read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{data}'>")
        if isinstance(body, pd.DataFrame):
            parts.append(body.to_html(index=False, float_format=lambda v: fmt(v), na_rep=""))
        elif isinstance(body, list):
            parts.append("<ul>" + "".join(f"<li>{_inline(line)}</li>" for line in body) + "</ul>")
        elif isinstance(body, Code):
            parts.append(f"<pre>{html.escape(body.text)}</pre>")
        elif body:
            parts.append(f"<p>{_inline(body)}</p>")
        if heading == PROVENANCE:
            parts.append("</footer>")
    return "".join(parts) + "</body></html>"

