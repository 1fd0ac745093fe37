"""The study file's schema (pydantic, extra keys refused) and its error wording: one line per
problem in the study's own terms, a value that fits no branch of a union said once. What a
study file may hold is declared here once; vi_sweeps.study.expansion turns it into trials and
vi_sweeps.study.load reads it from YAML."""

from __future__ import annotations

import copy
import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vi_sweeps.study.config import shown, unknown
from vi_sweeps.study.places import misplaced
from vi_sweeps.track.spec import Tracking

Scalar = bool | int | float | str
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


class TunePhase(BaseModel):
    """The tuning half of a tune-then-test protocol: every arm (a value of the compare axis) in
    every cell gets its own Optuna search of the same number of suggestions on the same seeds."""
    model_config = ConfigDict(extra="forbid")
    trials: int = Field(gt=0, description="suggestions per arm in each cell: the same budget for every arm")
    seeds: list[int] = Field(min_length=1, description="the tuning seeds (trained as one pack per suggestion); "
                             "disjoint from the test seeds")
    space: dict[str, dict[str, SpaceEntry]] = Field(default_factory=dict, description="per arm (a compare-axis "
                                                    "value): the keys its search draws")
    shared: dict[str, SpaceEntry] = Field(default_factory=dict, description="keys every arm searches alike (e.g. lr)")
    claim: str | None = Field(None, description="the declared claim whose primary endpoint scores a suggestion "
                              "(default: the first claim)")
    objective: Objective | None = Field(None, description="how a suggestion is scored, where the claim's endpoint "
                                        "has no per-seed metric")
    sampler: Sampler = Sampler()
    storage: str | None = Field(None, description="Optuna storage URL of the searches; default SQLite in "
                                "RESULTS/tune (results on object storage need one)")


class TestPhase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seeds: Any = Field(description="the test seeds, as the study's seeds: a count, a list or {interim, max}")


class Protocol(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tune: TunePhase
    test: TestPhase


class Compare(BaseModel):
    model_config = ConfigDict(extra="forbid")
    axis: str = Field(description="the treatment axis the findings compare within each regime")
    baseline: Scalar = Field(description="its reference value (a label, for a labelled axis)")


class ClaimEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(description="an endpoint of vi_contract.endpoints (mode_loss, modes_captured, hq_share, ...)")
    expect: Literal["lower", "higher", "no_worse"] = Field(description="what the claim predicts of the treatment's "
                                                           "value against the baseline's (no_worse: not worse by "
                                                           "more than `margin`)")
    margin: float | None = Field(None, description="with expect: no_worse, the largest worsening the claim allows, in "
                                 "the endpoint's units (positive)")


class Claim(BaseModel):
    """A hypothesis declared before the study runs, decided by `vi-sweep claims` on its primary
    endpoint; stored (and hashed) in the results folder when the first trial starts."""
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=40, description="a short name: letters, digits, . _ -")
    statement: str = Field(min_length=1, max_length=500, description="the claim in one line")
    treatment: list[Scalar] | None = Field(None, description="values of the compare axis (default: every value but "
                                           "the baseline)")
    baseline: Scalar | None = Field(None, description="the compare axis' value to compare against (default: compare.baseline)")
    within: dict[str, Scalar] = Field(default_factory=dict, description="axes held at one value; every other axis "
                                      "(and each data set) is a cell of its own")
    primary: ClaimEndpoint
    secondary: list[ClaimEndpoint] = Field(default_factory=list)
    family: str | None = Field(None, description="claims of one family share one Holm correction (default: the id)")
    alpha: float = Field(0.05, gt=0, le=0.5, description="the family-wise error rate")


class Amendment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claim: str = Field(description="the id of the claim changed after the first trial started")
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="when it was changed, YYYY-MM-DD")
    reason: str = Field(min_length=1, max_length=500)

    @field_validator("date", mode="before")
    @classmethod
    def _date_text(cls, v: Any) -> Any:
        return v.isoformat() if isinstance(v, datetime.date) else v  # YAML reads 2026-12-07 as a date


class StudyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100,
                      description="letters, digits, . _ -; not starting with . _ -; at most 100 characters")
    description: str = ""
    models: list[str] = Field(default_factory=lambda: ["gan"])
    datasets: list[str] = Field(default_factory=lambda: ["ring8"])
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Scalar] | dict[str, dict[str, Any]]] = Field(default_factory=dict)
    seeds: Any = Field(1, description="a count (seeds 0..n-1), a list of distinct seeds, or {interim: n, max: N}: "
                       "seeds added n at a time until the claims are decided or N are run")
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
    claims: list[Claim] = Field(default_factory=list, description="hypotheses decided by `vi-sweep claims`")
    amendments: list[Amendment] = Field(default_factory=list, description="claims changed after the first trial, "
                                        "each dated (the verdict shows them)")
    protocol: Protocol | None = Field(None, description="tune each arm with the same budget, then test the chosen "
                                      "settings on fresh seeds (protocol.test.seeds are the study's seeds)")

    @model_validator(mode="before")
    @classmethod
    def _test_seeds(cls, raw: Any) -> Any:
        """protocol.test.seeds are the study's seeds, declared in one place."""
        if isinstance(raw, dict) and isinstance(raw.get("protocol"), dict) and isinstance(raw["protocol"].get("test"), dict) \
                and "seeds" in raw["protocol"]["test"]:
            if "seeds" in raw:
                raise ValueError("seeds: a protocol declares its test seeds once, as protocol.test.seeds; drop seeds:")
            return {**raw, "seeds": raw["protocol"]["test"]["seeds"]}
        return raw

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

        if isinstance(v, dict):
            return _interims(v)
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


def _interims(v: dict) -> dict:
    """`seeds: {interim: n, max: N, futility: f}`: N a multiple of n, so every interim is one whole
    pack; f (optional) stops a comparison whose conditional power falls below it."""
    sizes = {k: v.get(k) for k in ("interim", "max")}
    if not {"interim", "max"} <= set(v) <= {"interim", "max", "futility"} or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in sizes.values()):
        raise ValueError(f"interims are {{interim: n, max: N}} with whole numbers, and optionally futility: f (got {shown(v)})")
    f = v.get("futility")
    if f is not None and (isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 0.5):
        raise ValueError(f"futility is a conditional power between 0 and 0.5, e.g. 0.1 (got {shown(f)})")
    if v["interim"] < 2 or v["max"] < 2 * v["interim"] or v["max"] % v["interim"]:
        raise ValueError(f"interim must be at least 2 and max a multiple of it, at least two interims (got {shown(v)})")
    return v


def interims(spec) -> dict | None:
    """The study's {interim, max} when its seeds come in interims, else None."""
    return spec.seeds if isinstance(spec.seeds, dict) else None


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "text", "bool": "true or false", "list": "a list",
               "dict": "a mapping"}


def what_parses(raw: dict, err: ValidationError) -> StudyFile | None:
    """The study without the keys that failed (a bad `search.trials` drops only itself, so the
    rest of `search:` is still checked), or None if even that does not parse."""

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


def study_errors(err: ValidationError) -> list[str]:
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
        if e["type"] == "extra_forbidden" and e["loc"][0] == "budget" and len(e["loc"]) == 2:
            lines.append(misplaced("budget", str(e["loc"][1]), key))  # a config key: where keys go (study.places)
        elif e["type"] == "extra_forbidden":
            parent = StudyFile
            for part in e["loc"][:-1]:
                ann = parent.model_fields.get(str(part)) if isinstance(part, str) and hasattr(parent, "model_fields") else None
                inner = getattr(ann, "annotation", None)
                parent = next((a for a in getattr(inner, "__args__", (inner,)) if isinstance(a, type) and issubclass(a, BaseModel)), parent)
            lines.append(unknown(key, list(parent.model_fields)))
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

