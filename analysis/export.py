"""A results folder, made small enough to commit: the two tables of the contract, its
metadata files, the sample snapshots the report draws and every trial's final one.
`vi-sweep report` on the exported folder writes the same report as on the original, and
`vi-sweep run` on a copy of it resumes the sweep (vi_sweeps.results.restore_trial_files)."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import pyarrow.parquet as pq

from analysis import schema, tables
from analysis.contract import open_location, with_metadata
from analysis.figures import treatments
from analysis.load import load_results
from analysis.samples import sample_panels, snapshot_steps


def export_results(location: str, out: str | Path) -> dict[str, int]:
    """Write `location`'s results to the folder `out`; returns what was written."""
    res = load_results([location], warn=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fs, root = open_location(location)
    for name in (schema.STUDY_FILE, schema.VERSIONS_FILE):
        try:
            with fs.open_input_stream(posixpath.join(root, name)) as f:
                (out / name).write_bytes(f.read())
        except FileNotFoundError:
            continue
    contract = res.sources[0]["contract"]
    (out / schema.CONTRACT_FILE).write_text(json.dumps(contract, indent=1, default=str))
    pq.write_table(with_metadata(res.trials, contract), out / schema.TRIALS_FILE)
    pq.write_table(with_metadata(res.metrics, contract), out / schema.METRICS_FILE)
    lay = tables.layout(res.trials, res.contract)
    labelled = tables.with_labels(res.trials, lay)
    order = treatments(labelled[labelled["status"].isin(schema.FINISHED)], lay.compare)
    used = {path for finals, strips in sample_panels(res, labelled, order, lay.compare, tables.quality_metric).values()
            for _, cells in finals + strips for _, _, path in cells if path is not None}
    for tid in res.trials.loc[res.trials["status"].isin(schema.FINISHED), "trial_id"]:
        steps = snapshot_steps(location, tid)  # every trial's final samples: a report of a larger
        if steps:                              # sweep resumed from this copy can still show them
            used.add(steps[max(steps)])
    for path in sorted(used):
        target = out / posixpath.relpath(path, root)
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(path) as f:
            target.write_bytes(f.read())
    return {"trials": len(res.trials), "evaluations": len(res.metrics), "snapshots": len(used)}
