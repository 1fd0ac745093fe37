"""`vi-sweep`: a thin table of commands over library functions users can also call.

Exit codes: 0 every trial finished (a diverged trial is a finished, recorded result); 1 some
trials errored or the sweep stopped early (a full disk, a lost lease); 2 bad input (nothing
written); 3 the results folder is owned by another running driver; 130 interrupted (Ctrl-C)
and 143 terminated (SIGTERM), each after a clean stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from vi_contract.files import exit_code_for
from vi_contract.lease import LeaseHeld
from vi_contract.read import ResultsError
from vi_contract.schema import STUDY_FILE
from vi_contract.store import Store, StoreError
from vi_contract.tables import trial_table
from vi_sweeps import plugins
from vi_sweeps.errors import ConfigError
from vi_sweeps.keys import Key
from vi_sweeps.tracking import resolve

EXIT_OK, EXIT_ERRORED, EXIT_BAD_INPUT, EXIT_OWNED = 0, 1, 2, 3


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


def progress_row(trial, row: dict) -> str:
    """One line per evaluation, with every declared key of the trial's model and data set."""
    from vi_sweeps.evaluation import evaluation
    from vi_sweeps.objectives import OBJECTIVES

    cfg = trial.cfg
    keys: list[Key] = [*OBJECTIVES.meta(cfg.model).losses, *evaluation(cfg.dataset).metrics]
    parts = [f"step {row['step']:>6}/{cfg.iterations}"]
    parts += [f"{key.short} " + key.fmt.format(row[key]) for key in keys if row[key] == row[key]]
    parts.append("DIVERGED" if row["diverged"] else ("collapsed" if row["collapsed"] else "ok"))
    parts.append(f"{row['wall_s']:.1f}s")
    return "  ".join(parts)


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
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(EXIT_ERRORED)


@click.group(cls=OneLineErrors)
@click.version_option(package_name="vi-sweeps")
def main() -> None:
    """Sweeps and ablations of the generative models of Su (2018) on Ray Tune."""


@main.command()
@click.option("--model", default="gan", show_default=True)
@click.option("--dataset", default="ring8", show_default=True)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1))
@click.option("--iterations", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="any other config key")
@click.option("--out", type=click.Path(dir_okay=False), help="FILE.parquet: one row per evaluation")
@click.option("--samples", type=click.Path(dir_okay=False), help="FILE.npy: the final samples")
@click.option("--list-keys", is_flag=True, help="print every config key with its default and doc")
@plugin_option
def trial(model, dataset, seed, iterations, assignments, out, samples, list_keys, plugin_names) -> None:
    """Run one trial in this process, without Ray."""
    from vi_sweeps.config import TrialConfig, field_docs, key_default, make_config, parse_assignments

    load_plugins_or_exit(plugin_names)
    if list_keys:
        from vi_sweeps.config import EXECUTION_KEYS
        from vi_sweeps.objectives import OBJECTIVES

        click.echo("Experiment keys define a trial (its trial_id hashes them); execution keys (marked *) do not.")
        for name, doc in field_docs().items():
            mark = "*" if name in EXECUTION_KEYS else " "
            click.echo(f"{name:16}{mark} {key_default(name)!r:18} {doc}")
        serial = [m for m in OBJECTIVES.names() if not OBJECTIVES.meta(m).vectorised]
        click.echo(f"\nModels trained one seed after another inside a pack (not vectorised): {', '.join(serial)}")
        return
    try:
        values = {"model": model, "dataset": dataset, "seed": seed, "iterations": iterations,
                  "eval_every": min(TrialConfig.model_fields["eval_every"].default, iterations)}
        values.update(parse_assignments(assignments))
        cfg = make_config(values, "vi-sweep trial")
    except ConfigError as err:
        fail_config(err)
    for option, path in (("--out", out), ("--samples", samples)):  # before training, not after
        if path:
            try:
                Path(path).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)
            except (OSError, RuntimeError) as err:
                fail_config(ConfigError(option, [f"{path}: cannot be written there ({getattr(err, 'strerror', None) or err})"]))
            if Path(path).is_dir() or not os.access(Path(path).expanduser().absolute().parent, os.W_OK):
                fail_config(ConfigError(option, [f"{path}: cannot be written there"]))

    from vi_sweeps.trial import Trial, evaluations

    try:
        run = Trial(cfg, keep_samples=bool(samples))
    except FileNotFoundError as err:  # an image folder that is not there, FID weights that are not
        fail_config(ConfigError("vi-sweep trial", [str(err)]))
    click.echo(f"trial {cfg.trial_id}: {cfg.model} on {cfg.dataset}, seed {cfg.seed}, "
               f"{cfg.iterations} iterations", err=True)
    for evals in evaluations(run):
        click.echo(progress_row(run, evals[0].row), err=True)
    rows = run.trial_rows(0)
    status = "diverged" if rows[-1]["diverged"] else "finished"
    if out:

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(trial_table({**cfg.model_dump(), "trial_id": cfg.trial_id}, {}, rows, status), out)
        click.echo(f"wrote {len(rows)} rows to {out}", err=True)
    if samples:
        Path(samples).parent.mkdir(parents=True, exist_ok=True)
        np.save(samples, run.samples[0].numpy())
        click.echo(f"wrote {len(run.samples[0])} samples to {samples}", err=True)


def load_or_exit(path: str, assignments: tuple[str, ...] = (), with_ids: bool = False, plugin_names: tuple[str, ...] = ()):
    """The study (after the plugins: `--plugin`, entry points, its own `plugins:`), or exit 2
    naming the problem; with_ids also computes every trial's id, which reads the content of a
    data folder (so a missing folder is bad input too)."""
    from vi_sweeps.config import parse_assignments
    from vi_sweeps.study import load_study

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


@main.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--results", default=None, help="folder or URI (s3://...); default results/NAME")
@click.option("--address", default=None, help="a running Ray cluster: HOST:PORT, auto, or ray://HOST:10001 "
              "(needs ray[client]); default: embedded local Ray")
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
              "export) that have this study's trial ids, instead of running them (same id, same numbers)")
@click.option("--only", "only", multiple=True, metavar="KEY=VALUE",
              help="run only the trials with this config value or axis label (repeatable: the same key, either "
                   "value; two keys, both); the rest stay unfinished for a later run, every id unchanged")
def run(study, results, address, resume, max_concurrent, dry_run, report, tensorboard, track, force, assignments,
        plugin_names, reuse, only) -> None:
    """Run every trial of STUDY on Ray Tune; results land in one Parquet contract."""
    spec = load_or_exit(study, assignments, with_ids=True, plugin_names=plugin_names)
    from vi_sweeps.subset import select
    from vi_sweeps.sweep import check_location, describe, run_sweep

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
    with driver_errors():
        outcome = run_sweep(spec, results, address=address, max_concurrent=max_concurrent, force=force,
                            tensorboard=tensorboard or "", tracking=tracking, reuse=reuse or "", only=chosen)
    counts = outcome.trials["status"].value_counts().to_dict() if len(outcome.trials) else {}
    started = set(outcome.trials["trial_id"]) if len(outcome.trials) else set()
    click.echo(f"results: {results}  ({', '.join(f'{v} {k}' for k, v in sorted(counts.items())) or 'nothing run'})")
    if outcome.stop_reason:
        click.echo(f"stopped: {outcome.stop_reason}", err=True)
    if outcome.unfinished:
        lines = [f"  {d}{'' if tid in started else ' (no results yet)'}"
                 for tid, d in zip(outcome.unfinished, describe(spec, outcome.unfinished), strict=True)]
        click.echo(f"{len(outcome.unfinished)} trial(s) did not finish; run the same command again to resume them:", err=True)
        click.echo("\n".join(lines[:30] + ([f"  ... and {len(lines) - 30} more"] if len(lines) > 30 else [])), err=True)
    if report and outcome.exit_code == EXIT_OK:
        write_report([results], f"{results}/report")
    sys.exit(outcome.exit_code)


def write_report(results: list[str], out: str, converged: str | None = None, link_figures: bool = False) -> None:

    try:
        from analysis.report import build_report  # the report path: matplotlib and seaborn load here only

        path = build_report(results, out, converged, link_figures)
    except ResultsError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as err:  # the output folder cannot be written (a file, no permission: 2; no space: 1)
        click.echo(f"error: cannot write the report to {out}: {err.strerror or err}", err=True)
        sys.exit(exit_code_for(err))
    click.echo(f"report: {path}")


@main.command()
@click.argument("results")
@click.option("--json", "as_json", is_flag=True, help="machine-readable: totals and per-condition counts")
def status(results, as_json) -> None:
    """Summarise a running or finished sweep from its files (read-only)."""
    from vi_sweeps.status import sweep_status

    try:
        click.echo(sweep_status(results, as_json))
    except (ResultsError, FileNotFoundError, NotADirectoryError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as err:  # a folder or file this user may not read
        click.echo(f"error: {results}: cannot be read ({err.strerror or err})", err=True)
        sys.exit(EXIT_BAD_INPUT)


@main.command()
@click.argument("results", nargs=-1, required=True)
@click.option("--out", default=None, help="output folder (default: RESULTS/report)")
@click.option("--converged", default=None, metavar="METRIC>=VALUE",
              help="when a seed counts as converged, for the time-to-converge findings (default: modes_frac>=0.875 "
                   "where the results have it)")
@click.option("--link-figures", is_flag=True,
              help="report.html refers to the PNGs beside it instead of embedding them (for a committed report)")
def report(results, out, converged, link_figures) -> None:
    """Figures, REPORT.md and report.html from one or more results folders (read-only on
    them; a running sweep is reported as it stands)."""
    write_report(list(results), out or f"{results[0]}/report", converged, link_figures)


@main.command()
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
    click.echo(f"exported {counts['trials']} trials, {counts['evaluations']} evaluations and "
               f"{counts['snapshots']} sample snapshots to {dest}")


@main.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=None,
              help="suggestions per search cell (default: the study's)")
@click.option("--results", default=None, help="folder or URI; default results/NAME")
@click.option("--address", default=None, help="a running Ray cluster; default: embedded local Ray")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None, help="Ray trials at once")
@click.option("--report/--no-report", default=True, show_default=True)
@track_option
@force_option
@set_option
@plugin_option
def tune(study, n_trials, results, address, max_concurrent, report, track, force, assignments, plugin_names) -> None:
    """Search STUDY's `search:` space with Optuna through Ray Tune; re-running adds trials."""
    spec = load_or_exit(study, assignments, with_ids=True, plugin_names=plugin_names)
    from vi_sweeps.search import run_search

    results = f"results/{spec.name}" if results is None else results
    tracking = tracking_or_exit(track, spec, results)
    with driver_errors():
        names, control = run_search(spec, results, n_trials=n_trials, address=address,
                                    max_concurrent=max_concurrent, force=force, tracking=tracking)
    click.echo(f"results: {results}  (Optuna studies: {', '.join(names)})")
    if control.reason:
        click.echo(f"stopped: {control.reason}", err=True)
    elif report:
        write_report([results], f"{results}/report")
    sys.exit(control.exit_code)


def _hex_prefix(value: str | None) -> str | None:
    if value is not None and (len(value) < 8 or any(c not in "0123456789abcdefABCDEF" for c in value)):
        raise click.BadParameter(f"{value!r}: at least 8 hex digits of the sha256")
    return value


@main.command("fetch-weights")
@click.option("--url", default=None, help="where to download from (default: torch-fidelity's release of the weights)")
@click.option("--from", "source", type=click.Path(exists=True, dir_okay=False), default=None,
              help="copy this file instead of downloading (for nodes without internet)")
@click.option("--to", "dest", type=click.Path(dir_okay=False), default=None,
              help="where to put them (default: torch-fidelity's cache, where every trial looks)")
@click.option("--sha256", "digest_prefix", default=None, metavar="HEX",
              callback=lambda ctx, param, v: _hex_prefix(v),
              help="the file's expected sha256 (a prefix will do; default: torch-fidelity's Inception weights)")
def fetch_weights(url, source, dest, digest_prefix) -> None:
    """Place the Inception weights FID needs where trials find them, once per node (or once on
    a shared disk, then pass fid_weights=PATH)."""

    import torch

    from vi_sweeps.metrics import INCEPTION_FILE, INCEPTION_URL, default_weights_path

    if dest is not None and not dest.strip():
        fail_config(ConfigError("--to", ["an empty path; name the weights file, or leave --to out for "
                                         f"torch-fidelity's cache ({default_weights_path()})"]))
    try:
        target = Path(dest).expanduser().absolute() if dest else default_weights_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    except (OSError, RuntimeError) as err:
        fail_config(ConfigError("--to", [f"{dest or target}: cannot be written there ({getattr(err, 'strerror', None) or err})"]))
    os.close(fd)
    # torch-fidelity's file name carries the first digits of its sha256
    expected = (digest_prefix or INCEPTION_FILE.rsplit("-", 1)[1].removesuffix(".pth")).lower()
    try:
        if source:
            shutil.copyfile(source, tmp)
        else:
            torch.hub.download_url_to_file(url or INCEPTION_URL, tmp, progress=sys.stderr.isatty())
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        if not digest.startswith(expected):  # a copy too: garbage there would be every trial's FID
            where = f"--from {source}" if source else f"--url {url or INCEPTION_URL}"
            click.echo(f"error: {where}: not the weights asked for (sha256 {digest[:8]}..., expected "
                       f"{expected}..., {'--sha256' if digest_prefix else 'torch-fidelity Inception'}); nothing written",
                       err=True)
            sys.exit(EXIT_BAD_INPUT if source else EXIT_ERRORED)
        os.replace(tmp, target)
    except OSError as err:
        click.echo(f"error: cannot fetch the weights to {target}: {err}", err=True)
        sys.exit(EXIT_ERRORED)
    finally:
        Path(tmp).unlink(missing_ok=True)
    click.echo(f"weights: {target} (sha256 {digest[:16]})")


if __name__ == "__main__":
    main()
