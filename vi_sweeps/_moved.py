"""The modules of the former flat layout, still importable by their old names: a plugin's
source is part of its trials' ids, so a plugin written against `vi_sweeps.datasets` must keep
working unchanged. An old name is the new module itself (one module object, one registry),
not a copy. (vi_sweeps.study, .metrics and .sweep became packages that lend their former
names; vi_sweeps.cli became the package of the commands.)"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    "vi_sweeps.architectures": "vi_sweeps.gan.architectures",
    "vi_sweeps.claims": "vi_sweeps.study.claims",
    "vi_sweeps.cli_common": "vi_sweeps.cli.common",
    "vi_sweeps.cli_results": "vi_sweeps.cli.results",
    "vi_sweeps.cli_sequential": "vi_sweeps.cli.sequential",
    "vi_sweeps.cli_tools": "vi_sweeps.cli.tools",
    "vi_sweeps.config": "vi_sweeps.study.config",
    "vi_sweeps.control": "vi_sweeps.sweep.control",
    "vi_sweeps.datasets": "vi_sweeps.data.datasets",
    "vi_sweeps.errors": "vi_sweeps.core.errors",
    "vi_sweeps.eval_keys": "vi_sweeps.metrics.keys",
    "vi_sweeps.evaluation": "vi_sweeps.metrics.evaluation",
    "vi_sweeps.expansion": "vi_sweeps.study.expansion",
    "vi_sweeps.feature_metrics": "vi_sweeps.metrics.features",
    "vi_sweeps.imagecache": "vi_sweeps.data.imagecache",
    "vi_sweeps.keys": "vi_sweeps.core.keys",
    "vi_sweeps.losses": "vi_sweeps.gan.losses",
    "vi_sweeps.migrate": "vi_sweeps.engine.migrate",
    "vi_sweeps.objectives": "vi_sweeps.gan.families",
    "vi_sweeps.packing": "vi_sweeps.gan.packing",
    "vi_sweeps.plugins": "vi_sweeps.core.plugins",
    "vi_sweeps.ray_session": "vi_sweeps.sweep.ray_session",
    "vi_sweeps.refnet": "vi_sweeps.metrics.refnet",
    "vi_sweeps.registry": "vi_sweeps.core.registry",
    "vi_sweeps.results": "vi_sweeps.engine.results",
    "vi_sweeps.reuse": "vi_sweeps.sweep.reuse",
    "vi_sweeps.rowcheck": "vi_sweeps.engine.rowcheck",
    "vi_sweeps.runner": "vi_sweeps.engine.runner",
    "vi_sweeps.search": "vi_sweeps.sweep.search",
    "vi_sweeps.single": "vi_sweeps.engine.single",
    "vi_sweeps.stabilisers": "vi_sweeps.gan.stabilisers",
    "vi_sweeps.status": "vi_sweeps.sweep.status",
    "vi_sweeps.studyfile": "vi_sweeps.study.schema",
    "vi_sweeps.subset": "vi_sweeps.study.subset",
    "vi_sweeps.tensorboard": "vi_sweeps.track.tensorboard",
    "vi_sweeps.trackers": "vi_sweeps.track.callbacks",
    "vi_sweeps.tracking": "vi_sweeps.track.spec",
    "vi_sweeps.trial": "vi_sweeps.engine.trial",
    "vi_sweeps.weights": "vi_sweeps.metrics.weights",
}


class Former(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and hands back the module that now holds it."""

    def __init__(self) -> None:
        self.specs: dict = {}

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        self.specs[spec.name] = module.__spec__  # the import system stamps the old name's spec on it: put it back
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.specs.pop(module.__spec__.name)


def lender(package: str, module: str, names: tuple[str, ...]):
    """A package's `__getattr__` that lends the names of the former module it replaced (`names`,
    read from `module` on first use, so importing one submodule loads no other)."""

    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(module), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def install() -> None:
    if not any(isinstance(f, Former) for f in sys.meta_path):
        sys.meta_path.append(Former())
