"""`vi-sweep status`, `report` and `export`: the commands that read a results folder and never
write to it (the analysis layer loads only here, in the report path)."""

from __future__ import annotations

import json
import sys

import click

from vi_contract.files import exit_code_for, report_folder
from vi_contract.read import ResultsError
from vi_contract.schema import CONTRACT_FILE
from vi_contract.store import Store
from vi_sweeps.cli.common import EXIT_BAD_INPUT, write_report
from vi_sweeps.sweep.status import sweep_status


@click.command()
@click.argument("results")
@click.option("--json", "as_json", is_flag=True, help="machine-readable: totals and per-condition counts")
def status(results, as_json) -> None:
    """Summarise a running or finished sweep from its files (read-only)."""
    try:
        text = sweep_status(results, as_json)
        design = _sequential(results)
        if design is not None and as_json:
            text = json.dumps({**json.loads(text), "sequential": {"progress": design[0].splitlines()[0],
                                                                   "paths": design[1]}}, indent=1, default=str)
        elif design is not None:
            text += "\n" + design[0]
        click.echo(text)
    except (ResultsError, FileNotFoundError, NotADirectoryError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as err:  # a folder or file this user may not read
        click.echo(f"error: {results}: cannot be read ({err.strerror or err})", err=True)
        sys.exit(EXIT_BAD_INPUT)


def _sequential(results: str) -> tuple[str, list[dict]] | None:
    """A sequential study's paths (the analysis layer reads them; loaded only for such a study;
    a protocol's searches record its interims but are no sequential design: none is shown)."""
    try:
        contract = json.loads(Store.open(results, create=False).read_bytes(CONTRACT_FILE))
    except (OSError, ValueError):
        return None
    if not isinstance(contract, dict) or "interims" not in contract:
        return None
    from vi_sweeps.cli.sequential import status_paths

    return status_paths(results)


@click.command()
@click.argument("results", nargs=-1, required=True)
@click.option("--out", default=None, help="output folder (default: RESULTS/report; for results on object storage, report-BUCKET-PATH-HASH here)")
@click.option("--converged", default=None, metavar="METRIC>=VALUE",
              help="when a seed counts as converged, for the time-to-converge findings (default: modes_frac>=0.875 "
                   "where the results have it)")
@click.option("--link-figures", is_flag=True,
              help="report.html refers to the PNGs beside it instead of embedding them (for a committed report)")
def report(results, out, converged, link_figures) -> None:
    """Figures, REPORT.md and report.html from one or more results folders (read-only on
    them; a running sweep is reported as it stands)."""
    write_report(list(results), out or report_folder(results[0]), converged, link_figures)


@click.command()
@click.argument("results")
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False), help="the folder to write")
def export(results, dest) -> None:
    """Copy RESULTS small enough to commit: its tables, contract and the snapshots the report
    draws; `vi-sweep report` on the copy writes the same report."""

    try:
        from analysis.export import export_results  # the report path

        counts = export_results(results, dest)
    except ResultsError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as err:  # the destination cannot be written (a file in the way, no permission: 2; no space: 1)
        click.echo(f"error: cannot write the export to {dest}: {err.strerror or err}", err=True)
        sys.exit(exit_code_for(err))
    if counts.get("still tuning"):
        journal = " and its searches' Optuna journal" if counts["journal"] else ""
        click.echo(f"exported a tune-then-test protocol still tuning: its {counts['tuning trials']} tuning trials"
                   f"{journal} to {dest} (`vi-sweep run STUDY --results` a copy of it resumes the tuning)")
        return
    tuned = f" (and the {counts['tuning trials']} tuning trials of its protocol)" if "tuning trials" in counts else ""
    click.echo(f"exported {counts['trials']} trials, {counts['evaluations']} evaluations and "
               f"{counts['snapshots']} sample snapshots{tuned} to {dest}")



@click.command()
@click.argument("results", nargs=-1, required=True)
@click.option("--out", default=None, help="the Markdown file to write (default: RESULTS/claims.md of the first folder)")
def claims(results, out) -> None:
    """Decide the claims the studies declared (`claims:`), one line per claim, and write them
    with their cells to a Markdown file (read-only on the results)."""
    from analysis.claims import decide_folders, is_folder_of_exports  # the report path

    if len(results) == 1 and is_folder_of_exports(results[0]):  # a folder of exports (docs/reproduction): CLAIMS.md
        from analysis.claims_page import write_claims

        try:
            click.echo(f"claims: {write_claims(results[0], out)}")
        except ResultsError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        return
    target = out or f"{results[0]}/claims.md"
    try:
        text, lines = decide_folders(list(results))
    except ResultsError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        with open(target, "w") as f:
            f.write("# Claims\n\n" + text)
    except OSError as err:
        click.echo(f"error: cannot write {target}: {err.strerror or err}", err=True)
        sys.exit(exit_code_for(err))
    for line in lines:
        click.echo(line)
    click.echo(f"claims: {target}")
