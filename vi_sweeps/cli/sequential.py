"""`vi-sweep run` of a study whose seeds come in interims (`seeds: {interim: n, max: N}`): one
pack of every condition, then, after each interim, the next pack only of the conditions a still
open comparison of the declared claims needs (analysis.interims decides from the rows), until
every comparison is decided, stopped for futility, or at N. Each round is an ordinary run of a
part of the study (`only`), so ids and packs are the layout's and a killed sweep resumes the
same rounds: nothing is stored but the rows."""

from __future__ import annotations

from collections.abc import Callable

import click

from analysis.claims import report_studies
from analysis.interims import design_of, needed, path_table, paths
from analysis.load import load_results
from analysis.verdicts import Study as Rows
from vi_contract.read import ResultsError
from vi_contract.store import Store, StoreError
from vi_contract.tables import finished_ids
from vi_sweeps.study.expansion import Study, condition_key
from vi_sweeps.sweep.control import Stopped, SweepControl
from vi_sweeps.sweep.ray_session import ray_session


def _rows(results: str) -> Rows | None:
    """The folder's rows as the analysis layer reads them, with its declared claims and design;
    None before a finished trial (or without claims)."""
    try:
        studies = report_studies(load_results([results], warn=False))
    except (ResultsError, OSError):
        return None
    return studies[0] if studies else None


def plan(study: Study, results: str) -> tuple[set[str], list]:
    """(the trial ids the design needs now, the comparisons with their paths so far)."""
    design = study.spec.seeds
    n, top = design["interim"], design["max"]
    first = {t.trial_id for t in study.trials if t.config.seed < n}  # every condition's first pack
    rows = _rows(results)
    if rows is None:
        return first, []
    alpha = {c.get("family") or c["id"]: c.get("alpha", 0.05) for c in rows.contract["claims"]["claims"]}
    comparisons = paths(rows, n, top, alpha, design.get("futility"))
    by_id = {t.trial_id: t for t in study.trials}
    want: dict[str, int] = {}
    for member, seeds in needed(comparisons, n, top).items():
        if member in by_id:
            key = condition_key(by_id[member].config, by_id[member].labels)
            want[key] = max(want.get(key, 0), seeds)
    more = {t.trial_id for t in study.trials if t.config.seed < want.get(condition_key(t.config, t.labels), 0)}
    return first | more, comparisons


def progress_line(comparisons: list, design: dict) -> str:
    """"claims D/N decided · interim i of m": the declared comparisons decided (a boundary crossed,
    stopped for futility, or at max) after the i-th interim, the latest any comparison reached."""
    decided = sum(c.path.decision != "open" for c in comparisons)
    interim = max((len(c.path.z) for c in comparisons), default=0)
    return f"claims {decided}/{len(comparisons)} decided · interim {interim} of {-(-design['max'] // design['interim'])}"


def status_paths(results: str) -> tuple[str, list[dict]] | None:
    """For `vi-sweep status` of a sequential study: the progress line and each comparison's path
    (interims seen, statistic after each, boundary, level, decision, seeds used), as text and as
    records; None for a study without interims or before its first finished trial."""
    rows = _rows(results)
    design = design_of(rows) if rows is not None else None
    if not design:
        return None
    table = path_table(rows)
    alpha = {d.get("family") or d["id"]: d.get("alpha", 0.05) for d in rows.contract["claims"]["claims"]}
    line = progress_line(paths(rows, design["interim"], design["max"], alpha, design.get("futility")), design)
    head = (f"sequential design (interims of {design['interim']} up to {design['max']} seeds"
            f"{', futility ' + str(design['futility']) if design.get('futility') is not None else ''}): {line}")
    shown = table.assign(boundary=table["boundary"].map("{:.3f}".format), level=table["level"].map("{:.4f}".format))
    return "\n".join([head, "each comparison's path:", shown.to_string(index=False)]), table.to_dict(orient="records")


def run_sequential(study: Study, results: str, run_part: Callable[[set[str]], object], address: str | None = None):
    """Run the design's rounds through `run_part(only)` (an ordinary run of those trial ids) until
    it needs nothing new, every round in one Ray session (a private Ray is started once, not once
    a round; each round's driver joins it). Returns (the last round's outcome, None when nothing
    was left to run; the trial ids the design needed)."""
    control = SweepControl()
    with control.signals():
        try:
            with ray_session(address, control):
                return _rounds(study, results, run_part, control)
        except Stopped:  # a signal while Ray started or between rounds: what finished is in the folder
            click.echo(f"stopped: {control.reason}", err=True)
            raise SystemExit(control.exit_code) from None


def _rounds(study: Study, results: str, run_part: Callable[[set[str]], object], control: SweepControl):
    outcome = None
    while True:
        control.check()  # Ctrl-C or SIGTERM between rounds (within one, the round's driver stops it)
        chosen, comparisons = plan(study, results)
        if comparisons:
            click.echo(progress_line(comparisons, study.spec.seeds), err=True)
        try:
            done = finished_ids(Store.open(results, create=False))
        except (ResultsError, OSError, StoreError):
            done = set()
        if chosen <= done:
            return outcome, chosen
        control.check()  # a signal while the rows were read: no new round
        outcome = run_part(chosen)
        if getattr(outcome, "exit_code", 0) != 0:
            return outcome, chosen
