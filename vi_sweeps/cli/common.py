"""What every `vi-sweep` command shares: exit codes, one-line errors, the options several
commands take (--set, --plugin, --track, --force), loading a study or exiting 2, and writing a
report."""

from __future__ import annotations

import contextlib
import sys

import click
import pandas as pd

from vi_contract.files import exit_code_for
from vi_contract.lease import LeaseHeld
from vi_contract.read import ResultsError
from vi_contract.store import StoreError
from vi_sweeps.core import plugins
from vi_sweeps.core.errors import ConfigError
from vi_sweeps.study.config import parse_assignments
from vi_sweeps.study.load import load_study
from vi_sweeps.track.spec import resolve

EXIT_OK, EXIT_ERRORED, EXIT_BAD_INPUT, EXIT_OWNED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@contextlib.contextmanager
def driver_errors():
    """A sweep's or a search's driver: bad input exits 2, a folder another driver owns 3, a
    store that cannot be written 1, each in one line."""

    try:
        yield
    except ConfigError as err:
        fail_config(err)
    except LeaseHeld as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_OWNED)
    except StoreError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_ERRORED)


def fail_config(err: ConfigError) -> None:
    click.echo(str(err), err=True)
    sys.exit(EXIT_BAD_INPUT)


plugin_option = click.option("--plugin", "plugin_names", multiple=True, metavar="MODULE|FILE.py",
                             help="load a plugin first (a module name, or a .py file relative to here; repeatable); "
                                  "installed packages' `vi_sweeps.plugins` entry points load always")


def load_plugins_or_exit(names: tuple[str, ...] = ()) -> None:
    try:
        plugins.load_entry_points()
        plugins.load(names)
    except ConfigError as err:
        fail_config(err)


class OneLineErrors(click.Group):
    """Usage errors (a bad option, a missing argument) as one line naming the option, exit 2,
    instead of click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.ctx.get_help())
            sys.exit(err.exit_code)
        except click.UsageError as err:
            where = f"{err.ctx.command_path}: " if err.ctx is not None else ""
            click.echo(f"error: {where}{err.format_message()}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:  # a second Ctrl-C, or one outside a driver
            click.echo("aborted", err=True)
            sys.exit(EXIT_INTERRUPTED)


def load_or_exit(path: str, assignments: tuple[str, ...] = (), with_ids: bool = False, plugin_names: tuple[str, ...] = ()):
    """The study (after the plugins: `--plugin`, entry points, its own `plugins:`), or exit 2
    naming the problem; with_ids also computes every trial's id, which reads the content of a
    data folder (so a missing folder is bad input too)."""
    load_plugins_or_exit(plugin_names)

    try:
        study = load_study(path, parse_assignments(assignments))
        if with_ids:
            for t in study.trials:
                t.trial_id  # noqa: B018 - computed once, cached
        return study
    except ConfigError as err:
        fail_config(err)
    except FileNotFoundError as err:
        fail_config(ConfigError(path, [str(err)]))


def warn_oversubscribed(path: str, study) -> None:
    """A trial whose torch `threads` exceed the CPUs Ray reserves for it (`resources.cpu`) shares
    cores with the packs beside it: warn (tests/test_sweep.py's threads=2 resume ran 113 s beside
    one busy core where it ran 21 s alone)."""
    threads = max((t.config.threads for t in study.trials), default=1)
    cpu = study.spec.resources.cpu
    if threads > cpu:
        click.echo(f"warning: {path}: threads {threads} > resources.cpu {cpu:g}: each pack runs {threads} torch threads "
                   f"on the {cpu:g} CPU(s) Ray reserves for it, so packs side by side oversubscribe the cores and run "
                   f"slower; set resources: {{cpu: {threads}}}", err=True)


set_option = click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                          help="override a key of the study's base config (repeatable)")


track_option = click.option("--track", default=None, metavar="mlflow[=URI]|wandb[=PROJECT]",
                            help="also track each trial as a run in MLflow or W&B, through Ray Tune's callbacks (offline by "
                                 "default: RESULTS/tracking); wins over the study's `tracking:`")


def tracking_or_exit(option, spec, results):
    try:
        return resolve(option, spec.spec.tracking, spec.name, results)
    except ConfigError as err:
        fail_config(err)


force_option = click.option("--force", is_flag=True,
                            help="take the results folder over from a driver that holds its lease (one that is gone)")


def trial_table_text(study, chosen: set[str] | None = None) -> str:
    rows = [{"trial_id": t.trial_id, **t.labels, **t.config.model_dump()} for t in study.trials
            if chosen is None or t.trial_id in chosen]
    frame = pd.DataFrame(rows)
    varying = [c for c in frame.columns if c != "trial_id" and frame[c].astype(str).nunique() > 1]
    shown = frame[["trial_id", *varying]] if varying else frame[["trial_id", "model", "dataset", "seed"]]
    return shown.to_string(index=False)


def write_report(results: list[str], out: str, converged: str | None = None, link_figures: bool = False) -> None:
    try:
        from analysis.glance import answer_of
        from analysis.report import build_report  # the report path: matplotlib and seaborn load here only

        path = build_report(results, out, converged, link_figures)
    except ResultsError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as err:  # the output folder cannot be written (a file, no permission: 2; no space: 1)
        click.echo(f"error: cannot write the report to {out}: {err.strerror or err}", err=True)
        sys.exit(exit_code_for(err))
    for line in answer_of(path.read_text()):
        click.echo(f"answer: {line}")
    click.echo(f"report: {path.with_name('report.html')} (and {path.name} beside it)")

