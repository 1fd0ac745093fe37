"""`vi-sweep trial` (one trial in this process, without Ray) and `vi-sweep fetch-weights`
(FID's Inception weights placed where trials find them): thin commands over vi_sweeps.engine.single
and vi_sweeps.metrics.weights."""

from __future__ import annotations

import sys

import click

from vi_sweeps.cli.common import EXIT_BAD_INPUT, EXIT_ERRORED, fail_config, load_plugins_or_exit, plugin_option
from vi_sweeps.core.errors import ConfigError
from vi_sweeps.study.config import keys_text


@click.command()
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
    load_plugins_or_exit(plugin_names)
    if list_keys:  # the declarations only: no torch
        click.echo(keys_text())
        return
    from vi_sweeps.engine import single  # torch: not for `vi-sweep --help` or --list-keys

    try:
        cfg = single.single_config(model, dataset, seed, iterations, assignments)
        single.check_outputs(out, samples)
        click.echo(f"trial {cfg.trial_id}: {cfg.model} on {cfg.dataset}, seed {cfg.seed}, "
                   f"{cfg.iterations} iterations", err=True)
        _, rows = single.run_single(cfg, out, samples, lambda row: click.echo(single.progress_row(cfg, row), err=True))
    except ConfigError as err:
        fail_config(err)
    except FileNotFoundError as err:  # the trial id fingerprints a data folder that is not there
        fail_config(ConfigError(single.SOURCE, [str(err)]))
    if out:
        click.echo(f"wrote {len(rows)} rows to {out}", err=True)
    if samples:
        click.echo(f"wrote the final samples to {samples}", err=True)


def _hex_prefix(value: str | None) -> str | None:
    if value is not None and (len(value) < 8 or any(c not in "0123456789abcdefABCDEF" for c in value)):
        raise click.BadParameter(f"{value!r}: at least 8 hex digits of the sha256")
    return value


@click.command("fetch-weights")
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
    from vi_sweeps.metrics import weights  # torch: not for `vi-sweep --help`

    try:
        target, digest = weights.fetch_weights(url, source, dest, digest_prefix)
    except ConfigError as err:
        fail_config(err)
    except weights.WeightsMismatch as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT if source else EXIT_ERRORED)
    except weights.FetchFailed as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_ERRORED)
    click.echo(f"weights: {target} (sha256 {digest[:16]})")
