"""The sequential design (analysis.sequential) beside the `adastop` package (Mathieu et al., TMLR
2024; PyPI adastop 0.1.3, MIT) on the same committed rows. Not a dependency of vi-sweeps: unpack
its wheel and put it on PYTHONPATH for this script only (its library needs numpy, pandas and
matplotlib; only its command line needs tabulate):

    python -m zipfile -e adastop-0.1.3-py3-none-any.whl /tmp/adastop_pkg
    PYTHONPATH=$PWD:/tmp/adastop_pkg python benchmarks/adastop_side_by_side.py \
        docs/reproduction/bn_ablation docs/reproduction/stabilisers [--B 10000] [--null-sims 4000]

Two comparisons, each per declared comparison of the studies' claims:

1. Where the designs coincide: one comparison alone (no family), one look at every seed. AdaStop's
   test is then a permutation test of the difference in means: on 0/1 outcomes with equal arms that
   is Fisher's exact test (the hypergeometric is symmetric), on pooled mid-ranks the exact
   Mann-Whitney test; ours is Fisher's test (rates) or the Mann-Whitney z (ranks) against 1.96.
   AdaStop 0.1.3 compares |mean difference| with a quantile of the *signed* permutation
   distribution (compare_agents.py, the k == 0 branch and max_mean_diffs), so its nominal alpha is
   a one-sided level: at alpha it runs at about 2 alpha two-sided. Both settings are shown.
2. The two designs as shipped, rate endpoints (means of 0/1 outcomes are what AdaStop compares):
   seeds in interims of 5 up to the study's seeds, every claim one family. AdaStop: linear alpha
   spending (alpha k / K), a step-down max over the family's permutation statistics; ours:
   O'Brien-Fleming-type spending, Holm's recycling. Decisions and seeds used side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
from adastop import MultipleAgentsComparator
from scipy import stats

from analysis import claims, interims, sequential
from analysis.load import load_results
from analysis.verdicts import Study
from vi_contract.columns import config
from vi_contract.endpoints import ENDPOINTS, RANK, RATE


def load(folder: str) -> tuple[Study, int]:
    res = load_results([folder], warn=False)
    own = res.sources[0]["contract"]
    study = Study(own["study"], res.trials, res.metrics, {**res.contract, "claims": own["claims"]})
    maximum = int(study.done.groupby([c for c in study.done.columns if c.startswith("config/") and c not in
                                      (config("seed"), config("pack_index"), config("pack_size"))],
                                     dropna=False).size().min())
    return study, maximum


def outcomes(arm, endpoint: str, study: Study, maximum: int) -> np.ndarray:
    """The arm's per-seed values in seed order, its first `maximum` seeds."""
    ep = ENDPOINTS[endpoint]
    arm = arm.sort_values(config("seed")).head(maximum)
    if ep.kind == RATE:
        return arm[claims.RATE_COLUMNS[endpoint]].astype(float).to_numpy()
    return claims._values(arm, ep, study)


def adastop_decisions(values: dict[str, np.ndarray], comparisons: list[tuple[int, int]], n: int, K: int,
                      alpha: float, B: int) -> tuple[dict[tuple[int, int], str], dict[tuple[int, int], int]]:
    """AdaStop's decision of each comparison ("differ" or "not decided") and the seeds it used."""
    comp = MultipleAgentsComparator(n=n, K=K, B=B, comparisons=np.array(comparisons), alpha=alpha, seed=0)
    decided, used = {}, {}
    for k in range(K):
        with contextlib.redirect_stdout(io.StringIO()):
            comp.partial_compare({a: v[: (k + 1) * n] for a, v in values.items()}, verbose=False)
        for c in comparisons:
            d = comp.decisions[str(np.array(c))]
            if c not in decided and d in ("larger", "smaller"):
                decided[c], used[c] = "differ", (k + 1) * n
        if comp.is_finished:
            break
    return {c: decided.get(c, "not decided") for c in comparisons}, {c: used.get(c, K * n) for c in comparisons}


def one_look(study: Study, maximum: int, B: int) -> list[tuple]:
    """(claim, comparison, kind, ours, AdaStop at 0.05, AdaStop at 0.025, Fisher / Mann-Whitney p)."""
    rows = []
    for d in claims.declared_claims([study]):
        endpoint = d.claim["primary"]["endpoint"]
        kind = ENDPOINTS[endpoint].kind
        if kind not in (RATE, RANK) or ENDPOINTS[endpoint].premise:
            continue
        for _, _, comparison, t, b in claims.arms_of(d):
            x, y = outcomes(t, endpoint, study, maximum), outcomes(b, endpoint, study, maximum)
            if len(x) < maximum or len(y) < maximum:
                continue
            if kind == RATE:
                z = sequential.rate_z(x, y)
                p = stats.fisher_exact([[int(x.sum()), len(x) - int(x.sum())], [int(y.sum()), len(y) - int(y.sum())]])[1]
                fed = (x, y)
            else:
                z = sequential.rank_z(x, y)
                p = 2 * stats.norm.sf(abs(z))
                ranks = stats.rankdata(np.r_[x, y])
                fed = (ranks[: len(x)], ranks[len(x):])
            ours = "differ" if abs(z) >= sequential.boundaries(0.05, (1.0,))[0] else "not decided"
            ada = [adastop_decisions({"t": fed[0], "b": fed[1]}, [(0, 1)], maximum, 1, a, B)[0][(0, 1)]
                   for a in (0.05, 0.025)]
            rows.append((d.claim["id"], comparison, kind, ours, *ada, float(p)))
    return rows


def shipped(study: Study, maximum: int, interim: int, B: int) -> list[tuple]:
    """(claim, comparison, ours, seeds, AdaStop, seeds) per rate comparison, both designs as shipped."""
    maximum -= maximum % interim
    alpha = {d.family: d.claim.get("alpha", 0.05) for d in claims.declared_claims([study])}
    ours = {c.name: c for c in interims.paths(study, interim, maximum, alpha)}
    rows = []
    for d in claims.declared_claims([study]):
        endpoint = d.claim["primary"]["endpoint"]
        if ENDPOINTS[endpoint].kind != RATE:
            continue
        values, comparisons, names = {}, [], []
        for dataset, extra, comparison, t, b in claims.arms_of(d):
            x, y = outcomes(t, endpoint, study, maximum), outcomes(b, endpoint, study, maximum)
            if len(x) < maximum or len(y) < maximum:
                continue
            cell = ", ".join(f"{k}={v}" for k, v in extra.items())
            name = f"{d.claim['id']}: {dataset}{', ' + cell if cell else ''}, {comparison}"
            i, j = len(values), len(values) + 1
            values[f"{name} t"], values[f"{name} b"] = x, y
            comparisons.append((i, j))
            names.append(name)
        if not comparisons:
            continue
        ada, used = adastop_decisions(values, comparisons, interim, maximum // interim, alpha[d.family], B)
        for name, c in zip(names, comparisons, strict=True):
            p = ours[name].path
            mine = "differ" if p.decision == "rejected" else "not decided"
            rows.append((d.claim["id"], name, mine, (p.at or len(p.z)) * interim, ada[c], used[c]))
    return rows


def null_rate(sims: int, n: int = 10, B: int = 1000) -> float:
    """AdaStop's rejection rate at nominal alpha 0.05, one comparison, one look, n normal values a
    arm with no difference: about 0.10 if its level is one-sided (see the module's docstring)."""
    rng = np.random.default_rng(0)
    rejected = 0
    for s in range(sims):
        comp = MultipleAgentsComparator(n=n, K=1, B=B, alpha=0.05, seed=s)
        comp.partial_compare({"a": rng.standard_normal(n), "b": rng.standard_normal(n)}, verbose=False)
        rejected += comp.decisions[str(comp.comparisons[0])] != "equal"
    return rejected / sims


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--interim", type=int, default=5)
    ap.add_argument("--B", type=int, default=5000, help="AdaStop's random permutations (its default is 10,000)")
    ap.add_argument("--null-sims", type=int, default=0, help="also AdaStop's type-I error by simulation (4,000: ~10 min)")
    args = ap.parse_args(argv)
    if args.null_sims:
        rate = null_rate(args.null_sims)
        print(f"AdaStop, nominal alpha 0.05, one comparison, one look, 10 a arm, no difference: rejects "
              f"{rate:.4f} (MC s.e. {np.sqrt(rate * (1 - rate) / args.null_sims):.4f}) of {args.null_sims:,}\n")
    for folder in args.folders:
        start = time.perf_counter()
        study, maximum = load(folder)
        rows = one_look(study, maximum, args.B)
        print(f"### {study.name}: one comparison, one look at {maximum} seeds a arm\n")
        print("| claim | endpoint kind | comparisons | ours differ | AdaStop (alpha 0.05) differ | same as ours | "
              "AdaStop (alpha 0.025) differ | same as ours |")
        print("|---|---|---|---|---|---|---|---|")
        for claim in dict.fromkeys(r[0] for r in rows):
            mine = [r for r in rows if r[0] == claim]
            print(f"| {claim} | {mine[0][2]} | {len(mine)} | {sum(r[3] == 'differ' for r in mine)} | "
                  f"{sum(r[4] == 'differ' for r in mine)} | {sum(r[3] == r[4] for r in mine)} | "
                  f"{sum(r[5] == 'differ' for r in mine)} | {sum(r[3] == r[5] for r in mine)} |")
        for r in rows:
            if r[3] != r[5]:
                print(f"\ndisagreement at alpha 0.025: {r[0]} {r[1]}: ours {r[3]}, AdaStop {r[5]}, p = {r[6]:.4f}")
        rows = shipped(study, maximum, args.interim, args.B)
        print(f"\n### {study.name}: both designs as shipped, interims of {args.interim} up to "
              f"{maximum - maximum % args.interim}, rate endpoints\n")
        print("| claim | comparisons | ours differ | seeds used (mean) | AdaStop differ | seeds used (mean) | "
              "same decision |")
        print("|---|---|---|---|---|---|---|")
        for claim in dict.fromkeys(r[0] for r in rows):
            mine = [r for r in rows if r[0] == claim]
            print(f"| {claim} | {len(mine)} | {sum(r[2] == 'differ' for r in mine)} | "
                  f"{np.mean([r[3] for r in mine]):.1f} | {sum(r[4] == 'differ' for r in mine)} | "
                  f"{np.mean([r[5] for r in mine]):.1f} | {sum(r[2] == r[4] for r in mine)} of {len(mine)} |")
        print(f"\n({time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
