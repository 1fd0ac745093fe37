"""Plugins: modules researchers write outside the package that register models, data sets,
losses, stabilisers, metrics or config keys, and reach every Ray worker.

Three ways in, all loaded on the driver before a study is validated (so their names validate
and `vi-sweep trial --list-keys` shows their keys) and in every Ray worker before a pack is
built:
- a study's `plugins:` list: module names, or `.py` files relative to the study file;
- `--plugin` on run, tune, trial and validate (the same two forms, files relative to the
  current folder);
- installed packages that declare an entry point in the group `vi_sweeps.plugins`.
A plugin is identified by its source, never by a version string: a file plugin by its file's
sha256, an installed package (an editable one included) by the sha256 of every file of its
top-level package, so editing a plugin changes the ids of the trials that use it (an edited
editable package keeps its version). A file plugin is imported under its file's stem and
shipped to the workers through Ray's runtime_env (`py_modules`); a worker checks that what it
imported is the driver's source. versions.json records each run's plugins. A plugin that fails
to import (raising SystemExit included) is bad input naming it and its error; a name a plugin
registers twice, or that a built-in has, fails at its registration (vi_sweeps.core.registry).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vi_sweeps.core.errors import ConfigError
from vi_sweeps.core.registry import LOADING

ENTRY_POINT_GROUP = "vi_sweeps.plugins"


@dataclass(frozen=True)
class Plugin:
    module: str  # the name it is imported under, on the driver and on every worker
    path: str = ""  # a file plugin's absolute path ("" for a module or an entry point)
    source: str = ""  # "sha256:<hex>" of its source (source_of): what enters the trial ids
    version: str = ""  # an installed package's version string, for people (not part of any id)

    @property
    def is_file(self) -> bool:
        return bool(self.path)


LOADED: dict[str, Plugin] = {}


def _sha(path: str | Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_of(module) -> str:
    """sha256 of what a module plugin runs: every file (its path and bytes) under the folders of
    its top-level package, compiled caches left out; a top-level module alone: its file."""
    top = sys.modules[module.__name__.split(".")[0]]
    folders = getattr(top, "__path__", None)
    if folders is None:
        return _sha(top.__file__) if getattr(top, "__file__", None) else "unknown"
    digest = hashlib.sha256()
    for folder in map(Path, folders):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.relative_to(folder).parts)
        for path in files:
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def _version_of(module) -> str:
    """The installed distribution's version of a module plugin ("" where none says)."""
    top = module.__name__.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        return importlib.metadata.version(dist)
    return ""


def _module_plugin(name: str) -> Plugin:
    module = sys.modules[name]
    return Plugin(name, "", source_of(module), _version_of(module))


@contextmanager
def _no_exit(name: str):
    """A plugin that raises SystemExit on import failed to import (before: `run` exited 0 having
    done nothing)."""
    try:
        yield
    except SystemExit as stop:
        raise ImportError(f"{name} raised SystemExit({stop.code!r}) on import") from None


@contextmanager
def _registering(module: str):
    """What a plugin registers while it is imported is recorded as its (registry.origin)."""
    LOADING.append(module)
    try:
        yield
    finally:
        LOADING.pop()


def _import_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _registering(name), _no_exit(name):
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_module(name: str):
    with _registering(name), _no_exit(name):
        return importlib.import_module(name)


def load(names: list[str] | tuple[str, ...], base: str | Path = ".", source: str = "--plugin") -> list[Plugin]:
    """Import each plugin (once); a failure is a ConfigError naming it and its error."""
    out = []
    for i, name in enumerate(names):
        where = f"plugins[{i}]: " if source != "--plugin" else ""
        try:
            out.append(_load_one(str(name), Path(base)))
        except ConfigError:
            raise
        except (Exception, SystemExit) as err:  # noqa: BLE001 - whatever the plugin raised (an exit too), in one line
            raise ConfigError(source, [f"{where}{name}: cannot be loaded ({type(err).__name__}: "
                                       f"{str(err).splitlines()[0] if str(err) else ''})"]) from None
    return out


def _load_one(name: str, base: Path) -> Plugin:
    if name.endswith(".py") or "/" in name:
        path = (base / name).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no such file {path}")
        module = path.stem
        if not module.isidentifier() or module.startswith("__"):
            raise ValueError(f"{path.name}: a plugin file is imported by its name, so that must be a module name "
                             "(letters, digits, _; not __init__)")
        if module in LOADED:
            if LOADED[module].path != str(path) or LOADED[module].source != _sha(path):
                raise ValueError(f"another plugin is loaded as {module!r} ({LOADED[module].path or 'a module'})")
            return LOADED[module]
        found = sys.modules.get(module) or importlib.util.find_spec(module)
        origin = getattr(found, "origin", None) or getattr(found, "__file__", None)
        if found is not None and (origin is None or Path(origin).resolve() != path):
            raise ValueError(f"its name {module!r} is a module Python already has; rename the file")
        _import_file(module, path)
        plugin = Plugin(module, str(path), _sha(path))
    else:
        if name in LOADED:
            return LOADED[name]
        _import_module(name)
        plugin = _module_plugin(name)
    LOADED[plugin.module] = plugin
    return plugin


def load_entry_points() -> list[Plugin]:
    """The installed packages' plugins (entry point group `vi_sweeps.plugins`)."""
    out = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.module in LOADED:
            continue
        try:
            with _registering(ep.module), _no_exit(ep.module):
                ep.load()
        except (Exception, SystemExit) as err:  # noqa: BLE001 - an installed plugin that fails (or exits), in one line
            first = str(err).splitlines()[0] if str(err) else ""
            raise ConfigError(f"entry point {ep.name} ({ENTRY_POINT_GROUP})",
                              [f"{ep.value}: cannot be loaded ({type(err).__name__}: {first})"]) from None
        LOADED[ep.module] = _module_plugin(ep.module)
        out.append(LOADED[ep.module])
    return out


def ensure(plugins: tuple[Plugin, ...]) -> None:
    """In a Ray worker, before a pack is built: every plugin the driver loaded, imported here
    (a file plugin from Ray's py_modules, or from its path where the worker shares the
    driver's disk), and checked to be the driver's source (a package: every file of it)."""
    load_entry_points()
    for plugin in plugins:
        if plugin.module in LOADED and LOADED[plugin.module].source == plugin.source:
            continue
        if plugin.module in LOADED or not plugin.is_file:
            module = _import_module(plugin.module)
            here = LOADED[plugin.module].source if plugin.module in LOADED else source_of(module)
        else:
            try:
                module = _import_module(plugin.module)
            except ImportError:
                module = _import_file(plugin.module, Path(plugin.path))
            here = _sha(module.__file__)
        if here != plugin.source:
            raise RuntimeError(f"plugin {plugin.module}: this worker's {module.__file__} ({here}) is not the "
                               f"driver's {plugin.path or 'package'} ({plugin.source})")
        LOADED[plugin.module] = plugin


def runtime_env() -> dict | None:
    """What Ray ships to every worker: the file plugins, as py_modules."""
    files = [p.path for p in LOADED.values() if p.is_file]
    return {"py_modules": files} if files else None


def versions() -> dict[str, str]:
    """module -> its source hash (what the ids hold)."""
    return {p.module: p.source for p in LOADED.values()}


def versions_text() -> str:
    """versions.json's record of the plugins: `module sha256:... (version), ...` (or none)."""
    return ", ".join(f"{p.module} {p.source}" + (f" ({p.version})" if p.version else "") for p in LOADED.values()) or "none"
