"""`vi-sweep`: a thin table of commands over library functions users can also call."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vi_sweeps.config import ConfigError


def fail_config(err: ConfigError) -> None:
    click.echo(str(err), err=True)
    sys.exit(2)


def progress_row(cfg, row: dict) -> str:
    parts = [f"step {row['step']:>6}/{cfg.iterations}"]
    for key in ("loss/d", "loss/g", "loss/rec", "loss/nll"):
        if row[key] == row[key]:
            parts.append(f"{key.split('/')[1]} {row[key]:.3f}")
    for key, fmt in (("eval/modes", "{:.0f}"), ("eval/hq_frac", "{:.2f}"), ("eval/kl_uniform", "{:.3f}"),
                     ("eval/fd_2d", "{:.3f}"), ("eval/fd_digits", "{:.2f}"), ("eval/fid_inception", "{:.2f}")):
        if row[key] == row[key]:
            parts.append(f"{key.split('/')[1]} " + fmt.format(row[key]))
    parts.append("DIVERGED" if row["diverged"] else ("collapsed" if row["collapsed"] else "ok"))
    parts.append(f"{row['wall_s']:.1f}s")
    return "  ".join(parts)


@click.group()
@click.version_option(package_name="vi-sweeps")
def main() -> None:
    """Sweeps and ablations of the generative models of Su (2018) on Ray Tune."""


@main.command()
@click.option("--model", default="gan", show_default=True)
@click.option("--dataset", default="ring8", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--iterations", default=2000, show_default=True, type=int)
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="any other config key")
@click.option("--out", type=click.Path(dir_okay=False), help="FILE.parquet: one row per evaluation")
@click.option("--samples", type=click.Path(dir_okay=False), help="FILE.npy: the final samples")
@click.option("--list-keys", is_flag=True, help="print every config key with its default and doc")
def trial(model, dataset, seed, iterations, assignments, out, samples, list_keys) -> None:
    """Run one trial in this process, without Ray."""
    from vi_sweeps.config import TrialConfig, field_docs, make_config, parse_assignments

    if list_keys:
        for name, doc in field_docs().items():
            click.echo(f"{name:16} {TrialConfig.model_fields[name].default!r:18} {doc}")
        return
    try:
        values = {"model": model, "dataset": dataset, "seed": seed, "iterations": iterations,
                  "eval_every": min(TrialConfig.model_fields["eval_every"].default, iterations)}
        values.update(parse_assignments(assignments))
        cfg = make_config(values, "vi-sweep trial")
    except ConfigError as err:
        fail_config(err)
    import numpy as np

    from vi_sweeps.results import trial_table
    from vi_sweeps.trial import Trial, evaluations

    run = Trial(cfg)
    click.echo(f"trial {cfg.trial_id}: {cfg.model} on {cfg.dataset}, seed {cfg.seed}, "
               f"{cfg.iterations} iterations", err=True)
    for row in evaluations(run):
        click.echo(progress_row(cfg, row), err=True)
    status = "diverged" if run.rows[-1]["diverged"] else "finished"
    if out:
        import pyarrow.parquet as pq

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(trial_table({**cfg.model_dump(), "trial_id": cfg.trial_id}, run.rows, status), out)
        click.echo(f"wrote {len(run.rows)} rows to {out}", err=True)
    if samples:
        Path(samples).parent.mkdir(parents=True, exist_ok=True)
        np.save(samples, run.samples.numpy())
        click.echo(f"wrote {len(run.samples)} samples to {samples}", err=True)


def load_or_exit(path: str, assignments: tuple[str, ...] = ()):
    from vi_sweeps.config import parse_assignments
    from vi_sweeps.study import load_study

    try:
        return load_study(path, parse_assignments(assignments))
    except ConfigError as err:
        fail_config(err)


set_option = click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                          help="override a key of the study's base config (repeatable)")


def trial_table_text(study) -> str:
    import pandas as pd

    rows = [{"trial_id": t.trial_id, **t.labels, **t.config.model_dump()} for t in study.trials]
    frame = pd.DataFrame(rows)
    varying = [c for c in frame.columns if c != "trial_id" and frame[c].astype(str).nunique() > 1]
    shown = frame[["trial_id", *varying]] if varying else frame[["trial_id", "model", "dataset", "seed"]]
    return shown.to_string(index=False)


@main.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--list", "list_trials", is_flag=True, help="print the trial table")
@set_option
def validate(study, list_trials, assignments) -> None:
    """Check a study file; print its size (and with --list, its trials)."""
    spec = load_or_exit(study, assignments)
    if list_trials:
        click.echo(trial_table_text(spec))
    click.echo(f"{study}: valid, {len(spec.trials)} trials")


@main.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--results", default=None, help="folder or URI (s3://...); default results/NAME")
@click.option("--address", default=None, help="a running Ray cluster (ray://... or HOST:PORT); default: embedded local Ray")
@click.option("--resume", is_flag=True, help="finish an interrupted sweep (running the same command again does the same)")
@click.option("--max-concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
@click.option("--dry-run", is_flag=True, help="print the trial table and its size; run nothing")
@click.option("--report/--no-report", default=True, show_default=True, help="write the report when done")
@set_option
def run(study, results, address, resume, max_concurrent, dry_run, report, assignments) -> None:
    """Run every trial of STUDY on Ray Tune; results land in one Parquet contract."""
    spec = load_or_exit(study, assignments)
    if dry_run:
        click.echo(trial_table_text(spec))
        click.echo(f"{study}: {len(spec.trials)} trials (dry run: nothing written)")
        return
    from vi_sweeps.sweep import run_sweep

    results = results or f"results/{spec.name}"
    try:
        trials = run_sweep(spec, results, address=address, max_concurrent=max_concurrent)
    except ConfigError as err:
        fail_config(err)
    counts = trials["status"].value_counts().to_dict()
    click.echo(f"results: {results}  ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))})")
    if report:
        write_report([results], f"{results}/report")


def write_report(results: list[str], out: str) -> None:
    from analysis.load import ResultsError
    from analysis.report import build_report
    from vi_sweeps.results import consolidate
    from vi_sweeps.storage import Store

    for location in results:
        store = Store.open(location)
        if store.listdir("trials"):
            consolidate(store)
    try:
        path = build_report(results, out)
    except ResultsError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    click.echo(f"report: {path}")


@main.command()
@click.argument("results")
def status(results) -> None:
    """Summarise a running or finished sweep from its files."""
    from vi_sweeps.status import sweep_status

    click.echo(sweep_status(results))


@main.command()
@click.argument("results", nargs=-1, required=True)
@click.option("--out", default=None, help="output folder (default: RESULTS/report)")
def report(results, out) -> None:
    """Figures, REPORT.md and report.html from one or more results folders."""
    write_report(list(results), out or f"{results[0]}/report")


@main.command()
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--trials", "n_trials", type=int, default=None, help="suggestions per search cell (default: the study's)")
@click.option("--results", default=None, help="folder or URI; default results/NAME")
@click.option("--address", default=None, help="a running Ray cluster; default: embedded local Ray")
@click.option("--max-concurrent", type=int, default=None)
@click.option("--report/--no-report", default=True, show_default=True)
@set_option
def tune(study, n_trials, results, address, max_concurrent, report, assignments) -> None:
    """Search STUDY's `search:` space with Optuna through Ray Tune; re-running adds trials."""
    spec = load_or_exit(study, assignments)
    from vi_sweeps.search import run_search

    results = results or f"results/{spec.name}"
    try:
        names = run_search(spec, results, n_trials=n_trials, address=address, max_concurrent=max_concurrent)
    except ConfigError as err:
        fail_config(err)
    click.echo(f"results: {results}  (Optuna studies: {', '.join(names)})")
    if report:
        write_report([results], f"{results}/report")


if __name__ == "__main__":
    main()
