"""A study's declared claims: checked against its axes and the endpoint table when the study is
read, and recorded in the results folder's contract when its first trial starts. The record
is hashed; a later run whose claims differ is refused unless each changed claim is declared
under `amendments:` (dated), so an endpoint cannot quietly be chosen after the results are seen.
Deciding them is the analysis layer's (analysis.claims)."""

from __future__ import annotations

import datetime
import hashlib
import json
import math

from vi_contract.endpoints import ENDPOINTS, NO_WORSE, RANK, RATE
from vi_sweeps.study.schema import StudyFile, interims


def _values(axes: list[tuple[str, list]]) -> dict[str, list]:
    return {name: [label if label is not None else next(iter(s.values())) for label, s in vals] for name, vals in axes}


def _text(values) -> str:
    return ", ".join(map(str, values))


def check_claims(spec: StudyFile, axes: list[tuple[str, list]], compare: dict | None, problems: list[str]) -> None:
    """One line per problem, naming the claim's key: an unknown endpoint, axis or value, a
    treatment equal to the baseline, an id declared twice, an amendment of no claim."""
    if interims(spec) and spec.pack_seeds != spec.seeds["interim"]:
        problems.append(f"pack_seeds: must equal seeds.interim ({spec.seeds['interim']}) so each interim is one pack "
                        f"of every condition (got {spec.pack_seeds})")
    if not spec.claims:
        if interims(spec):
            problems.append("seeds: interims stop when the declared claims are decided; declare `claims:`")
        return
    values = _values(axes)
    if compare is None or compare.get("axis") not in values:
        problems.append("claims: a claim compares along the study's compare axis; set `compare:` (axis and baseline)")
        return
    axis, ids = compare["axis"], [c.id for c in spec.claims]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"claims: id {dup!r} declared more than once")
    for i, claim in enumerate(spec.claims):
        where = f"claims[{i}]"
        for j, ep in enumerate([claim.primary, *claim.secondary]):
            key = "primary" if j == 0 else f"secondary[{j - 1}]"
            if ep.endpoint not in ENDPOINTS:
                problems.append(f"{where}.{key}.endpoint: {ep.endpoint!r} is not an endpoint; valid choices: "
                                f"{_text(ENDPOINTS)}")
            else:
                _check_margin(ep, f"{where}.{key}", bool(interims(spec)), problems)
        baseline = compare["baseline"] if claim.baseline is None else claim.baseline
        if baseline not in values[axis]:
            problems.append(f"{where}.baseline: {baseline!r} is not a value of {axis}; valid choices: {_text(values[axis])}")
        for value in claim.treatment or []:
            if value not in values[axis]:
                problems.append(f"{where}.treatment: {value!r} is not a value of {axis}; valid choices: "
                                f"{_text(values[axis])}")
            elif value == baseline:
                problems.append(f"{where}.treatment: {value!r} is the baseline; a claim compares two values of {axis}")
        for key, value in claim.within.items():
            if key == axis or key not in values or key == "seed":
                valid = [a for a in values if a not in (axis, "seed")]
                problems.append(f"{where}.within.{key}: not an axis a cell can hold; valid choices: {_text(valid) or 'none'}")
            elif value not in values[key]:
                problems.append(f"{where}.within.{key}: {value!r} is not a value of {key}; valid choices: "
                                f"{_text(values[key])}")
    for i, amendment in enumerate(spec.amendments):
        if amendment.claim not in ids:
            problems.append(f"amendments[{i}].claim: {amendment.claim!r} is not a claim; valid choices: {_text(ids) or 'none'}")


def _check_margin(ep, where: str, sequential: bool, problems: list[str]) -> None:
    """A margin belongs to expect: no_worse, must be a positive number (below 1 for a rate), and
    needs an endpoint with a one-sided bound (a rate or a rank) and a fixed n."""
    kind = ENDPOINTS[ep.endpoint].kind
    if ep.expect != NO_WORSE:
        if ep.margin is not None:
            problems.append(f"{where}.margin: only with expect: no_worse (got expect: {ep.expect}); valid choices: "
                            "remove margin, or expect: no_worse")
        return
    bounded = [name for name, e in ENDPOINTS.items() if e.kind in (RATE, RANK)]
    if kind not in (RATE, RANK):
        problems.append(f"{where}.expect: no_worse needs an endpoint with a one-sided bound (got {ep.endpoint}); "
                        f"valid choices: {_text(bounded)}")
    elif ep.margin is None:
        problems.append(f"{where}.margin: required with expect: no_worse; give the largest worsening allowed, a positive "
                        "number in the endpoint's units")
    elif not math.isfinite(ep.margin) or ep.margin <= 0 or (kind == RATE and ep.margin >= 1):
        problems.append(f"{where}.margin: must be a positive number{' below 1 (a rate)' if kind == RATE else ''} "
                        f"(got {ep.margin})")
    if sequential:
        problems.append(f"{where}.expect: no_worse is decided at a fixed n, not in interims; valid choices: lower, higher")


def declared(spec: StudyFile) -> list[dict]:
    """The claims as recorded: an endpoint's margin only where one is given, so a record made
    before margins existed keeps its hash."""
    out = [c.model_dump(mode="json") for c in spec.claims]
    for claim in out:
        for ep in [claim["primary"], *claim["secondary"]]:
            if ep.get("margin") is None:
                ep.pop("margin", None)
    return out


def digest(claims: list[dict]) -> str:
    return hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).hexdigest()


def record(spec: StudyFile, before: dict | None, today: str | None = None) -> tuple[dict | None, str | None]:
    """(the claims record for contract.json, or a one-line refusal). `before` is the folder's
    record (None when no trial has started there): the first run records the claims as they
    are, dated; a later one keeps that record when nothing changed, adds the declared
    amendments when each changed or added claim has one, and is refused otherwise."""
    now = declared(spec)
    today = today or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    if before is None:
        return ({"declared": today, "sha256": digest(now), "claims": now, "amendments": []} if now else None), None
    if digest(now) == before.get("sha256"):
        return before, None
    old = {c["id"]: c for c in before.get("claims", [])}
    changed = sorted({c["id"] for c in now if old.get(c["id"]) != c} | (set(old) - {c["id"] for c in now}))
    amended = {a.claim for a in spec.amendments}
    missing = [c for c in changed if c not in amended]
    if missing:
        return None, (f"claims {_text(missing)} changed after the first trial started ({before.get('declared')}); "
                      f"declare each under amendments: [{{claim: {missing[0]}, date: YYYY-MM-DD, reason: ...}}], "
                      "or restore the claims as recorded")
    return ({**before, "sha256": digest(now), "claims": now,
             "amendments": [a.model_dump(mode="json") for a in spec.amendments]}), None

