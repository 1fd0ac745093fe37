"""The group-sequential design (analysis.sequential) checked by simulation: its family-wise type-I
error under the null, and its power and expected seeds against a fixed-n design of the same maximum.

    python benchmarks/sequential.py [--sims 10000] [--family 12] [--interim 5] [--max 40]

Each simulated sweep is one family of comparisons, each a treatment against its own baseline (the
claims' cells), seeds arriving in interims; endpoints: collapse (0/1, a rate of 0.3 in both arms
under the null) and quality (normal). Under the alternative one comparison in four carries the
effect (a rate 0.5 -> 0.1, or a shift of one standard deviation).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from analysis.sequential import decide, fractions_of, rank_z, rate_z
from analysis.stats import fisher_p, holm


def draw(rng, kind: str, n: int, effect: bool) -> tuple[np.ndarray, np.ndarray]:
    if kind == "collapse":
        return (rng.random(n) < (0.1 if effect else 0.3 if not effect else 0.5)).astype(float), \
               (rng.random(n) < (0.5 if effect else 0.3)).astype(float)
    return rng.standard_normal(n) - (1.0 if effect else 0.0), rng.standard_normal(n)


def one_sweep(rng, kind, family, interim, maximum, alternative, futility):
    """(rejected names, seeds used per arm pair, the fixed-n rejections) of one simulated sweep."""
    fractions = fractions_of(interim, maximum)
    z = rate_z if kind == "collapse" else rank_z
    data = {f"c{i}": draw(rng, kind, maximum, alternative and i % 4 == 0) for i in range(family)}
    paths, sizes = {}, [round(f * maximum) for f in fractions]
    for name, (t, b) in data.items():
        paths[name] = [z(t[:n], b[:n]) for n in sizes]
    # replay: a comparison collects the next interim only while it is open
    decided = {}
    for k in range(1, len(sizes) + 1):
        decided = decide({n: p[:k] if n not in decided or decided[n].decision == "open" else p[:len(decided[n].z)]
                          for n, p in paths.items()}, fractions, 0.05, futility)
    used = sum(sizes[len(p.z) - 1] for p in decided.values())
    if kind == "collapse":
        fixed = holm([fisher_p(int(t.sum()), maximum, int(b.sum()), maximum) for t, b in data.values()])
    else:
        # 40 vs 40 continuous values: the normal approximation is the exact test to 3 digits here, and 100x faster
        fixed = holm([stats.mannwhitneyu(t, b, method="asymptotic").pvalue for t, b in data.values()])
    return ({n for n, p in decided.items() if p.decision == "rejected"}, used,
            {n for n, p in zip(data, fixed, strict=True) if p < 0.05})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=10_000)
    ap.add_argument("--family", type=int, default=12)
    ap.add_argument("--interim", type=int, default=5)
    ap.add_argument("--max", type=int, default=40)
    ap.add_argument("--futility", type=float, default=None)
    ap.add_argument("--kind", choices=["collapse", "quality"], action="append", help="default: both")
    ap.add_argument("--hypotheses", choices=["null", "alternative"], action="append", help="default: both")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(2026)
    print(f"futility: {args.futility or 'none'}, interims of {args.interim} up to {args.max}, family of {args.family}")
    print("| endpoint | hypotheses | sims | family-wise error (sequential) | MC s.e. | family-wise error (fixed n) | "
          "power per true effect (seq / fixed) | seeds used / fixed | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in args.kind or ("collapse", "quality"):
        for alternative in [h == "alternative" for h in args.hypotheses or ("null", "alternative")]:
            start, fw_seq, fw_fix, hits_seq, hits_fix, used = time.perf_counter(), 0, 0, 0, 0, 0
            true = {f"c{i}" for i in range(args.family) if i % 4 == 0} if alternative else set()
            for _ in range(args.sims):
                rej, n, fixed = one_sweep(rng, kind, args.family, args.interim, args.max, alternative, args.futility)
                fw_seq += bool(rej - true)
                fw_fix += bool(fixed - true)
                hits_seq += len(rej & true)
                hits_fix += len(fixed & true)
                used += n
            fw = fw_seq / args.sims
            power = (f"{hits_seq / (args.sims * len(true)):.3f} / {hits_fix / (args.sims * len(true)):.3f}"
                     if true else "-")
            print(f"| {kind} | {'1 in 4 false' if alternative else 'all true (null)'} | {args.sims:,} | {fw:.4f} | "
                  f"{math.sqrt(fw * (1 - fw) / args.sims):.4f} | {fw_fix / args.sims:.4f} | {power} | "
                  f"{used / args.sims / args.family:.1f} / {args.max} | {time.perf_counter() - start:.0f} |")


if __name__ == "__main__":
    main()
