"""A sequential study's interims read from its rows: each declared comparison's statistic after
each interim (the seeds of its first k packs in both arms), the group-sequential decisions
(analysis.sequential), and which conditions need their next pack. Nothing is stored: a resumed
sweep recomputes the same decisions from the same rows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import claims, sequential
from analysis.verdicts import Study
from vi_contract.columns import config
from vi_contract.endpoints import ENDPOINTS, RANK, RATE


def endpoint_z(name: str, t: pd.DataFrame, b: pd.DataFrame, study: Study) -> float:
    """The comparison's standardised statistic on its endpoint (treatment larger: positive)."""
    ep = ENDPOINTS[name]
    if ep.premise:
        t, b = claims._good(t), claims._good(b)
    if min(len(t), len(b)) < 1:
        return 0.0
    if ep.kind == RATE:
        col = claims.RATE_COLUMNS[name]
        return sequential.rate_z(t[col].astype(float).to_numpy(), b[col].astype(float).to_numpy())
    if ep.kind == RANK:
        x, y = claims._values(t, ep, study), claims._values(b, ep, study)
        return sequential.rank_z(x, y) if len(x) and len(y) else 0.0
    got = claims._time(t, b, ep)
    return 0.0 if math.isnan(got["p"]) else float(np.sign(-got["diff"]) * sps.norm.isf(got["p"] / 2))


@dataclass
class Comparison:
    claim: str
    family: str
    name: str  # data set, cell and comparison, as the claims page names them
    members: tuple  # a finished trial id of each arm: what names the conditions it needs seeds of
    expect: str = "lower"  # what the claim predicts of the treatment
    path: sequential.Path | None = None
    favourable: bool = False


def _seeds(rows: pd.DataFrame) -> set[int]:
    return set(rows[config("seed")].astype(int))


def paths(study: Study, interim: int, maximum: int, alpha_of: dict[str, float], futility: float | None = None
          ) -> list[Comparison]:
    """Every declared comparison of `study`, its z after each complete interim of both arms, and
    its decision under the design (families as declared, Holm across each)."""
    fractions = sequential.fractions_of(interim, maximum)
    found: list[tuple[Comparison, list[float]]] = []
    for d in claims.declared_claims([study]):
        for dataset, extra, comparison, t, b in claims.arms_of(d):
            zs = []
            for k in range(1, len(fractions) + 1):
                need = set(range(round(fractions[k - 1] * maximum)))
                if not (need <= _seeds(t) and need <= _seeds(b)):
                    break
                seeds = list(need)
                zs.append(endpoint_z(d.claim["primary"]["endpoint"], t[t[config("seed")].isin(seeds)],
                                     b[b[config("seed")].isin(seeds)], study))
            cell = ", ".join(f"{k}={v}" for k, v in extra.items())
            name = f"{d.claim['id']}: {dataset}{', ' + cell if cell else ''}, {comparison}"
            found.append((Comparison(d.claim["id"], d.family, name, (t["trial_id"].iloc[0], b["trial_id"].iloc[0]),
                                     d.claim["primary"]["expect"]), zs))
    out = []
    for family in dict.fromkeys(c.family for c, _ in found):
        members = [(c, z) for c, z in found if c.family == family]
        decided = sequential.decide({c.name: z for c, z in members}, fractions, alpha_of.get(family, 0.05), futility)
        for c, z in members:
            c.path = decided[c.name]
            c.favourable = bool(z) and (z[-1] < 0) == (c.expect == "lower")
            out.append(c)
    return out


def needed(comparisons: list[Comparison], interim: int, maximum: int) -> dict[str, int]:
    """A finished trial of each condition a comparison serves -> how many seeds its condition
    needs now: one interim more while the comparison is open, else what it has."""
    out: dict[str, int] = {}
    for c in comparisons:
        have = len(c.path.z) * interim
        want = min(have + interim, maximum) if c.path.decision == "open" else have
        for member in c.members:
            out[member] = max(out.get(member, 0), want or interim)
    return out


def design_of(study: Study) -> dict | None:
    """The study's {interim, max[, futility]} when its seeds came in interims, else None."""
    return study.contract.get("interims") or None


def path_table(study: Study) -> pd.DataFrame | None:
    """Each declared comparison's path under the design: the interims it has seen, its statistic
    after each, the boundary it met last (or crossed), the level Holm gave it, its decision and the
    seeds of each arm it used. None for a study whose seeds did not come in interims."""
    design = design_of(study)
    if not design:
        return None
    alpha = {d.family: d.claim.get("alpha", 0.05) for d in claims.declared_claims([study])}
    rows = [{"comparison": c.name, "interims": len(c.path.z), "z": ", ".join(f"{z:+.2f}" for z in c.path.z),
             "boundary": c.path.bound, "level": c.path.level, "decision": c.path.decision if c.path.decision !=
             "rejected" else ("supports" if c.favourable else "contradicts"),
             "seeds used": (c.path.at or len(c.path.z)) * design["interim"]}
            for c in paths(study, design["interim"], design["max"], alpha, design.get("futility"))]
    return pd.DataFrame(rows, columns=["comparison", "interims", "z", "boundary", "level", "decision", "seeds used"])


def report_sections(studies: list[Study]) -> list[tuple[str, str, object]]:
    """For a study whose seeds came in interims: each comparison's path (the statistic after each
    interim, the boundary it met, its decision and the seeds it used). The verdicts above are the
    fixed-n analysis of the same rows; the design's decision is this table's."""
    out = []
    for s in studies:
        table = path_table(s)
        if table is None:
            continue
        design = design_of(s)
        out.append((f"Sequential design of {s.name}: each comparison's path (interims of {design['interim']} up to "
                    f"{design['max']} seeds)", "", table))
        out.append(("", "", "The design's decision is this table's: O'Brien-Fleming-type boundaries (Lan-DeMets "
                    "spending), Holm's recycling of alpha across each family; the verdicts above are the fixed-n "
                    "analysis of the same rows, labelled as such."))
    return out
