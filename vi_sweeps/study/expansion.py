"""A validated study file (vi_sweeps.study.schema) -> one TrialConfig per trial, and the checks of
its axes, search and comparison.

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
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vi_contract import schema
from vi_contract.tables import pack_id
from vi_sweeps.data.declared import DATASETS
from vi_sweeps.gan.declared import OBJECTIVES
from vi_sweeps.metrics.evaluation import evaluation
from vi_sweeps.study.config import (
    ADDED_KEYS,
    EXECUTION_KEYS,
    PLUGIN_KEYS,
    TrialConfig,
    config_keys,
    describe_errors,
    key_default,
    shown,
)
from vi_sweeps.study.places import NOT_AXES, PACKING, SET_BY, misplaced  # noqa: F401 - SET_BY: a name of vi_sweeps.study
from vi_sweeps.study.schema import StudyFile


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
        return schema.default_compare(self.axes)


def condition_key(config: TrialConfig | dict, labels: dict) -> str:
    """What a condition is: every experiment key but the seed (and the seed's pack size and
    place), and the axis labels. Trials
    with equal keys are one condition (packed together); conditions with equal keys are one
    experiment."""
    values = config.model_dump() if isinstance(config, TrialConfig) else dict(config)
    kept = {k: v for k, v in values.items() if k not in (*PACKING, "trial_id", *EXECUTION_KEYS)
            and not (k in (*ADDED_KEYS, *PLUGIN_KEYS) and v == key_default(k))}  # as in the trial id: an added
    return json.dumps([kept, labels], sort_keys=True, default=str)  # key at its default keys what it keyed before


def pack_layout(n: int, k: int) -> list[range]:
    """The packs n seeds of a condition train in, at most k a pack, as even as they divide (9 at
    8 a pack: 4 and 5, not 8 and 1), so no seed of a packing study trains alone while it has
    company. The layout is fixed by the study's seeds, not by what is left to run: a trial is
    always trained in a pack of its own `pack_size` (vi_sweeps.engine.trial pads a smaller group)."""
    packs = -(-n // k)
    bounds = [n * i // packs for i in range(packs + 1)]
    return [range(lo, hi) for lo, hi in itertools.pairwise(bounds)]


def layout_packs(study: Study) -> list[list[TrialSpec]]:
    """The study's packs: each condition's trials cut by pack_layout, every trial once."""
    by_condition: dict[str, list[TrialSpec]] = {}
    for t in study.trials:
        by_condition.setdefault(condition_key(t.config, t.labels), []).append(t)
    return [[trials[i] for i in chunk] for trials in by_condition.values()
            for chunk in pack_layout(len(trials), study.spec.pack_seeds)]


def layout_pack_ids(study: Study) -> dict[str, str]:
    """trial id -> the id of its pack in the study's layout (vi_contract.tables.pack_id)."""
    out = {}
    for pack in layout_packs(study):
        ids = [t.trial_id for t in pack]
        out.update(dict.fromkeys(ids, pack_id(ids)))
    return out


def seed_list(spec: StudyFile) -> list[int]:
    if isinstance(spec.seeds, dict):  # interims: every seed up to max is a trial; the design runs what it needs
        return list(range(spec.seeds["max"]))
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
    for name, values in spec.grid.items():
        if not values:
            problems.append(f"grid.{name}: empty axis; give at least one value")
            continue
        if isinstance(values, dict):
            if name in fields:
                problems.append(f"grid.{name}: a config key takes a list of values, not labelled settings")
                continue
            if "/" in name or not name.strip():  # its column is axis/NAME (vi_contract.schema): any other name is free
                problems.append(f"grid.{name}: a labelled axis's name must be non-empty and without '/'")
                continue
            keys = set()
            for label in values:
                text = str(label)
                if not text.strip() or any(c in text for c in "|\n\r"):
                    problems.append(f"grid.{name}: label {text!r} must be non-empty text without '|' or line "
                                    "breaks (labels name conditions in tables and figures)")
            for label, setting in values.items():
                problems += [why for key in setting if (why := misplaced("label", key, f"grid.{name}.{label}.{key}"))]
                keys |= set(setting)
            for key in sorted(keys & set(fields)):
                if key in setters:
                    problems.append(f"grid.{name}: sets {key}, which {setters[key]} also sets; set it in one place")
                setters[key] = f"grid.{name}"
            axes.append((name, [(label, dict(setting)) for label, setting in values.items()]))
            for a, b in itertools.combinations(values, 2):
                if values[a] == values[b]:
                    problems.append(f"grid.{name}: labels {a!r} and {b!r} set the same values")
        elif why := misplaced("grid", name, f"grid.{name}"):
            problems.append(why)
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
    problems += [why for key in spec.base if (why := misplaced("base", key, f"base.{key}"))]
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
    seeds = spec.seeds["max"] if isinstance(spec.seeds, dict) else spec.seeds if isinstance(spec.seeds, int) else len(spec.seeds)
    return len(spec.models) * len(spec.datasets) * math.prod(len(v) for v in spec.grid.values()) * seeds


# what expanding a trial holds in memory, its id computed: measured 2.7 KB (tracemalloc) and 3.5 KB of
# resident memory a trial at 40,000 trials; tests/test_bounds.py keeps the measurement under it
TRIAL_BYTES = 4096


def available_memory() -> int | None:
    """The bytes this machine can still give (MemAvailable, less under a cgroup's limit), or None
    where neither says."""
    found = []
    try:
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        found.append(int(meminfo["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):
        pass
    if not found and hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(found) if found else None


def size_problem(spec: StudyFile, size: int) -> str:
    """Why a grid of `size` trials is not expanded here: above max_trials, or more than half of
    the memory this machine has available (a run holds more than the expansion)."""
    if size > spec.max_trials:
        return (f"the grid has {size:,} trials, more than max_trials ({spec.max_trials:,}); "
                "raise `max_trials:` in the study to run it on purpose")
    free = available_memory()
    if free is not None and size * TRIAL_BYTES > free // 2:
        return (f"the grid has {size:,} trials: expanding them takes about {size * TRIAL_BYTES / 1e9:.1f} GB "
                f"({TRIAL_BYTES / 1e3:.1f} KB a trial), more than half of the {free / 1e9:.1f} GB this machine has "
                "available; split the study, or expand it where there is more memory")
    return ""


def expand(spec: StudyFile, problems: list[str]) -> tuple[list[TrialSpec], list[tuple[str, list]]]:
    """Every trial of the study, and its axes."""
    axes = _axes(spec, problems)
    _check_values(spec, problems)
    if too_large := size_problem(spec, grid_size(spec)):
        problems.append(too_large)
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
    check_space(spec, spec.search.space, "search.space", problems)
    check_objective(spec, spec.search.objective, "search.objective", problems)


def check_space(spec: StudyFile, space: dict, prefix: str, problems: list[str], axis_keys: bool = False,
                context: dict | None = None) -> None:
    """A search space's keys and ranges (a study's `search:`, a protocol's per-arm spaces):
    `axis_keys` allows keys an axis sets (a protocol's arm sets its stabiliser's weight);
    `context`: the settings a value is checked beside (the arm's)."""
    context = context or {}
    labelled_keys = {k for v in spec.grid.values() if isinstance(v, dict) for s in v.values() for k in s}
    for key, entry in space.items():
        where = f"{prefix}.{key}"
        if why := misplaced("search", key, where):
            problems.append(why)
            continue
        if not axis_keys and (key in spec.grid or key in labelled_keys):
            problems.append(f"{where}: also set by a grid axis; search it or grid it, not both")
        if key in spec.base:
            problems.append(f"{where}: also set in base; the search would override it")
        if entry.type == "categorical":
            if not entry.choices:
                problems.append(f"{where}: categorical needs a non-empty `choices` list")
            for i, choice in enumerate(entry.choices or []):
                try:
                    TrialConfig.model_validate({**context, key: choice})
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
                TrialConfig.model_validate({**context, key: bound})
            except ValidationError as err:
                problems += [f"{where}: bound {bound}: {line}" for line in describe_errors(err.errors())]


def check_objective(spec: StudyFile, objective, prefix: str, problems: list[str]) -> None:
    datasets = set(spec.datasets) | {s["dataset"] for v in spec.grid.values() if isinstance(v, dict)
                                     for s in v.values() if "dataset" in s}
    declared = [k.removeprefix("eval/") for d in sorted(datasets) if d in DATASETS
                for k in evaluation(d).metrics]
    if objective.mode == "min" and objective.diverged_value is None:
        problems.append(f"{prefix}.diverged_value: set it with mode: min, to a value worse than any real "
                        f"{objective.metric} (a diverged seed must not score as the best)")
    if objective.metric not in declared:
        problems.append(f"{prefix}.metric: {objective.metric!r} is not a metric of these data sets; "
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

