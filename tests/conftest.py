import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items):
    """A test on the module's Ray is slow whether or not it says so, so `-m "not slow"` (the fast
    tier) never starts one. The files run longest first by their measured seconds
    (tests/durations.json, scripts/test_durations.py; a file not measured yet first of all), so
    that two workers given whole files end together (`--no-loadscope-reorder` keeps this order)."""
    for item in items:
        if "local_ray" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
    seconds = json.loads((ROOT / "tests" / "durations.json").read_text())
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::")[0], float("inf")))  # (a path from rootdir)


@pytest.fixture(scope="session", autouse=True)
def _cache(tmp_path_factory):
    """One reference-classifier cache per test session (trained once, ~10 s)."""
    os.environ.setdefault("VI_SWEEPS_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def local_ray():
    """A private embedded Ray for a test module (2 CPUs, no dashboard): "local", never the cluster
    the machine's current-cluster file names (another user's, or a stale one). Its workers' OpenMP
    threads wait passively: a trial of threads=2 whose threads spin starves the other test worker's
    (tests/test_sweep.py's threads=2 resume took 113 s beside one busy core, 31 s so)."""
    import ray

    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}})
    yield
    ray.shutdown()


def tiny(**overrides):
    """The smallest config that exercises the real code paths."""
    from vi_sweeps.study.config import TrialConfig

    values = dict(iterations=4, eval_every=2, eval_samples=200, batch_size=16, hidden=16,
                  mlp_layers=2, width=8, z_dim=4)
    values.update(overrides)
    return TrialConfig(**values)


@contextmanager
def tmpfs(path, size: str, read_only: bool = False):
    """A real small filesystem (tmpfs, needs root) mounted at `path` for the duration; the test
    is skipped, saying why, where one cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"{'ro,' if read_only else ''}size={size}"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def isolated_plugins():
    """Whatever a test's plugins register is gone after it: the registries, the plugin keys,
    the loaded plugins and their modules are put back as they were."""
    import sys

    from vi_sweeps.core import plugins
    from vi_sweeps.data.datasets import DATASETS
    from vi_sweeps.gan.architectures import ARCHITECTURES
    from vi_sweeps.gan.families import OBJECTIVES
    from vi_sweeps.gan.losses import ALI_LOSSES, GAN_LOSSES
    from vi_sweeps.gan.packing import PACK_RULES
    from vi_sweeps.gan.stabilisers import STABILISERS
    from vi_sweeps.metrics.evaluators import EVALUATORS
    from vi_sweeps.study import config

    registries = (ARCHITECTURES, DATASETS, EVALUATORS, OBJECTIVES, STABILISERS, GAN_LOSSES, ALI_LOSSES)
    saved = [(dict(r._entries), dict(r._origins)) for r in registries]
    keys, origins, loaded = dict(config.PLUGIN_KEYS), dict(config.PLUGIN_KEY_ORIGINS), dict(plugins.LOADED)
    rules = dict(PACK_RULES)
    yield
    for kind in set(PACK_RULES) - set(rules):
        del PACK_RULES[kind]
    for name in set(plugins.LOADED) - set(loaded):  # the test's plugin modules, and only those
        sys.modules.pop(name, None)
    for r, (entries, from_) in zip(registries, saved, strict=True):
        r._entries.clear(), r._entries.update(entries), r._origins.clear(), r._origins.update(from_)
    for d, old in ((config.PLUGIN_KEYS, keys), (config.PLUGIN_KEY_ORIGINS, origins), (plugins.LOADED, loaded)):
        d.clear(), d.update(old)


def clean_metrics(study, folder, ids=None):
    """The metrics of an uninterrupted run, in this process (no Ray), of every pack of the study
    that holds one of `ids` (default: every pack), each pack whole."""
    from vi_contract.tables import consolidate
    from vi_sweeps.engine.runner import PackRunner
    from vi_sweeps.study.expansion import layout_packs
    from vi_sweeps.sweep.driver import make_packs, prepare_store

    store = prepare_store(study, str(folder))
    ids = {t.trial_id for t in study.trials} if ids is None else ids
    whole = {t.trial_id for pack in layout_packs(study) if any(t.trial_id in ids for t in pack) for t in pack}
    for pack in make_packs(study, store.uri, whole):
        list(PackRunner(store, pack).run())
    return consolidate(store)[1]


def clean_sequential(study, folder):
    """An uninterrupted run of a sequential study (`seeds: {interim, max}`) in this process, no
    Ray: the design's rounds as `vi-sweep run` plans them (vi_sweeps.cli.sequential.plan), each
    round's packs whole, until the design needs nothing more. Returns (trials, metrics)."""
    from vi_contract.tables import consolidate, finished_ids
    from vi_sweeps.cli.sequential import plan
    from vi_sweeps.engine.runner import PackRunner
    from vi_sweeps.sweep.driver import make_packs, prepare_store

    store = prepare_store(study, str(folder))
    rounds = 0
    while todo := plan(study, str(folder))[0] - finished_ids(store):
        for pack in make_packs(study, store.uri, todo):
            list(PackRunner(store, pack).run())
        consolidate(store)
        rounds += 1
        assert rounds <= study.spec.seeds["max"] // study.spec.seeds["interim"], "the design ran past max"
    return consolidate(store)
