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
        values = {"model": model, "dataset": dataset, "seed": seed, "iterations": iterations}
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
