"""`vi-sweep`: a thin table of commands over library functions users can also call.

Exit codes: 0 every trial of the run's selection finished (a diverged trial is a finished,
recorded result; with --only, the part's trials); 1 some did not (errored, a pack lost its worker
or node after its retries, or the sweep stopped early: a full disk, a lost lease); 2 bad input
(nothing written; a Ray address that does not answer within 15 s); 3 the results folder is owned
by another running driver; 130 interrupted (Ctrl-C) and 143 terminated (SIGTERM) at any stage,
each after a clean stop.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import click

from vi_contract.files import report_folder
from vi_contract.schema import STUDY_FILE
from vi_contract.store import Store
from vi_sweeps.cli.common import (
    EXIT_ERRORED,
    EXIT_OK,
    OneLineErrors,
    driver_errors,
    fail_config,
    force_option,
    load_or_exit,
    plugin_option,
    set_option,
    track_option,
    tracking_or_exit,
    trial_table_text,
    warn_oversubscribed,
    write_report,
)
from vi_sweeps.cli.results import claims, export, report, status
from vi_sweeps.cli.tools import fetch_weights, trial
from vi_sweeps.core.errors import ConfigError
from vi_sweeps.study.schema import interims
from vi_sweeps.study.subset import select


@click.group(cls=OneLineErrors)
@click.version_option(package_name="vi-sweeps")
def main() -> None:
    """Sweeps and ablations of the generative models of Su (2018) on Ray Tune."""


for command in (trial, status, report, claims, export, fetch_weights):  # defined beside their kin (cli_results, cli_tools)
    main.add_command(command)


@main.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--list", "list_trials", is_flag=True, help="print the trial table")
@set_option
@plugin_option
def validate(study, list_trials, assignments, plugin_names) -> None:
    """Check a study file; print its size (and with --list, its trials). The file only: a data
    folder it names is checked by `run` (--dry-run too), on the machine that runs it."""
    spec = load_or_exit(study, assignments, plugin_names=plugin_names)
    if list_trials:
        click.echo(trial_table_text(spec))
    click.echo(f"{study}: valid, {len(spec.trials)} trials")
    warn_oversubscribed(study, spec)
    if spec.spec.compare is None and spec.spec.search is None:  # valid, but its report would find nothing
        click.echo(f"warning: {study}: no `compare:` (axis, baseline): the report will describe each condition and "
                   "test nothing; add compare: {axis: AXIS, baseline: VALUE} to compare a treatment", err=True)


@main.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--results", default=None, help="folder or URI (s3://...); default results/NAME")
@click.option("--address", default=None, help="a running Ray cluster: HOST:PORT, auto (the one `ray start` "
              "started on this machine), or ray://HOST:10001 (needs ray[client]); default: RAY_ADDRESS if set, else "
              "a private embedded Ray")
@click.option("--resume", is_flag=True, help="finish an interrupted sweep: as running the same command again, but "
              "refused when RESULTS holds no sweep (a mistyped path would start a new one)")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None,
              help="Ray trials (packs) at once (default: as resources allow)")
@click.option("--dry-run", is_flag=True, help="print the trial table and its size; run nothing")
@click.option("--report/--no-report", default=True, show_default=True, help="write the report when done")
@click.option("--tensorboard", is_flag=False, flag_value="RESULTS/tensorboard", default=None, metavar="[DIR]",
              help="also write TensorBoard scalars and sample images (default folder: RESULTS/tensorboard)")
@track_option
@force_option
@set_option
@plugin_option
@click.option("--reuse", default=None, metavar="RESULTS", help="take the finished trials of another results folder (or "
              "export) that have this study's trial ids, instead of running them (same id, same numbers on the same kind of CPU; "
              "across CPUs the same distribution, docs/reproduction/README.md)")
@click.option("--only", "only", multiple=True, metavar="KEY=VALUE",
              help="run only the trials with this config value or axis label (repeatable: the same key, either "
                   "value; two keys, both); the rest stay unfinished for a later run, every id unchanged")
def run(study, results, address, resume, max_concurrent, dry_run, report, tensorboard, track, force, assignments,
        plugin_names, reuse, only) -> None:
    """Run every trial of STUDY on Ray Tune; results land in one Parquet contract."""
    spec = load_or_exit(study, assignments, with_ids=True, plugin_names=plugin_names)
    warn_oversubscribed(study, spec)
    from vi_sweeps.sweep.driver import check_location, describe, run_sweep

    try:
        chosen = select(spec, only) if only else None
    except ConfigError as err:
        fail_config(err)

    results = f"results/{spec.name}" if results is None else results
    tracking = tracking_or_exit(track, spec, results)
    if dry_run:  # the same checks of the results location as a run, writing nothing
        try:
            check_location(spec, results)
        except ConfigError as err:
            fail_config(err)
    if resume:
        try:
            held = Store.open(results, create=False).exists(STUDY_FILE)
        except OSError:
            held = False
        if not held:
            fail_config(ConfigError("--resume", [f"{results} holds no sweep to resume; drop --resume to start one"]))
    if dry_run:
        click.echo(trial_table_text(spec, chosen))
        click.echo(f"{study}: {len(spec.trials)} trials"
                   f"{f', {len(chosen)} chosen by --only' if chosen is not None else ''} (dry run: nothing written)")
        return
    if tensorboard == "RESULTS/tensorboard":
        if "://" in results:
            fail_config(ConfigError("--tensorboard", ["results on object storage: pass a local folder, --tensorboard DIR"]))
        tensorboard = str(Path(results, "tensorboard").resolve())

    def run_part(part):
        return run_sweep(spec, results, address=address, max_concurrent=max_concurrent, force=force,
                         tensorboard=tensorboard or "", tracking=tracking, reuse=reuse or "", only=part)

    with driver_errors():
        outcome = None
        if spec.spec.protocol is not None:  # tune every arm with the same budget, then test the chosen settings
            from vi_sweeps.sweep.protocol import tune_and_freeze

            tested, outcome = tune_and_freeze(spec, results, address, max_concurrent, force=force)
            if tested is not None:
                spec = tested
                chosen = select(spec, only) if only else None
        if outcome is None and interims(spec.spec) and chosen is None:  # seeds in interims: the design chooses each round's packs
            from vi_sweeps.cli.sequential import run_sequential

            outcome, needed = run_sequential(spec, results, run_part, address)
            outcome = outcome or run_part(needed)
            if not outcome.stop_reason:  # a stopped sweep has not reached the design's end: nothing to say of the rest
                click.echo(f"seeds in interims: the design ran {len(needed)} of the study's {len(spec.trials)} trials; "
                           "the rest were not needed (their comparisons are decided, stopped or at max)", err=True)
            chosen = needed
        elif outcome is None:  # (a protocol whose tuning stopped has its outcome already)
            outcome = run_part(chosen)
    counts = outcome.trials["status"].value_counts().to_dict() if len(outcome.trials) else {}
    started = set(outcome.trials["trial_id"]) if len(outcome.trials) else set()
    click.echo(f"results: {results}  ({', '.join(f'{v} {k}' for k, v in sorted(counts.items())) or 'nothing run'})")
    if outcome.stop_reason:
        click.echo(f"stopped: {outcome.stop_reason}", err=True)
    left = [tid for tid in outcome.unfinished if chosen is None or tid in chosen]
    if left:
        lines = [f"  {d}{'' if tid in started else ' (no results yet)'}" for tid, d in zip(left, describe(spec, left), strict=True)]
        click.echo(f"{len(left)} trial(s) did not finish; run the same command again to resume them:", err=True)
        click.echo("\n".join(lines[:30] + ([f"  ... and {len(lines) - 30} more"] if len(lines) > 30 else [])), err=True)
    if chosen is not None and only:
        rest = " ".join(shlex.quote(a) for a in ["vi-sweep", "run", study, "--results", results,
                                                 *(f"--set={a}" for a in assignments), *(f"--plugin={p}" for p in plugin_names)])
        click.echo(f"this part (--only): {len(chosen) - len(left)} of its {len(chosen)} trials finished; "
                   f"{len(outcome.unfinished) - len(left)} other trial(s) of the study remain; to run them: {rest}", err=True)
    if report and outcome.exit_code in (EXIT_OK, EXIT_ERRORED) and not outcome.stop_reason:
        write_report([results], report_folder(results))  # errored trials too: a report of what finished
    sys.exit(outcome.exit_code)


@main.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=None,
              help="suggestions per search cell (default: the study's)")
@click.option("--results", default=None, help="folder or URI; default results/NAME")
@click.option("--address", default=None, help="a running Ray cluster (as run's); default: RAY_ADDRESS if set, "
              "else a private embedded Ray")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None, help="Ray trials at once")
@click.option("--report/--no-report", default=True, show_default=True)
@track_option
@force_option
@set_option
@plugin_option
def tune(study, n_trials, results, address, max_concurrent, report, track, force, assignments, plugin_names) -> None:
    """Search STUDY's `search:` space with Optuna through Ray Tune; re-running adds trials."""
    spec = load_or_exit(study, assignments, with_ids=True, plugin_names=plugin_names)
    warn_oversubscribed(study, spec)
    from vi_sweeps.sweep.search import run_search

    results = f"results/{spec.name}" if results is None else results
    tracking = tracking_or_exit(track, spec, results)
    with driver_errors():
        names, control = run_search(spec, results, n_trials=n_trials, address=address,
                                    max_concurrent=max_concurrent, force=force, tracking=tracking)
    click.echo(f"results: {results}  (Optuna studies: {', '.join(names)})")
    if control.reason:
        click.echo(f"stopped: {control.reason}", err=True)
    elif report:
        write_report([results], report_folder(results))
    sys.exit(control.exit_code)


def entry() -> None:
    """The `vi-sweep` command: main, then an exit that skips the interpreter's teardown, where a
    C++ thread pool (pyarrow's) torn down beside it aborted about one run in three of `status`
    and `report` on a bad folder after the one-line error was printed ("terminate called
    without an active exception", exit 134 instead of 2; analysis/__main__.py exits the same
    way). Ray started here is shut down by vi_sweeps.sweep.ray_session before this point."""
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if done.code is not None and not isinstance(done.code, int):
            print(done.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry()
