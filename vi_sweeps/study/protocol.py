"""A tune-then-test protocol (`protocol:` in a study): every arm (a value of the compare axis)
in every cell gets an Optuna search of the same number of suggestions on the same tuning seeds,
scored on the primary endpoint of the claim it serves; the best setting of each arm and cell is
then frozen into its test trials, on seeds disjoint from the tuning seeds. Lucic et al. (2018)
and Kurach et al. (2019) showed that unequal tuning decides comparisons of GAN methods; here the
equal budget is checked, not assumed.

This module checks a protocol and freezes chosen settings into test trials; the searches run
through the sweep's Optuna machinery (vi_sweeps.sweep.search)."""

from __future__ import annotations

import json

from vi_contract.endpoints import tuned_metric
from vi_sweeps.study.config import TrialConfig
from vi_sweeps.study.expansion import TrialSpec, check_objective, check_space, condition_key, seed_list
from vi_sweeps.study.schema import Objective, StudyFile

BUDGET_KEYS = ("iterations", "batch_size", "d_steps", "g_steps")  # what one suggestion costs an arm
# the per-seed metric a claim's primary endpoint is tuned on (its own metric), and which way is better
TUNED_ON = {e: (tuned_metric(e), "max") for e in ("mode_loss", "modes_captured", "hq_share")}


def arms(spec: StudyFile) -> list:
    """The compare axis' values, as the study names them (labels of a labelled axis)."""
    axis = spec.compare.axis
    values = spec.grid.get(axis, [])
    return list(values) if isinstance(values, dict) else list(values)


def tuning_objective(spec: StudyFile) -> Objective | None:
    """How a suggestion is scored: the protocol's objective, else its claim's primary endpoint's metric."""
    tune = spec.protocol.tune
    if tune.objective is not None:
        return tune.objective
    claim = next((c for c in spec.claims if tune.claim in (None, c.id)), None)
    if claim is None or claim.primary.endpoint not in TUNED_ON:
        return None
    metric, mode = TUNED_ON[claim.primary.endpoint]
    return Objective(metric=metric, mode=mode)


def check_protocol(spec: StudyFile, trials: list[TrialSpec], problems: list[str]) -> None:
    """One line per problem: no compare axis, tuning seeds among the test seeds, an arm the axis
    does not have, an arm with nothing to search or a budget of its own (unequal budgets), a
    claim or objective that cannot score a suggestion, a search beside it."""
    if spec.protocol is None:
        return
    tune = spec.protocol.tune
    if spec.search is not None:
        problems.append("search: a protocol runs its own searches (protocol.tune); drop search:")
    if spec.compare is None:
        problems.append("protocol: its arms are the compare axis' values; set compare: {axis, baseline}")
        return
    overlap = sorted(set(tune.seeds) & set(seed_list(spec)))
    if overlap:
        problems.append(f"protocol.tune.seeds: {', '.join(map(str, overlap[:10]))} are also test seeds "
                        "(protocol.test.seeds); tuning and test seeds must be disjoint")
    if len(set(tune.seeds)) != len(tune.seeds) or any(s < 0 for s in tune.seeds):
        problems.append("protocol.tune.seeds: distinct non-negative integers")
    names = [str(a) for a in arms(spec)]
    for arm in tune.space:
        if arm not in names:
            problems.append(f"protocol.tune.space.{arm}: not a value of {spec.compare.axis}; valid choices: {', '.join(names)}")
    settings = spec.grid.get(spec.compare.axis)
    for arm, space in tune.space.items():
        context = settings.get(arm, {}) if isinstance(settings, dict) else {}
        check_space(spec, space, f"protocol.tune.space.{arm}", problems, axis_keys=True, context=context)
    check_space(spec, tune.shared, "protocol.tune.shared", problems)
    idle = [a for a in names if not tune.space.get(a) and not tune.shared]
    if idle:
        problems.append(f"protocol.tune.space: {', '.join(idle)} would search nothing while the other arms search "
                        f"{tune.trials} suggestions each; every arm gets the same budget: give each arm a space, or "
                        "search shared keys (protocol.tune.shared, e.g. lr) for all")
    unequal = budget_differences(spec, trials)
    if unequal:
        problems.append(f"grid.{spec.compare.axis}: the arms train different budgets ({unequal}); a protocol gives "
                        "every arm the same budget")
    objective = tuning_objective(spec)
    if objective is None:
        claims = [c.id for c in spec.claims]
        if tune.claim is not None and tune.claim not in claims:
            problems.append(f"protocol.tune.claim: {tune.claim!r} is not a declared claim; valid choices: "
                            f"{', '.join(claims) or 'none declared'}")
        else:
            problems.append("protocol.tune.objective: the claim's primary endpoint has no per-seed metric to tune on "
                            f"(tuned directly: {', '.join(TUNED_ON)}); set objective: {{metric, mode}}")
    else:
        check_objective(spec, objective, "protocol.tune.objective", problems)


def budget_differences(spec: StudyFile, trials: list[TrialSpec]) -> str:
    """'' when every arm of every cell trains the same budget, else the first difference."""
    axis = spec.compare.axis
    cells: dict[str, dict[str, tuple]] = {}
    for t in trials:
        config = t.config.model_dump()
        arm = t.labels.get(axis, config.get(axis))
        rest = {k: v for k, v in config.items() if k not in (axis, "seed", *BUDGET_KEYS)}
        cell = condition_key({k: v for k, v in rest.items() if k not in _arm_keys(spec)}, {})
        cells.setdefault(cell, {})[str(arm)] = tuple(config[k] for k in BUDGET_KEYS)
    for by_arm in cells.values():
        if len(set(by_arm.values())) > 1:
            return "; ".join(f"{a}: " + ", ".join(f"{k} {v}" for k, v in zip(BUDGET_KEYS, b, strict=True))
                             for a, b in by_arm.items())
    return ""


def _arm_keys(spec: StudyFile) -> set[str]:
    values = spec.grid.get(spec.compare.axis)
    return {k for s in values.values() for k in s} if isinstance(values, dict) else set()


def chosen_values(record: dict) -> dict[str, dict]:
    """A protocol record's chosen values by condition key (without its arm and search names), each
    key read again as this version keys a condition: a record written before a key was added (the
    stabilisers_fair run's, before `compile`) keys the same conditions."""
    return {condition_key(*json.loads(k)): {p: v for p, v in c.items() if p not in ("arm", "search")}
            for k, c in record["chosen"].items()}


def frozen(trials: list[TrialSpec], chosen: dict[str, dict]) -> list[TrialSpec]:
    """The test trials: each trial of the study with its arm-and-cell's chosen values (`chosen`
    by condition_key of its config and labels); the ids then name the values."""
    out = []
    for t in trials:
        values = chosen[condition_key(t.config, t.labels)]
        config = TrialConfig(**{**t.config.model_dump(exclude={"trial_id"}), **values})
        out.append(TrialSpec(config, t.labels))
    return out

