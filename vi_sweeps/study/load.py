"""Reading a study: its YAML (no key twice, YAML-1.2 numbers), --set overrides, its plugins,
then its schema (vi_sweeps.study.schema) and its expansion (vi_sweeps.study.expansion); and comparing
two studies (does a results folder hold this experiment?). A study file that cannot be read,
parsed or checked is one ConfigError listing every problem, each naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vi_contract import schema, yamlsafe
from vi_sweeps.core import plugins
from vi_sweeps.study.claims import check_claims
from vi_sweeps.study.config import EXECUTION_KEYS, ConfigError, TrialConfig, YAMLLoader, config_keys, describe_errors, shown  # noqa: F401 - config_keys: a name of vi_sweeps.study
from vi_sweeps.study.expansion import Study, check_compare, check_search, expand
from vi_sweeps.study.places import NOT_AXES, SET_BY, misplaced  # noqa: F401 - NOT_AXES, SET_BY: names of vi_sweeps.study
from vi_sweeps.study.protocol import check_protocol
from vi_sweeps.study.schema import StudyFile, study_errors, what_parses


class _UniqueKeyLoader(YAMLLoader):
    """YAML without silent overwrites: a key given twice in one mapping is an error."""

    def construct_mapping(self, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=True)
            if key in keys:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            keys.add(key)
        return super().construct_mapping(node, deep)


MAX_STUDY_BYTES = 1 << 20  # a study file is a page of YAML; /dev/zero is not


def read_study_text(path: str | Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STUDY_BYTES + 1)
    except OSError as err:
        raise ConfigError(str(path), [f"cannot read: {err.strerror}"]) from None
    if len(data) > MAX_STUDY_BYTES:
        raise ConfigError(str(path), [f"larger than {MAX_STUDY_BYTES:,} bytes; a study file is a page of YAML"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), [f"not a UTF-8 text file (byte 0x{data[err.start]:02x} at offset {err.start}); "
                                      "a study file is YAML"]) from None


def check_overrides(raw: dict, overrides: dict[str, Any], source: str) -> None:
    """--set KEY=VALUE changes `base:` only; a mistake is blamed on --set, not the file."""
    grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
    labelled = {k: name for name, v in grid.items() if isinstance(v, dict)
                for s in v.values() if isinstance(s, dict) for k in s}
    problems = []
    for key, value in overrides.items():
        if why := misplaced("--set", key, key):
            problems.append(why)
        elif key in grid:
            problems.append(f"{key}: a grid axis of {source} ({grid[key]}); --set would be ignored, edit the study")
        elif key in labelled:
            problems.append(f"{key}: set by the labelled axis grid.{labelled[key]} of {source}; edit the study")
        elif isinstance(raw.get("budget"), dict) and key in raw["budget"]:
            problems.append(f"{key}: set by budget.{key} of {source}; edit the study")
        elif key == "collapse_rule" and raw.get("collapse_rule") is not None:
            problems.append(f"{key}: set by collapse_rule: of {source}; edit the study")
        else:
            try:
                TrialConfig.model_validate({key: value})
            except ValidationError as err:
                problems += describe_errors([e for e in err.errors() if e["loc"]])
    if problems:
        raise ConfigError("--set", problems)


OVERRIDES_MARK = "\n# --set overrides, merged into base:\n"


def load_study_as_run(text: str, source: str) -> Study:
    """A study as RESULTS/study.yaml keeps it: the file, and the --set overrides it ran with
    (its plugins are the ones loaded now: their files sit beside the study as given, not here)."""
    body, mark, rest = text.partition(OVERRIDES_MARK)
    overrides = (yamlsafe.safe_load(rest) or {}).get("overrides") if mark else None
    return load_study_text(body, source, overrides or None)


def tuning(study: Study) -> dict:
    """A protocol's tuning as it defines the experiment (not where its searches are stored; its
    test seeds are the study's seeds, compared as the trials they expand to: `seeds: 3` is `[0, 1, 2]`)."""
    return study.spec.protocol.tune.model_dump(exclude={"storage"}) if study.spec.protocol is not None else {}


def definition_differences(before: Study, now: Study) -> list[str]:
    """What makes `now` another experiment than `before` (empty: the same one): the trials it
    expands to (their ids: every experiment key, pack and plugin source; their labels), its
    name, what the findings compare, a search and a protocol's tuning (its seeds, budget, space).
    Spelling does not count (`seeds: 4` is `seeds: [0, 1, 2, 3]`, a default written out is the default), nor do execution keys (threads,
    device, a data folder of the same content elsewhere) and resources: they say how a sweep
    runs, not what it measures. Where the trials differ, the study fields that do are named."""
    def trials(study: Study) -> list:
        return [(t.trial_id, sorted(t.labels.items())) for t in study.trials]

    if (trials(before) == trials(now) and before.name == now.name and before.compare == now.compare
            and before.spec.search == now.spec.search and tuning(before) == tuning(now)):
        return []
    out = [f"{key}: {shown(getattr(before.spec, key))} there, {shown(getattr(now.spec, key))} here"
           for key in ("name", "models", "datasets", "grid", "seeds", "pack_seeds", "budget", "collapse_rule", "search")
           if getattr(before.spec, key) != getattr(now.spec, key)]
    if tuning(before) != tuning(now):  # by key: protocol.tune.seeds: [10, 11] there, [10, 12] here
        a, b = tuning(before), tuning(now)
        out += [f"protocol.tune.{key}: {shown(a.get(key))} there, {shown(b.get(key))} here"
                for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)] or ["protocol"]
    if before.compare != now.compare:
        out.append(f"compare: {shown(before.compare)} there, {shown(now.compare)} here")
    for key in sorted(set(before.spec.base) | set(now.spec.base)):
        a, b = before.spec.base.get(key), now.spec.base.get(key)
        if key not in EXECUTION_KEYS and a != b:  # an unset key is its default, said as such (not None)
            said = [shown(v) if k in study.spec.base else f"{shown(TrialConfig.model_fields[key].default)} (the default)"
                    if key in TrialConfig.model_fields else "unset" for v, k, study in ((a, key, before), (b, key, now))]
            out.append(f"base.{key}: {said[0]} there, {said[1]} here")
    if not out:
        out.append("its trial ids (a data folder's content, a plugin's source, or a default of this version of vi-sweeps)")
    return out


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> Study:
    """Read and check a study file; `overrides` (from --set) update its `base:` section, and
    the study as run (what RESULTS/study.yaml keeps) then includes them."""
    return load_study_text(read_study_text(path), str(path), overrides, load_plugins=True)


def load_study_text(text: str, source: str, overrides: dict[str, Any] | None = None, load_plugins: bool = False) -> Study:
    """A study from its text. Its `plugins:` are imported only with `load_plugins` (a study file
    the user names: load_study); a study read from a results folder never runs code."""
    try:
        return _load_study_text(text, source, overrides, load_plugins)
    except RecursionError:
        raise ConfigError(source, ["nested too deeply to be a study file"]) from None


def _plugins(raw: dict, source: str) -> None:
    """The study's `plugins:`, loaded before anything else is checked (their names validate)."""

    names = raw.get("plugins")
    if names is None:
        return
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(source, [f"plugins: a list of module names or .py files (got {shown(names)})"])
    plugins.load(names, Path(source).parent, source)


def _load_study_text(text: str, source: str, overrides: dict[str, Any] | None, load_plugins: bool = True) -> Study:
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"not valid YAML: {where}{getattr(err, 'problem', None) or err}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, ["a study file is a mapping with at least `name:`"])
    if load_plugins:
        _plugins(raw, source)
    if overrides and raw.get("base") is not None and not isinstance(raw["base"], dict):
        raise ConfigError(source, [f"base: expected a mapping of config keys (got {shown(raw['base'])}); "
                                   "--set adds to it"])
    if overrides:
        check_overrides(raw, overrides, source)
        raw["base"] = {**(raw.get("base") or {}), **overrides}
        text = text.rstrip() + OVERRIDES_MARK + yaml.safe_dump({"overrides": overrides})
    problems: list[str] = []
    try:
        spec = StudyFile.model_validate(raw)
    except ValidationError as err:
        problems += study_errors(err)
        # Check the sections that did parse too, so one run lists every problem.
        spec = what_parses(raw, err)
        if spec is None:
            raise ConfigError(source, problems) from None
    trials, axes = expand(spec, problems)
    if any(t.config.device == "cuda" for t in trials) and spec.resources.gpu == 0:
        problems.append("device: cuda, but resources.gpu is 0, so Ray would place trials where no GPU is reserved; "
                        "set resources: {gpu: 1} (or a fraction), or device: auto")
    check_search(spec, problems)
    check_compare(spec, axes, problems)
    check_protocol(spec, trials, problems)
    compare = spec.compare.model_dump() if spec.compare else schema.default_compare([name for name, _ in axes])
    check_claims(spec, axes, compare, problems)
    if not problems and not trials:
        problems.append("the study expands to no trials")
    if problems:
        raise ConfigError(source, problems)
    labelled = {name: {str(k): v for k, v in vals.items()} for name, vals in spec.grid.items() if isinstance(vals, dict)}
    return Study(source, spec, text, trials, [name for name, _ in axes] + ["seed"], labelled)


