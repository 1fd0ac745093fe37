"""`vi-sweep run` of a study whose seeds come in interims (`seeds: {interim: n, max: N}`): one
pack of every condition, then, after each interim, the next pack only of the conditions a still
open comparison of the declared claims needs (analysis.interims decides from the rows), until
every comparison is decided, stopped for futility, or at N. Each round is an ordinary run of a
part of the study (`only`), so ids and packs are the layout's and a killed sweep resumes the
same rounds: nothing is stored but the rows."""

from __future__ import annotations

from collections.abc import Callable

import click

from analysis.interims import needed, paths
from analysis.load import load_results
from analysis.verdicts import Study as Rows
from vi_contract import schema
from vi_contract.read import ResultsError
from vi_contract.store import Store, StoreError
from vi_contract.tables import finished_ids
from vi_sweeps.study.expansion import Study, condition_key


def _rows(results: str) -> Rows | None:
    try:
        res = load_results([results], warn=False)
    except (ResultsError, OSError):
        return None
    own = res.sources[0]["contract"]
    if not res.trials["status"].isin(schema.FINISHED).any() or not (own.get("claims") or {}).get("claims"):
        return None
    return Rows(own.get("study", ""), res.trials, res.metrics, {**res.contract, "claims": own["claims"]})


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
    decided = sum(c.path.decision != "open" for c in comparisons)
    interim = max((len(c.path.z) for c in comparisons), default=0)
    return (f"claims {decided}/{len(comparisons)} comparisons decided or stopped · interim {interim} of "
            f"{design['max'] // design['interim']}")


def run_sequential(study: Study, results: str, run_part: Callable[[set[str]], object]):
    """Run the design's rounds through `run_part(only)` (an ordinary run of those trial ids) until
    it needs nothing new. Returns (the last round's outcome, None when nothing was left to run;
    the trial ids the design needed)."""
    outcome = None
    while True:
        chosen, comparisons = plan(study, results)
        if comparisons:
            click.echo(progress_line(comparisons, study.spec.seeds), err=True)
        try:
            done = finished_ids(Store.open(results, create=False))
        except (ResultsError, OSError, StoreError):
            done = set()
        if chosen <= done:
            return outcome, chosen
        outcome = run_part(chosen)
        if getattr(outcome, "exit_code", 0) != 0:
            return outcome, chosen
