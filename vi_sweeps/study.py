"""Study file -> validated spec -> one TrialConfig per trial.

A study crosses its axes: models x datasets x every grid axis x seeds. A grid axis is either a
config key with a list of values (`lam: [0, 5]`) or a labelled axis that sets several keys at
once, for conditions that only make sense together:

    regime:
      paper-bn:   {bn: true,  d_steps: 1, g_steps: 1}
      paper-nobn: {bn: false, d_steps: 5, g_steps: 5}

Everything is checked before anything runs; all problems are reported together, each naming
the file, the key and the valid choices.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vi_sweeps.config import ConfigError, TrialConfig, describe_errors

Scalar = bool | int | float | str


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    iterations: int = Field(gt=0, description="training iterations per trial")
    eval_every: int = Field(gt=0, description="iterations between evaluations and checkpoints")


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: float = Field(1.0, gt=0, description="CPUs reserved per trial")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial; fractions pack trials on a GPU")


class SpaceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["loguniform", "uniform", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    choices: list[Scalar] | None = None


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: Literal["modes", "modes_frac", "hq_frac", "kl_uniform", "fd_2d", "fd_digits", "fid_inception"] = "modes_frac"
    mode: Literal["min", "max"] = "max"
    collapse_penalty: float = Field(0.0, ge=0, description="added against the mode per collapsed seed")
    diverged_value: float = Field(0.0, description="a diverged seed's metric value")


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
    seeds_per_trial: int = Field(3, gt=0, description="seeds averaged per suggestion")
    trials: int = Field(20, gt=0, description="suggestions per search cell")
    sampler: Sampler = Sampler()
    pruner: Pruner | None = None
    storage: str | None = Field(None, description="Optuna storage URL; default SQLite in RESULTS")


class StudyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    models: list[str] = Field(default_factory=lambda: ["gan"])
    datasets: list[str] = Field(default_factory=lambda: ["ring8"])
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Scalar] | dict[str, dict[str, Any]]] = Field(default_factory=dict)
    seeds: int | list[int] = 1
    budget: Budget | None = None
    resources: Resources = Resources()
    collapse_rule: str | None = None
    search: Search | None = None

    @field_validator("models", "datasets")
    @classmethod
    def _nonempty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must name at least one")
        return v


@dataclass(frozen=True)
class TrialSpec:
    config: TrialConfig
    labels: dict[str, str]

    @property
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

    @property
    def name(self) -> str:
        return self.spec.name


def _seeds(spec: StudyFile) -> list[int]:
    return list(range(spec.seeds)) if isinstance(spec.seeds, int) else list(spec.seeds)


def _axes(spec: StudyFile, problems: list[str]) -> list[tuple[str, list[tuple[str | None, dict]]]]:
    """Each axis as (name, [(label or None, config values)])."""
    fields = TrialConfig.model_fields
    from vi_sweeps.datasets import DATASETS
    from vi_sweeps.objectives import OBJECTIVES

    for key, names, registry in (("models", spec.models, OBJECTIVES), ("datasets", spec.datasets, DATASETS)):
        for i, name in enumerate(names):
            if name not in registry:
                problems.append(f"{key}[{i}]: unknown {registry.kind} {name!r}; valid choices: {', '.join(registry.names())}")
    axes: list[tuple[str, list[tuple[str | None, dict]]]] = [
        ("model", [(None, {"model": m}) for m in spec.models]),
        ("dataset", [(None, {"dataset": d}) for d in spec.datasets]),
    ]
    for name, values in spec.grid.items():
        if not values:
            problems.append(f"grid.{name}: empty axis; give at least one value")
            continue
        if isinstance(values, dict):
            if name in fields:
                problems.append(f"grid.{name}: a config key takes a list of values, not labelled settings")
                continue
            for label, setting in values.items():
                for key in setting:
                    if key not in fields or key == "seed":
                        valid = ", ".join(k for k in fields if k != "seed")
                        problems.append(f"grid.{name}.{label}.{key}: unknown key; valid keys: {valid}")
            axes.append((name, [(label, dict(setting)) for label, setting in values.items()]))
        elif name not in fields or name in ("seed", "model", "dataset"):
            hint = "use `seeds:`" if name == "seed" else "use `models:`/`datasets:`" if name in ("model", "dataset") else \
                f"valid keys: {', '.join(k for k in fields if k not in ('seed', 'model', 'dataset'))}"
            problems.append(f"grid.{name}: unknown axis; {hint}")
        else:
            axes.append((name, [(None, {name: v}) for v in values]))
    return axes


def _check_values(spec: StudyFile, problems: list[str]) -> None:
    """Check each base key and grid value on its own, so errors point at the line to fix."""
    fields = TrialConfig.model_fields
    for key in spec.base:
        if key not in fields:
            problems.append(f"base.{key}: unknown key; valid keys: {', '.join(fields)}")
    probe = {"model": "gan", "dataset": "ring8"}
    for where, values in [("base", {k: v for k, v in spec.base.items() if k in fields})] + [
            (f"grid.{name}[{i}]", {name: v}) for name, vals in spec.grid.items() if isinstance(vals, list)
            and name in fields for i, v in enumerate(vals)]:
        try:
            TrialConfig.model_validate({**probe, **values})
        except ValidationError as err:
            # field errors only: cross-field ones depend on the combination, checked per trial
            for line in describe_errors([e for e in err.errors() if e["loc"]]):
                problems.append(f"base.{line}" if where == "base" else f"{where}: {line.split(': ', 1)[1]}")


def expand(spec: StudyFile, problems: list[str]) -> list[TrialSpec]:
    axes = _axes(spec, problems)
    _check_values(spec, problems)
    if problems:
        return []
    fixed = dict(spec.base)
    if spec.budget:
        fixed.update(spec.budget.model_dump())
    if spec.collapse_rule is not None:
        fixed["collapse_rule"] = spec.collapse_rule
    trials, seen_errors = [], set()
    for combo in itertools.product(*(values for _, values in axes)):
        values, labels = dict(fixed), {}
        for (name, _), (label, setting) in zip(axes, combo, strict=True):
            values.update(setting)
            if label is not None:
                labels[name] = label
        for seed in _seeds(spec):
            try:
                trials.append(TrialSpec(TrialConfig(**values, seed=seed), labels))
            except ValidationError as err:
                where = "/".join(f"{v}" for v in (values["model"], values["dataset"], *labels.values()))
                for line in describe_errors(err.errors()):
                    if line not in seen_errors:
                        seen_errors.add(line)
                        problems.append(f"trial {where}: {line}")
                break
    return trials


def check_search(spec: StudyFile, problems: list[str]) -> None:
    if spec.search is None:
        return
    fields = TrialConfig.model_fields
    for key, entry in spec.search.space.items():
        where = f"search.space.{key}"
        if key not in fields or key in ("seed", "model", "dataset"):
            problems.append(f"{where}: not a searchable config key; valid keys: "
                            f"{', '.join(k for k in fields if k not in ('seed', 'model', 'dataset'))}")
            continue
        if key in spec.grid:
            problems.append(f"{where}: also a grid axis; search it or grid it, not both")
        if entry.type == "categorical":
            if not entry.choices:
                problems.append(f"{where}: categorical needs a non-empty `choices` list")
            continue
        if entry.low is None or entry.high is None:
            problems.append(f"{where}: {entry.type} needs `low` and `high`")
            continue
        if entry.low >= entry.high:
            problems.append(f"{where}: low ({entry.low}) must be below high ({entry.high})")
        if entry.type == "loguniform" and entry.low <= 0:
            problems.append(f"{where}: loguniform needs low > 0 (got {entry.low})")
        for bound in (entry.low, entry.high):
            try:
                TrialConfig.model_validate({key: bound})
            except ValidationError as err:
                problems += [f"{where}: bound {bound}: {line}" for line in describe_errors(err.errors())]


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> Study:
    """Read and check a study file; `overrides` (from --set) update its `base:` section, and
    the study as run (what RESULTS/study.yaml keeps) then includes them."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(str(path), [f"cannot read: {err.strerror}"]) from None
    return load_study_text(text, str(path), overrides)


def load_study_text(text: str, source: str, overrides: dict[str, Any] | None = None) -> Study:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(source, [f"not valid YAML: {err}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, ["a study file is a mapping with at least `name:`"])
    if overrides:
        raw["base"] = {**(raw.get("base") or {}), **overrides}
        text = text.rstrip() + "\n# --set overrides, merged into base:\n" + yaml.safe_dump({"overrides": overrides})
    problems: list[str] = []
    try:
        spec = StudyFile.model_validate(raw)
    except ValidationError as err:
        problems += _study_errors(err)
        # Check the sections that did parse too, so one run lists every problem.
        bad = {e["loc"][0] for e in err.errors() if e["loc"]}
        rest = {k: v for k, v in raw.items() if k not in bad}
        rest.setdefault("name", "unnamed")
        try:
            spec = StudyFile.model_validate(rest)
        except ValidationError:
            raise ConfigError(source, problems) from None
    trials = expand(spec, problems)
    check_search(spec, problems)
    if not problems and not trials:
        problems.append("the study expands to no trials")
    if problems:
        raise ConfigError(source, problems)
    return Study(source, spec, text, trials)


def _study_errors(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parent = StudyFile
            for part in e["loc"][:-1]:
                ann = parent.model_fields.get(str(part)) if isinstance(part, str) and hasattr(parent, "model_fields") else None
                inner = getattr(ann, "annotation", None)
                parent = next((a for a in getattr(inner, "__args__", (inner,)) if isinstance(a, type) and issubclass(a, BaseModel)), parent)
            lines.append(f"{key}: unknown key; valid keys: {', '.join(parent.model_fields)}")
        else:
            lines.append(f"{key}: {e['msg']} (got {e.get('input')!r})")
    return lines
