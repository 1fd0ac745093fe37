"""Replay committed studies as if their seeds had arrived in interims (seeds in their fixed order,
`interim` at a time up to the study's seeds): per claim, the seeds each comparison used and its
sequential decision against the fixed-n verdict of the same rows (analysis.claims).

    python benchmarks/replay_sequential.py docs/reproduction/bn_ablation docs/reproduction/stabilisers [--interim 5]
"""

from __future__ import annotations

import argparse
from collections import Counter

from analysis import claims, interims
from analysis.load import load_results
from analysis.verdicts import Study
from vi_contract.columns import config


def replay(folder: str, interim: int) -> list[str]:
    res = load_results([folder], warn=False)
    own = res.sources[0]["contract"]
    study = Study(own["study"], res.trials, res.metrics, {**res.contract, "claims": own["claims"]})
    maximum = int(study.done.groupby([c for c in study.done.columns if c.startswith("config/") and c not in
                                      (config("seed"), config("pack_index"), config("pack_size"))],
                                     dropna=False).size().min())
    maximum -= maximum % interim
    declared = claims.declared_claims([study])
    alpha = {d.family: d.claim.get("alpha", 0.05) for d in declared}
    fixed = claims.decide(declared)
    fixed_words = {f"{r.claim}: {r.dataset}{', ' + r.cell if r.cell else ''}, {r.comparison}": r.verdict
                   for r in fixed.itertuples()}
    rows = []
    for c in interims.paths(study, interim, maximum, alpha):
        seq = ("supports" if c.favourable else "contradicts") if c.path.decision == "rejected" else c.path.decision
        fix = fixed_words.get(c.name, "")
        fix = fix if fix in ("supports", "contradicts") else "not decided"
        rows.append((c.claim, seq, fix, (c.path.at or len(c.path.z)) * interim))  # seeds up to its decision
    out = [f"### {study.name}: seeds in interims of {interim} up to {maximum} (replayed in seed order)", "",
           "| claim | comparisons | seeds used (mean) / fixed | sequential decided | fixed-n decided | same decision |",
           "|---|---|---|---|---|---|"]
    for claim in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == claim]
        seq = Counter(r[1] for r in mine)
        fix = Counter(r[2] for r in mine)
        same = sum((r[1] if r[1] in ("supports", "contradicts") else "not decided") == r[2] for r in mine)
        out.append(f"| {claim} | {len(mine)} | {sum(r[3] for r in mine) / len(mine):.1f} / {maximum} | "
                   f"{seq['supports']} support, {seq['contradicts']} contradict | {fix['supports']} support, "
                   f"{fix['contradicts']} contradict | {same} of {len(mine)} |")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--interim", type=int, default=5)
    args = ap.parse_args(argv)
    for folder in args.folders:
        print("\n".join(replay(folder, args.interim)) + "\n")


if __name__ == "__main__":
    main()
