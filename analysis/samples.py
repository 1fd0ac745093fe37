"""Sample snapshots (samples/<trial_id>/<step>.npy or .png): reading them, and choosing the
representative seeds of a condition (best, median, worst by the collapse rule's metric)."""

from __future__ import annotations

import io
import posixpath
import re

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from analysis import schema
from analysis.contract import open_location

_RULE = re.compile(r"^\s*([a-z_0-9]+)\s*([<>])")


def snapshot_steps(location: str, trial_id: str) -> dict[int, str]:
    """{step: path} of a trial's snapshots."""
    fs, root = open_location(location)
    folder = posixpath.join(root, schema.SAMPLES_DIR, trial_id)
    out = {}
    for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
        name = posixpath.basename(info.path)
        stem, _, suffix = name.partition(".")
        if info.type == pafs.FileType.File and stem.isdigit() and suffix in ("npy", "png"):
            out[int(stem)] = info.path
    return dict(sorted(out.items()))


def read_snapshot(location: str, path: str) -> np.ndarray | bytes:
    """2-D points as an (n, 2) array, or an image grid as PNG bytes."""
    fs, _ = open_location(location)
    with fs.open_input_stream(path) as f:
        data = f.read()
    return np.load(io.BytesIO(data)) if path.endswith(".npy") else data


def rule_metric(rule: str) -> tuple[str, bool]:
    """The metric a collapse rule reads, and whether higher is better for it."""
    m = _RULE.match(rule)
    if not m:
        return "eval/modes_frac", True
    return f"eval/{m.group(1)}", m.group(2) == "<"


def representatives(group: pd.DataFrame, quality: str | None) -> list[tuple[str, pd.Series]]:
    """(best, median, worst) trials of one condition by the collapse rule's metric (ties
    broken by the quality metric); a diverged trial ranks last."""
    metric, higher_better = rule_metric(str(group["collapse_rule"].iloc[0]))
    g = group.assign(_dead=group["diverged"].astype(bool))
    keys, ascending = ["_dead"], [True]
    if metric in g:
        keys.append(metric)
        ascending.append(not higher_better)
    if quality and quality in g:
        keys.append(quality)
        ascending.append(True)
    keys.append("seed")
    ascending.append(True)
    ranked = g.sort_values(keys, ascending=ascending, na_position="last").reset_index(drop=True)
    picks = [("best", 0), ("median", (len(ranked) - 1) // 2), ("worst", len(ranked) - 1)]
    seen, out = set(), []
    for name, i in picks:
        if i not in seen:
            seen.add(i)
            out.append((name, ranked.iloc[i]))
    return out
