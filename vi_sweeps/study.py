"""Study file -> validated spec -> one TrialConfig per trial.

A study crosses its axes: models x datasets x every grid axis x seeds. A grid axis is either a
config key with a list of values (`lam: [0, 5]`) or a labelled axis that sets several keys at
once, for conditions that only make sense together:

    regime:
      paper-bn:   {bn: true,  d_steps: 1, g_steps: 1}
      paper-nobn: {bn: false, d_steps: 5, g_steps: 5}

Every config key is set in one place only: `base`, `budget`, `collapse_rule`, one axis, or
the search space; a key set twice (so one setting would silently win) is an error, as are
repeated values, labels, seeds, models or data sets (they would train one trial twice).
Everything is checked before anything runs, and the grid's size before it is expanded; all
problems are reported together, each naming the file, the key and the valid choices.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vi_contract import schema
from vi_sweeps.config import EXECUTION_KEYS, ConfigError, TrialConfig, YAMLLoader, config_keys, describe_errors, shown
from vi_sweeps.tracking import Tracking

Scalar = bool | int | float | str
SET_BY = {"seed": "seeds", "model": "models", "dataset": "datasets", "pack_size": "pack_seeds",
          "pack_index": "pack_seeds"}  # the study keys that set them
NOT_AXES = tuple(SET_BY)
PACKING = ("seed", "pack_size", "pack_index")  # what a labelled axis may not set either
MAX_SEED = 2**63 - 1  # seeds are stored as int64


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iterations: int = Field(gt=0, description="training iterations per trial")
    eval_every: int = Field(gt=0, description="iterations between evaluations and checkpoints")


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: float = Field(1.0, gt=0, description="CPUs reserved per Ray trial (a pack of seeds)")
    gpu: float = Field(0.0, ge=0, description="GPUs per Ray trial; fractions pack trials on a GPU")


class SpaceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["loguniform", "uniform", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    choices: list[Scalar] | None = None


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field("modes_frac", description="an eval metric the study's data sets declare")
    mode: Literal["min", "max"] = "max"
    collapse_penalty: float = Field(0.0, ge=0, description="added against the mode per collapsed seed")
    diverged_value: float | None = Field(None, description="a diverged (or unscored) seed's metric value; "
                                         "default 0 with mode max; with mode min it must be set, worse than any real value")


class Sampler(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["tpe", "random"] = "tpe"
    seed: int = 0


class Pruner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["asha"] = "asha"
    grace_period: int = Field(2, gt=0, description="evaluations before a trial can be stopped")
    reduction_factor: int = Field(2, gt=1)


class Search(BaseModel):
    model_config = ConfigDict(extra="forbid")
    space: dict[str, SpaceEntry]
    objective: Objective = Objective()
    seeds_per_trial: int = Field(3, gt=0, description="seeds averaged per suggestion, trained as one pack")
    trials: int = Field(20, gt=0, description="suggestions per search cell")
    sampler: Sampler = Sampler()
    pruner: Pruner | None = None
    storage: str | None = Field(None, description="Optuna storage URL; default SQLite in RESULTS")


class Compare(BaseModel):
    model_config = ConfigDict(extra="forbid")
    axis: str = Field(description="the treatment axis the findings compare within each regime")
    baseline: Scalar = Field(description="its reference value (a label, for a labelled axis)")


class StudyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="letters, digits, . _ -; not starting with . _ -; at most 100 characters")
    description: str = ""
    models: list[str] = Field(default_factory=lambda: ["gan"])
    datasets: list[str] = Field(default_factory=lambda: ["ring8"])
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Scalar] | dict[str, dict[str, Any]]] = Field(default_factory=dict)
    seeds: Any = Field(1, description="a count (seeds 0..n-1) or a list of distinct seeds")
    pack_seeds: int = Field(1, gt=0, description="seeds of one condition trained together as one vectorised model")
    budget: Budget | None = None
    resources: Resources = Resources()
    collapse_rule: str | None = None
    compare: Compare | None = None
    max_trials: int = Field(100_000, gt=0, le=10**8, description="refuse a grid larger than this (raise it on purpose, "
                            "up to 100,000,000)")
    search: Search | None = None
    plugins: list[str] = Field(default_factory=list, description="modules or .py files (relative to the study file) "
                               "loaded before the study is checked, and in every Ray worker")
    tracking: Tracking | None = None  # an execution setting: not part of the experiment

    @field_validator("models", "datasets")
    @classmethod
    def _nonempty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must name at least one")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: Any) -> int | list[int]:
        def integer(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        if integer(v):
            if v < 1:
                raise ValueError(f"a seed count must be at least 1, got {v}")
            return v
        if not isinstance(v, list) or not all(integer(s) for s in v):
            raise ValueError(f"a count (seeds 0..n-1) or a list of distinct integer seeds, got {shown(v)}")
        if not v:
            raise ValueError("an empty list of seeds")
        if any(s < 0 for s in v):
            raise ValueError(f"seeds are non-negative, got {[s for s in v if s < 0]}")
        if any(s > MAX_SEED for s in v):
            raise ValueError(f"seeds are at most 2**63 - 1 (stored as 64-bit integers), got {[s for s in v if s > MAX_SEED]}")
        if len(set(v)) != len(v):
            raise ValueError(f"seed(s) {sorted({s for s in v if v.count(s) > 1})} appear more than once")
        return v


@dataclass(frozen=True)
class TrialSpec:
    config: TrialConfig
    labels: dict

    @cached_property
    def trial_id(self) -> str:
        return self.config.trial_id

    def as_dict(self) -> dict[str, Any]:
        return {**self.config.model_dump(), "trial_id": self.trial_id}


@dataclass(frozen=True)
class Study:
    source: str
    spec: StudyFile
    text: str
    trials: list[TrialSpec]
    axes: list[str]
    labelled: dict[str, dict[str, dict]]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def compare(self) -> dict | None:
        if self.spec.compare is not None:
            return self.spec.compare.model_dump()
        if "lam" in self.axes:
            return {"axis": "lam", "baseline": 0.0}
        return None


def condition_key(config: TrialConfig | dict, labels: dict) -> str:
    """What a condition is: every experiment key but the seed (and the seed's pack size and
    place), and the axis labels. Trials
    with equal keys are one condition (packed together); conditions with equal keys are one
    experiment."""
    values = config.model_dump() if isinstance(config, TrialConfig) else dict(config)
    kept = {k: v for k, v in values.items() if k not in (*PACKING, "trial_id", *EXECUTION_KEYS)}
    return json.dumps([kept, labels], sort_keys=True, default=str)


def pack_layout(n: int, k: int) -> list[range]:
    """The packs n seeds of a condition train in, at most k a pack, as even as they divide (9 at
    8 a pack: 4 and 5, not 8 and 1), so no seed of a packing study trains alone while it has
    company. The layout is fixed by the study's seeds, not by what is left to run: a trial is
    always trained in a pack of its own `pack_size` (vi_sweeps.trial pads a smaller group)."""
    packs = -(-n // k)
    bounds = [n * i // packs for i in range(packs + 1)]
    return [range(lo, hi) for lo, hi in itertools.pairwise(bounds)]


def seed_list(spec: StudyFile) -> list[int]:
    return list(range(spec.seeds)) if isinstance(spec.seeds, int) else list(spec.seeds)


def _duplicates(values: list) -> list:
    """Values that repeat an earlier one (5 and 5.0 are one value; true and 1 are not)."""
    seen, dup = [], []
    for v in values:
        if any(v == s and isinstance(v, bool) == isinstance(s, bool) for s in seen):
            dup.append(v)
        seen.append(v)
    return dup


def _axes(spec: StudyFile, problems: list[str]) -> list[tuple[str, list[tuple[str | None, dict]]]]:
    """Each axis as (name, [(label or None, config values)]), checked for unknown keys,
    repeated values and keys set twice."""
    from vi_sweeps.datasets import DATASETS
    from vi_sweeps.objectives import OBJECTIVES

    fields = config_keys()
    for key, names, registry in (("models", spec.models, OBJECTIVES), ("datasets", spec.datasets, DATASETS)):
        for i, name in enumerate(names):
            if name not in registry:
                problems.append(f"{key}[{i}]: unknown {registry.kind} {name!r}; valid choices: {', '.join(registry.names())}")
        for dup in _duplicates(names):
            problems.append(f"{key}: {dup!r} appears more than once")
    axes: list[tuple[str, list[tuple[str | None, dict]]]] = [
        ("model", [(None, {"model": m}) for m in spec.models]),
        ("dataset", [(None, {"dataset": d}) for d in spec.datasets]),
    ]
    setters: dict[str, str] = {}  # config key -> where it is set
    given = spec.model_fields_set
    for key in ("model", "dataset"):
        if f"{key}s" in given:
            setters[key] = f"{key}s"
    for key in spec.base:
        setters.setdefault(key, f"base.{key}")
    for where, keys in (("budget", spec.budget.model_dump() if spec.budget else {}),
                        ("collapse_rule", {"collapse_rule": 1} if spec.collapse_rule is not None else {})):
        for key in keys:
            if key in setters:
                problems.append(f"{where}: sets {key}, which {setters[key]} also sets; set it in one place")
            setters[key] = where if where != "budget" else f"budget.{key}"
    valid = ", ".join(k for k in fields if k not in NOT_AXES)
    for name, values in spec.grid.items():
        if not values:
            problems.append(f"grid.{name}: empty axis; give at least one value")
            continue
        if isinstance(values, dict):
            if name in fields:
                problems.append(f"grid.{name}: a config key takes a list of values, not labelled settings")
                continue
            if name in schema.RESERVED_NAMES or "/" in name or name.startswith("collapsed"):
                problems.append(f"grid.{name}: a labelled axis may not take the name of a result column; reserved: "
                                f"{', '.join(dict.fromkeys(schema.RESERVED_NAMES))}, metric keys (with '/'), collapsed_*")
                continue
            keys = set()
            for label in values:
                text = str(label)
                if not text.strip() or any(c in text for c in "|\n\r"):
                    problems.append(f"grid.{name}: label {text!r} must be non-empty text without '|' or line "
                                    "breaks (labels name conditions in tables and figures)")
            for label, setting in values.items():
                for key in setting:
                    if key not in fields or key in PACKING:
                        problems.append(f"grid.{name}.{label}.{key}: " + (
                            f"set by `{SET_BY[key]}:`" if key in PACKING else
                            f"unknown key; valid keys: {', '.join(k for k in fields if k not in PACKING)}"))
                keys |= set(setting)
            for key in sorted(keys & set(fields)):
                if key in setters:
                    problems.append(f"grid.{name}: sets {key}, which {setters[key]} also sets; set it in one place")
                setters[key] = f"grid.{name}"
            axes.append((name, [(label, dict(setting)) for label, setting in values.items()]))
            for a, b in itertools.combinations(values, 2):
                if values[a] == values[b]:
                    problems.append(f"grid.{name}: labels {a!r} and {b!r} set the same values")
        elif name not in fields or name in NOT_AXES:
            hint = f"use `{SET_BY[name]}:`" if name in SET_BY else f"valid keys: {valid}"
            problems.append(f"grid.{name}: unknown axis; {hint}")
        elif name in EXECUTION_KEYS:
            problems.append(f"grid.{name}: an execution key, not an axis: it does not change the experiment, so its "
                            "values would be one trial run twice; set it in base")
        else:
            if name in setters:
                problems.append(f"grid.{name}: an axis of a key that {setters[name]} also sets; set it in one place")
            setters[name] = f"grid.{name}"
            for dup in _duplicates(values):
                problems.append(f"grid.{name}: value {dup!r} appears more than once")
            axes.append((name, [(None, {name: v}) for v in values]))
    return axes


def _check_values(spec: StudyFile, problems: list[str]) -> None:
    """Check each base key and grid value on its own, so errors point at the line to fix."""
    fields = config_keys()
    for key in spec.base:
        if key not in fields:
            problems.append(f"base.{key}: unknown key; valid keys: {', '.join(fields)}")
        elif key in NOT_AXES:
            problems.append(f"base.{key}: set by `{SET_BY[key]}:`, not in base")
    probe = {"model": "gan", "dataset": "ring8"}
    for where, values in [("base", {k: v for k, v in spec.base.items() if k in fields and k not in NOT_AXES})] + [
            (f"grid.{name}[{i}]", {name: v}) for name, vals in spec.grid.items() if isinstance(vals, list)
            and name in fields for i, v in enumerate(vals)]:
        try:
            TrialConfig.model_validate({**probe, **values})
        except ValidationError as err:
            # field errors only: cross-field ones depend on the combination, checked per trial
            for line in describe_errors([e for e in err.errors() if e["loc"]]):
                problems.append(f"base.{line}" if where == "base" else f"{where}: {line.split(': ', 1)[1]}")


def grid_size(spec: StudyFile) -> int:
    seeds = spec.seeds if isinstance(spec.seeds, int) else len(spec.seeds)
    return len(spec.models) * len(spec.datasets) * math.prod(len(v) for v in spec.grid.values()) * seeds


def expand(spec: StudyFile, problems: list[str]) -> tuple[list[TrialSpec], list[tuple[str, list]]]:
    """Every trial of the study, and its axes."""
    axes = _axes(spec, problems)
    _check_values(spec, problems)
    size = grid_size(spec)
    if size > spec.max_trials:
        problems.append(f"the grid has {size:,} trials, more than max_trials ({spec.max_trials:,}); "
                        "raise `max_trials:` in the study to run it on purpose")
    if problems:
        return [], axes
    fixed = dict(spec.base)
    if spec.budget:
        fixed.update(spec.budget.model_dump())
    if spec.collapse_rule is not None:
        fixed["collapse_rule"] = spec.collapse_rule
    seeds = seed_list(spec)
    trials, seen_errors, conditions = [], set(), {}
    for combo in itertools.product(*(values for _, values in axes)):
        values, labels = dict(fixed), {}
        for (name, _), (label, setting) in zip(axes, combo, strict=True):
            values.update(setting)
            if label is not None:
                labels[name] = label
        where = "/".join(f"{v}" for v in (values["model"], values["dataset"], *labels.values()))
        try:
            config = TrialConfig(**values, seed=seeds[0])
        except ValidationError as err:
            for line in describe_errors(err.errors()):
                if line not in seen_errors:
                    seen_errors.add(line)
                    problems.append(f"trial {where}: {line}")
            continue
        key = condition_key(config, {})
        named = {name: label if label is not None else next(iter(setting.values()), None)
                 for (name, _), (label, setting) in zip(axes, combo, strict=True)}
        if key in conditions:
            before = conditions[key]
            differ = [n for n in named if named[n] != before[n]]
            line = (f"grid.{', grid.'.join(differ)}: " + " and ".join(", ".join(f"{n}={shown(c[n])}" for n in differ)
                                                                     for c in (before, named))
                    + " set the same experiment (they train the same trials); remove one")
            if line not in seen_errors:
                seen_errors.add(line)
                problems.append(line)
            continue
        conditions[key] = named
        trials += [TrialSpec(config.model_copy(update={"seed": seeds[i], "pack_size": len(chunk),
                                                       "pack_index": i - chunk.start}), labels)
                   for chunk in pack_layout(len(seeds), spec.pack_seeds) for i in chunk]
    return trials, axes


def check_search(spec: StudyFile, problems: list[str]) -> None:
    if spec.search is None:
        return
    from vi_sweeps.datasets import DATASETS, evaluation

    fields = config_keys()
    labelled_keys = {k for v in spec.grid.values() if isinstance(v, dict) for s in v.values() for k in s}
    for key, entry in spec.search.space.items():
        where = f"search.space.{key}"
        if key not in fields or key in NOT_AXES:
            problems.append(f"{where}: not a searchable config key; valid keys: "
                            f"{', '.join(k for k in fields if k not in NOT_AXES)}")
            continue
        if key in spec.grid or key in labelled_keys:
            problems.append(f"{where}: also set by a grid axis; search it or grid it, not both")
        if key in spec.base:
            problems.append(f"{where}: also set in base; the search would override it")
        if entry.type == "categorical":
            if not entry.choices:
                problems.append(f"{where}: categorical needs a non-empty `choices` list")
            for i, choice in enumerate(entry.choices or []):
                try:
                    TrialConfig.model_validate({key: choice})
                except ValidationError as err:
                    problems += [f"{where}.choices[{i}]: {line.split(': ', 1)[1]}"
                                 for line in describe_errors([e for e in err.errors() if e["loc"]])]
            continue
        if entry.low is None or entry.high is None:
            problems.append(f"{where}: {entry.type} needs `low` and `high`")
            continue
        if entry.low >= entry.high:
            problems.append(f"{where}: low ({entry.low}) must be below high ({entry.high})")
        if entry.type == "loguniform" and entry.low <= 0:
            problems.append(f"{where}: loguniform needs low > 0 (got {entry.low})")
        for bound in (entry.low, entry.high):
            if entry.type == "int" and float(bound).is_integer():
                bound = int(bound)  # noqa: PLW2901 - an int space's bounds are integers
            try:
                TrialConfig.model_validate({key: bound})
            except ValidationError as err:
                problems += [f"{where}: bound {bound}: {line}" for line in describe_errors(err.errors())]
    datasets = set(spec.datasets) | {s["dataset"] for v in spec.grid.values() if isinstance(v, dict)
                                     for s in v.values() if "dataset" in s}
    declared = [k.removeprefix("eval/") for d in sorted(datasets) if d in DATASETS
                for k in evaluation(d).metrics]
    objective = spec.search.objective
    if objective.mode == "min" and objective.diverged_value is None:
        problems.append("search.objective.diverged_value: set it with mode: min, to a value worse than any real "
                        f"{objective.metric} (a diverged seed must not score as the best)")
    if spec.search.objective.metric not in declared:
        problems.append(f"search.objective.metric: {spec.search.objective.metric!r} is not a metric of these data sets; "
                        f"valid choices: {', '.join(dict.fromkeys(declared))}")


def check_compare(spec: StudyFile, axes: list[tuple[str, list]], problems: list[str]) -> None:
    if spec.compare is None:
        return
    values = {name: [label if label is not None else next(iter(s.values())) for label, s in vals] for name, vals in axes}
    if spec.compare.axis not in values:
        problems.append(f"compare.axis: {spec.compare.axis!r} is not an axis; valid choices: {', '.join(values)}")
    elif spec.compare.baseline not in values[spec.compare.axis]:
        problems.append(f"compare.baseline: {spec.compare.baseline!r} is not a value of {spec.compare.axis}; "
                        f"valid choices: {', '.join(map(str, values[spec.compare.axis]))}")


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
    fields = config_keys()
    grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
    labelled = {k: name for name, v in grid.items() if isinstance(v, dict)
                for s in v.values() if isinstance(s, dict) for k in s}
    problems = []
    for key, value in overrides.items():
        if key not in fields:
            problems.append(f"{key}: unknown key; valid keys: {', '.join(fields)}")
        elif key in NOT_AXES:
            problems.append(f"{key}: set by `{SET_BY[key]}:` in {source}, not by --set")
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
    overrides = (yaml.safe_load(rest) or {}).get("overrides") if mark else None
    return load_study_text(body, source, overrides or None)


def definition_differences(before: Study, now: Study) -> list[str]:
    """What makes `now` another experiment than `before` (empty: the same one): the trials it
    expands to (their ids: every experiment key, pack and plugin source; their labels), its
    name, what the findings compare, and a search. Spelling does not count (`seeds: 4` is
    `seeds: [0, 1, 2, 3]`, a default written out is the default), nor do execution keys (threads,
    device, a data folder of the same content elsewhere) and resources: they say how a sweep
    runs, not what it measures. Where the trials differ, the study fields that do are named."""
    def trials(study: Study) -> list:
        return [(t.trial_id, sorted(t.labels.items())) for t in study.trials]

    if (trials(before) == trials(now) and before.name == now.name and before.compare == now.compare
            and before.spec.search == now.spec.search):
        return []
    out = [f"{key}: {shown(getattr(before.spec, key))} there, {shown(getattr(now.spec, key))} here"
           for key in ("name", "models", "datasets", "grid", "seeds", "pack_seeds", "budget", "collapse_rule", "search")
           if getattr(before.spec, key) != getattr(now.spec, key)]
    if before.compare != now.compare:
        out.append(f"compare: {shown(before.compare)} there, {shown(now.compare)} here")
    for key in sorted(set(before.spec.base) | set(now.spec.base)):
        a, b = before.spec.base.get(key), now.spec.base.get(key)
        if key not in EXECUTION_KEYS and a != b:
            out.append(f"base.{key}: {shown(a)} there, {shown(b)} here")
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
    from vi_sweeps import plugins

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
        problems += _study_errors(err)
        # Check the sections that did parse too, so one run lists every problem.
        spec = _what_parses(raw, err)
        if spec is None:
            raise ConfigError(source, problems) from None
    trials, axes = expand(spec, problems)
    if any(t.config.device == "cuda" for t in trials) and spec.resources.gpu == 0:
        problems.append("device: cuda, but resources.gpu is 0, so Ray would place trials where no GPU is reserved; "
                        "set resources: {gpu: 1} (or a fraction), or device: auto")
    check_search(spec, problems)
    check_compare(spec, axes, problems)
    if not problems and not trials:
        problems.append("the study expands to no trials")
    if problems:
        raise ConfigError(source, problems)
    labelled = {name: {str(k): v for k, v in vals.items()} for name, vals in spec.grid.items() if isinstance(vals, dict)}
    return Study(source, spec, text, trials, [name for name, _ in axes] + ["seed"], labelled)


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "text", "bool": "true or false", "list": "a list",
               "dict": "a mapping"}


def _what_parses(raw: dict, err: ValidationError) -> StudyFile | None:
    """The study without the keys that failed (a bad `search.trials` drops only itself, so the
    rest of `search:` is still checked), or None if even that does not parse."""
    import copy

    rest = copy.deepcopy(raw)
    rest.setdefault("name", "unnamed")
    for e in err.errors():
        loc = e["loc"]
        if not loc:
            continue
        parent = rest.get(loc[0])
        if len(loc) >= 2 and isinstance(parent, dict) and isinstance(loc[1], str) and loc[0] not in ("grid", "base"):
            parent.pop(loc[1], None)  # a sub-key of a section
        else:
            rest.pop(loc[0], None)
    for _ in range(2):
        try:
            return StudyFile.model_validate(rest)
        except ValidationError as again:  # a section that needs the key that was dropped: drop it whole
            for e in again.errors():
                if e["loc"]:
                    rest.pop(e["loc"][0], None)
            rest.setdefault("name", "unnamed")
    return None


def _is_type_tag(part: Any) -> bool:
    """pydantic names the branch of a union it tried in the error's location (`list[int]`)."""
    return isinstance(part, str) and part != "[key]" and ("[" in part or part in _TYPE_WORDS)


def _study_errors(err: ValidationError) -> list[str]:
    """One line per problem, in the study's own terms: a value that fits no branch of a union
    is one line saying what the key takes, not one line per branch."""
    lines, unions, labelled = [], {}, set()
    for e in err.errors():
        if "[key]" in e["loc"]:  # a mapping key of the wrong type: a label that is not text
            path = [str(p) for p in e["loc"][:e["loc"].index("[key]") - 1] if not _is_type_tag(p)]
            labelled.add(".".join(path))
            lines.append(f"{'.'.join(path)}: label {shown(e.get('input'))} must be text; quote it "
                         f"('{e.get('input')}')")
            continue
        if any(_is_type_tag(p) for p in e["loc"]):
            path = [p for p in e["loc"] if not _is_type_tag(p)]
            tag = [p for p in e["loc"] if _is_type_tag(p)][-1].split("[")[0]
            unions.setdefault(".".join(map(str, path)), (e.get("input"), []))[1].append(_TYPE_WORDS.get(tag, tag))
            continue
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = StudyFile
            for part in e["loc"][:-1]:
                ann = parent.model_fields.get(str(part)) if isinstance(part, str) and hasattr(parent, "model_fields") else None
                inner = getattr(ann, "annotation", None)
                parent = next((a for a in getattr(inner, "__args__", (inner,)) if isinstance(a, type) and issubclass(a, BaseModel)), parent)
            lines.append(f"{key}: unknown key; valid keys: {', '.join(parent.model_fields)}")
        elif e["type"] == "missing":
            field = StudyFile.model_fields.get(key)
            lines.append(f"{key}: missing" + (f"; give one ({field.description})" if field is not None and field.description else ""))
        elif e["type"] == "value_error":
            lines.append(f"{key.split('.')[0]}: {e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"{key}: {e['msg']} (got {shown(e.get('input'))})")
    for key, (value, kinds) in unions.items():
        if key in labelled:  # a labelled axis whose labels were the problem: said above
            continue
        lines.append(f"{key}: expected {' or '.join(dict.fromkeys(kinds))} (got {shown(value)})")
    return lines
