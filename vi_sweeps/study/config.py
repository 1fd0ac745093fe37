"""One trial's configuration: typed defaults, one line of documentation per field.

Two kinds of key. Experiment keys define what is measured (model, data, networks, optimiser,
schedule, regulariser, metrics, seed): `trial_id` is a stable hash of them, so resuming,
de-duplicating and joining results are exact. Execution keys (`device`, `threads`, and local
paths such as `data_root` and `fid_weights`) say how and where a trial runs and do not enter
its identity; a data set read from a folder enters it by a content fingerprint instead, so the
same sweep resumes on another machine. Unknown keys and bad values fail at once with the key
named and, where there are any, the valid choices.

`TrialConfig` is assembled from the keys each part declares (vi_sweeps.core.settings: the trial's
own below, the model zoo's in the torch-free `declared` modules of vi_sweeps.gan, .data and
.metrics), and names are checked against the registries' declarations: reading a config never
imports torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from vi_contract.rules import collapse_rule
from vi_contract.yamlsafe import BoundedLoader
from vi_sweeps.core.errors import ConfigError, shown
from vi_sweeps.core.plugins import LOADED
from vi_sweeps.core.registry import LOADING
from vi_sweeps.core.settings import SETTINGS, Setting, declare
from vi_sweeps.data.declared import DATASETS
from vi_sweeps.gan.declared import (
    ALI_LOSSES,
    ARCHITECTURES,
    DEFAULT_ARCH,
    GAN_LOSSES,
    OBJECTIVES,
    STABILISERS,
    active,
    compile_refusals,
    stabiliser_keys,
)
from vi_sweeps.metrics.declared import EVALUATORS
from vi_sweeps.metrics.evaluation import evaluation

__all__ = ["ConfigError", "TrialConfig", "YAMLLoader"]  # ConfigError: declared in vi_sweeps.core.errors


class YAMLLoader(BoundedLoader):
    """YAML as a study file means it: 1e-3 and 1.0e10 are numbers (PyYAML's YAML 1.1 reads a
    float without a dot or an exponent sign as text); a quoted "5" stays text; aliases bounded."""


YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))


@dataclass(frozen=True)
class PluginKey:
    """A config key a plugin declares (its stabiliser's weight, say): an experiment key that
    enters the identity only away from its default, as a key of kind "added" (vi_sweeps.core.settings)."""

    default: bool | int | float | str
    doc: str

    def __post_init__(self):
        if not isinstance(self.default, bool | int | float | str) or not self.doc:
            raise TypeError("a plugin key has a default (a bool, int, float or str) and a one-line doc")

    def check(self, value: Any) -> str:
        """Why `value` is not one of this key's (empty: it is)."""
        kind = type(self.default)
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if isinstance(value, float) and not math.isfinite(value):
            ok = False
        return "" if ok else f"expected {kind.__name__} (got {shown(value)})"


PLUGIN_KEYS: dict[str, PluginKey] = {}
PLUGIN_KEY_ORIGINS: dict[str, str] = {}  # key -> the plugin module that declared it


def register_key(name: str, default: Any, doc: str) -> None:
    """Declare a config key (for a plugin): `cfg.NAME` is then its value in every trial."""

    if name in TrialConfig.model_fields or name in PLUGIN_KEYS:
        raise ValueError(f"config key {name!r} exists already (a built-in or another plugin has it)")
    if not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"config key {name!r}: a Python identifier not starting with _")
    # a result column may share its name (its column is config/NAME); a tracked run's parameters hold the
    # config beside trial_id, study and search_trial, so those stay refused
    if hasattr(BaseModel, name) or name in ("identity", "trial_id", "resolved_arch", "study", "search_trial"):
        raise ValueError(f"config key {name!r} is a config attribute or a tracked run's parameter; give it another name")
    PLUGIN_KEYS[name] = PluginKey(default, doc)
    if LOADING:
        PLUGIN_KEY_ORIGINS[name] = LOADING[-1]


# The trial's own keys; every other key is declared by what reads it (vi_sweeps.core.settings).
declare("trials",
        Setting("model", str, "gan", "model family", choices=OBJECTIVES),
        Setting("dataset", str, "ring8", "data set", choices=DATASETS),
        Setting("seed", int, 0, "seeds weights, data draws and noise; same seed, same rows", bounds={"ge": 0, "le": 2**63 - 1}),
        Setting("iterations", int, 2000, "training iterations (one D phase + one G phase)", bounds={"gt": 0, "le": 10**9}),
        Setting("eval_every", int, 500, "evaluate (and checkpoint) every this many iterations",
                bounds={"gt": 0, "le": 10**9}),
        Setting("batch_size", int, 64, "batch size of every network update", bounds={"gt": 0, "le": 65536}),
        Setting("pack_size", int, 1, "members of the vectorised pack the trial trains in (a study's pack_seeds, as its "
                "seeds divide); set by the study", kind="added", bounds={"ge": 1, "le": 65536}),
        Setting("pack_index", int, 0, "the trial's place in its pack (0 .. pack_size - 1); packed arithmetic rounds "
                "differently for each size and place, so both are part of the trial's identity", kind="added",
                bounds={"ge": 0, "le": 65535}),
        Setting("precision", Literal["fp32", "tf32", "bf16"], "fp32", "arithmetic: fp32; tf32 matmuls on CUDA; bf16 "
                "autocast (fp32 weights and optimiser)"),
        Setting("compile", bool, False, "train each pack with one compiled step per iteration (vi_sweeps.gan.compiled): "
                "eager agrees to rounding after one iteration, then goes its own way, so part of the id", kind="added"),
        Setting("device", Literal["auto", "cpu", "cuda"], "auto", "auto = cuda when available", kind="execution"),
        Setting("threads", int, 1, "torch CPU threads of the trial", kind="execution", bounds={"gt": 0, "le": 1024}))

# The order of TrialConfig's fields as results were first written with it (contract.json, --list-keys): a key
# declared since joins after these, in the order declared. (A trial's id does not depend on this order.)
ORDER = ("model", "dataset", "seed", "iterations", "eval_every", "eval_samples", "batch_size", "z_dim", "arch", "bn",
         "hidden", "mlp_layers", "width", "image_size", "crop", "data_root", "lr", "beta1", "beta2", "d_steps",
         "g_steps", "g_repeats", "lam", "penalty", "loss", "r1", "r2", "gp", "sn", "ema", "ema_start", "lr_d", "lr_g",
         "ali_loss", "mode_min_share", "collapse_rule", "fid_samples", "prdc_samples", "pr_k", "dc_k", "kid_subsets",
         "kid_subset_size", "skip_bad_images", "pack_size", "pack_index", "precision", "device", "threads", "fid_weights", "compile")
EXTRA = {"execution": {"execution": True}, "added": {"omit_at_default": True}, "experiment": None}


def _field(s: Setting) -> tuple[Any, Any]:
    """A declared key as a pydantic field: its type, default, bounds and doc; its kind in
    json_schema_extra (execution: not in the id; added: in the id away from its default)."""
    return s.type, Field(s.default, description=s.doc, json_schema_extra=EXTRA[s.kind], **s.bounds)


def _fields() -> dict[str, tuple[Any, Any]]:
    names = [n for n in ORDER if n in SETTINGS] + [n for n in SETTINGS if n not in ORDER]
    return {name: _field(SETTINGS[name]) for name in names}


class TrialBase(BaseModel):
    """What every trial's config does; its fields are the declared keys (TrialConfig, below)."""

    # no inf or NaN anywhere; sizes are bounded where a value past the bound could only fail later;
    # extra keys are plugins' keys (PLUGIN_KEYS), checked in _plugin_keys
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _plugin_keys(cls, data: Any) -> Any:
        """Keys that are no field must be plugins' keys, of their type; absent ones take their default."""
        if not isinstance(data, dict):
            return data
        problems, given = [], {}
        for key, value in data.items():
            if key in cls.model_fields:
                continue
            if key not in PLUGIN_KEYS:
                problems.append(unknown(key, config_keys()))
            elif why := PLUGIN_KEYS[key].check(value):
                problems.append(f"{key}: {why}")
            else:  # 1 and 1.0 are one value of a float key, and one trial id
                given[key] = float(value) if isinstance(PLUGIN_KEYS[key].default, float) else value
        if problems:
            raise ValueError("; ".join(problems))
        return {**{k: spec.default for k, spec in PLUGIN_KEYS.items()}, **data, **given}

    @model_validator(mode="before")
    @classmethod
    def _resolve_auto(cls, data: Any) -> Any:
        """`collapse_rule: auto` becomes the data set's own rule, so the stored config says
        which rule was used."""

        if isinstance(data, dict) and data.get("collapse_rule", "auto") == "auto":
            dataset = data.get("dataset", cls.model_fields["dataset"].default)
            if dataset in DATASETS:
                data = {**data, "collapse_rule": evaluation(dataset).collapse_rule}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> TrialBase:
        problems = []
        for key, registry in (("model", OBJECTIVES), ("dataset", DATASETS)):
            if getattr(self, key) not in registry:
                problems.append(f"{key}: unknown {getattr(self, key)!r}; valid choices: {', '.join(registry.names())}")
        if self.arch != "auto" and self.arch not in ARCHITECTURES:
            problems.append(f"arch: unknown {self.arch!r}; valid choices: auto, {', '.join(ARCHITECTURES.names())}")
        if problems:
            raise ValueError("; ".join(problems))
        data = DATASETS.meta(self.dataset)  # the cross-checks live on the registered specs
        problems = (ARCHITECTURES.meta(self.resolved_arch).problems(self, self.arch, data.kind)
                    + OBJECTIVES.meta(self.model).problems(self, data.kind) + data.problems(self, self.dataset)
                    + compile_refusals(self))
        if problems:
            raise ValueError(problems[0])

        for key, table in (("loss", GAN_LOSSES), ("ali_loss", ALI_LOSSES)):
            if getattr(self, key) not in table:
                raise ValueError(f"{key}: unknown {getattr(self, key)!r}; valid choices: {', '.join(table.names())}")

        gan_only = [k for k in ("loss", *stabiliser_keys()) if getattr(self, k) != key_default(k)]
        family = OBJECTIVES.meta(self.model).gan_keys or getattr(OBJECTIVES.loaded(self.model), "gan_keys", False)
        if gan_only and not family:
            raise ValueError(f"{gan_only[0]}: applies to the gan family (gan and its subclasses) only, not {self.model}")
        if self.pack_index >= self.pack_size:
            raise ValueError(f"pack_index: {self.pack_index} is not a place in a pack of pack_size {self.pack_size}")
        if self.ema_start and not self.ema:
            raise ValueError("ema_start: starts an average that ema: 0 turns off; set ema (e.g. 0.999)")
        if self.eval_every > self.iterations:
            raise ValueError("eval_every: larger than iterations, the trial would never be evaluated")
        collapse_rule(self.collapse_rule, evaluation(self.dataset).metrics)
        return self

    @property
    def resolved_arch(self) -> str:
        return self.arch if self.arch != "auto" else DEFAULT_ARCH[DATASETS.meta(self.dataset).kind]

    def identity(self) -> dict[str, Any]:
        """What defines the experiment: every experiment key, the content fingerprint of a data
        set read from a folder, and the source of every plugin the trial uses."""

        out = {k: v for k, v in self.model_dump(exclude=set(EXECUTION_KEYS)).items()
               if not ((k in ADDED_KEYS or k in PLUGIN_KEYS) and v == key_default(k))}
        data = DATASETS.meta(self.dataset)
        if self.fid_weights == "none" and any(str(k) == "eval/fid_inception" for k in evaluation(self.dataset).metrics):
            out["fid"] = "off"  # FID turned off changes what is measured (where FID is measured)
        if data.fingerprint is not None:
            out["data_fingerprint"] = data.fingerprint(self)
        sources = self.plugin_sources()
        if sources:  # a plugin's code is part of the experiment: another source, another id
            out["plugins"] = sources
        return out

    def plugin_sources(self) -> dict[str, str]:
        """The versions (or sha256) of the plugins whose names this trial uses: its model, data
        set, architecture, evaluator, losses, active stabilisers and plugin keys away from their default."""

        origins = {OBJECTIVES.origin(self.model), DATASETS.origin(self.dataset), ARCHITECTURES.origin(self.resolved_arch),
                   EVALUATORS.origin(DATASETS.meta(self.dataset).evaluator), GAN_LOSSES.origin(self.loss),
                   ALI_LOSSES.origin(self.ali_loss),
                   *(STABILISERS.origin(name) for name, _ in active(self)),
                   *(PLUGIN_KEY_ORIGINS.get(k) for k in PLUGIN_KEYS if getattr(self, k) != key_default(k))}
        return {m: LOADED[m].source if m in LOADED else "unknown" for m in sorted(o for o in origins if o)}

    def evaluation_steps(self) -> list[int]:
        """The steps a trial of this budget is evaluated at: every eval_every, and the last."""
        steps = list(range(self.eval_every, self.iterations + 1, self.eval_every))
        return steps if steps[-1] == self.iterations else [*steps, self.iterations]

    def at_default(self, key: str) -> bool:
        """Whether a key holds its documented default (a stabiliser is active where one of
        its keys does not)."""
        return getattr(self, key) == key_default(key)

    @property
    def trial_id(self) -> str:
        return trial_id(self.identity())


# One trial's config: the declared keys, in ORDER; pickled by this name (Ray ships it to workers)
TrialConfig = create_model("TrialConfig", __base__=TrialBase, __module__=__name__, **_fields())
TrialConfig.__doc__ = "One trial's configuration: every declared config key (vi_sweeps.core.settings), typed and bounded."


EXECUTION_KEYS = tuple(name for name, f in TrialConfig.model_fields.items()
                       if (f.json_schema_extra or {}).get("execution"))
ADDED_KEYS = tuple(name for name, f in TrialConfig.model_fields.items()
                   if (f.json_schema_extra or {}).get("omit_at_default"))


def trial_id(identity: dict[str, Any]) -> str:
    """A stable hash of what defines an experiment: same experiment, same id, on every machine."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def key_default(key: str) -> Any:
    return PLUGIN_KEYS[key].default if key in PLUGIN_KEYS else TrialConfig.model_fields[key].default


def config_keys() -> list[str]:
    """Every config key: the fields, then the plugins' keys."""
    return [*TrialConfig.model_fields, *PLUGIN_KEYS]


def unknown(where: str, keys: list[str], what: str = "unknown key") -> str:
    """The one message of a name that is no config key where it is given (vi_sweeps.study.places)."""
    return f"{where}: {what}; valid keys: {', '.join(keys)}"


def field_docs() -> dict[str, str]:
    return {**{name: f.description or "" for name, f in TrialConfig.model_fields.items()},
            **{name: f"(plugin) {spec.doc}" for name, spec in PLUGIN_KEYS.items()}}


def keys_text() -> str:
    """Every config key with its default and doc, execution keys marked; a key whose values are
    registered names lists the registry's names as they are now (a loaded plugin's included)."""
    lines = ["Experiment keys define a trial (its trial_id hashes them); execution keys (marked *) do not."]
    for name, doc in field_docs().items():
        names = SETTINGS[name].names() if name in SETTINGS else []
        choices = f" (choices: {', '.join(names)})" if names else ""
        lines.append(f"{name:16}{'*' if name in EXECUTION_KEYS else ' '} {key_default(name)!r:18} {doc}{choices}")
    stabilisers = "; ".join(f"{n} ({', '.join(STABILISERS.meta(n).keys)})" for n in STABILISERS.names())
    lines.append(f"\nStabilisers, each on when one of its keys is away from its default: {stabilisers}")
    lines.append("Evaluators: " + "; ".join(f"{e} ({', '.join(d for d in DATASETS.names() if DATASETS.meta(d).evaluator == e)})"
                                            for e in EVALUATORS.names()))
    serial = [m for m in OBJECTIVES.names() if not OBJECTIVES.meta(m).vectorised]
    lines.append(f"Models trained one seed after another inside a pack (not vectorised): {', '.join(serial)}")
    return "\n".join(lines)


def defaults() -> dict[str, Any]:
    """Every key's documented default (written into the results contract)."""
    return {name: key_default(name) for name in config_keys()}


def describe_errors(errors: list[dict]) -> list[str]:
    """One line per pydantic error: the key, what is wrong, and the valid choices where known."""
    lines = []
    for e in errors:
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(unknown(key, config_keys()))
        elif e["type"] == "value_error":
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg}" if key else msg)
        else:
            lines.append(f"{key}: {e['msg']} (got {shown(e.get('input'))})")
    return lines


def make_config(values: dict[str, Any], source: str = "config") -> TrialConfig:
    try:
        return TrialConfig(**values)
    except ValidationError as err:
        raise ConfigError(source, describe_errors(err.errors())) from None


def split_assignment(pair: str, option: str) -> tuple[str, str, Any]:
    """KEY=VALUE -> (key, the value's text, the value read as a YAML scalar: YAMLLoader is a
    SafeLoader, so no tag constructs an object); shared by --set and --only."""
    key, sep, value = pair.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(option, [f"{pair!r}: expected KEY=VALUE"])
    try:
        parsed = yaml.load(value, Loader=YAMLLoader) if value.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(option, [f"{pair!r}: not a YAML value ({str(err).splitlines()[0]})"]) from None
    except RecursionError:
        raise ConfigError(option, [f"{shown(pair)}: nested too deeply to be a value"]) from None
    return key, value, parsed


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """KEY=VALUE strings (from --set) to typed values, read as YAML scalars; each key once."""
    out = {}
    for pair in pairs:
        key, value, parsed = split_assignment(pair, "--set")
        if key in out:
            raise ConfigError("--set", [f"{key}: set twice ({out[key]!r} and {value!r}); give it once"])
        if isinstance(parsed, (dict, list)):
            raise ConfigError("--set", [f"{pair!r}: a single value (a number, true/false or text), not a "
                                        f"{type(parsed).__name__}"])
        out[key] = parsed
    return out
