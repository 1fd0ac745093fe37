"""Deciding the claims a study declared (`claims:` in its file, recorded in contract.json when its
first trial started): each claim's cells (a data set and the axes it does not hold fixed, a
treatment against its baseline) tested on the primary endpoint, Holm over the claim's family
across every folder given, each verdict worded from its numbers (analysis.wording). Secondary
endpoints are shown beside it with their own tests; they decide nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import noninferiority, ranks, tables, wording
from analysis.load import load_results
from analysis.stats import detectable_difference, fisher_p, fisher_power, holm, newcombe_difference
from analysis.verdicts import Study, overall
from vi_contract import schema
from vi_contract.columns import config, suggested
from vi_contract.endpoints import ENDPOINTS, NO_WORSE, RANK, RATE, Endpoint
from vi_contract.read import ResultsError

RATE_COLUMNS = {"mode_loss": "_lit", "collapse_end": "_end", "collapse_late": "_late"}


@dataclass(frozen=True)
class Declared:
    """One claim as its study recorded it, with where it was recorded."""
    study: Study
    claim: dict
    record: dict

    @property
    def family(self) -> str:
        return self.claim.get("family") or self.claim["id"]


def declared_claims(studies: list[Study]) -> list[Declared]:
    return [Declared(s, c, s.contract["claims"]) for s in studies for c in (s.contract.get("claims") or {}).get("claims", [])]


def _values(arm: pd.DataFrame, ep: Endpoint, study: Study) -> np.ndarray:
    """The arm's per-seed values of a rank endpoint, a diverged seed ranked worst."""
    if ep.name == "steps_to_converge":
        return arm["steps_to_converge"].astype(float).fillna(math.inf).to_numpy()
    if ep.name == "collapsed_share":
        return arm["collapsed_share"].astype(float).dropna().to_numpy()
    metric = ep.metric or tables.quality_metric(arm, study.contract.get("keys", {}))
    if metric is None or metric not in arm:
        return np.array([])
    v = ranks.worst_ranked(arm[metric], arm["diverged"].astype(bool), ep.better == "lower")
    return v[~np.isnan(v)]


def _good(arm: pd.DataFrame) -> pd.DataFrame:
    return arm[np.isfinite(arm["good_at"].astype(float).fillna(np.inf))]


def _rate(t: pd.DataFrame, b: pd.DataFrame, ep: Endpoint) -> dict:
    col = RATE_COLUMNS[ep.name]
    if col not in t or col not in b:
        return {"value": "not measured (no values)", "p": math.nan}
    kt, nt, kb, nb = int(t[col].sum()), len(t), int(b[col].sum()), len(b)
    d, lo, hi = newcombe_difference(kt, nt, kb, nb)
    return {"treatment": f"{kt}/{nt}", "baseline": f"{kb}/{nb}", "effect": f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]",
            "p": fisher_p(kt, nt, kb, nb), "test": "Fisher exact", "diff": d, "lo": lo, "hi": hi, "nt": nt, "nb": nb,
            "rate_b": kb / nb, "fmt": "{:.2f}", "_interval": lambda level: newcombe_difference(
                kt, nt, kb, nb, float(sps.norm.ppf(1 - (1 - level) / 2)))[1:], "_counts": (kt, nt, kb, nb)}



def number(v: float, signed: bool = False) -> str:
    """3 significant digits, never in exponent form from 1,000 on (steps read 2,250, not 2.25e+03)."""
    if abs(v) >= 1000:
        return f"{v:+,.0f}" if signed else f"{v:,.0f}"
    return f"{v:+.3g}" if signed else f"{v:.3g}"

def _rank(t: pd.DataFrame, b: pd.DataFrame, ep: Endpoint, study: Study) -> dict:
    x, y = _values(t, ep, study), _values(b, ep, study)
    if not len(x) or not len(y):
        return {"value": "not measured (no values)", "p": math.nan}
    test = ranks.mann_whitney(x, y)
    improvement = f"P(higher) {ranks.prob_improvement(x, y, False):.2f}"
    if np.isinf(x).any() or np.isinf(y).any():  # a time never reached or a diverged seed: no shift on a scale
        shift, lo, hi, effect = math.nan, math.nan, math.nan, improvement
    else:
        shift, lo, hi = ranks.hodges_lehmann(x, y)
        effect = f"{number(shift, True)} [{number(lo, True)}, {number(hi, True)}], {improvement}"
        interval = lambda level: ranks.hodges_lehmann(x, y, level)[1:]  # noqa: E731
    fin = lambda v: number(np.median(v)) if np.isfinite(np.median(v)) else "not reached"  # noqa: E731
    return {"treatment": f"median {fin(x)} (n={len(x)})", "baseline": f"median {fin(y)} (n={len(y)})",
            "effect": effect,
            "p": test["p"], "test": f"Mann-Whitney ({test['method']})", "diff": ranks.prob_improvement(x, y, False) - 0.5,
            "lo": lo, "hi": hi, "nt": len(x), "nb": len(y), "fmt": "{:.3g}", "_xy": (x, y),
            **({"_interval": interval} if math.isfinite(shift) else {})}


def _time(t: pd.DataFrame, b: pd.DataFrame, ep: Endpoint) -> dict:
    """Steps from first good to the first collapse after it, censored at the budget (log-rank)."""
    def durations(arm):
        budget = arm[config("iterations")].astype(float).to_numpy()
        good, hit = arm["good_at"].astype(float).to_numpy(), arm["collapse_at"].astype(float).to_numpy()
        event = np.isfinite(hit)
        return np.where(event, hit, budget) - good, event

    (dx, ex), (dy, ey) = durations(t), durations(b)
    if len(dx) < 2 or len(dy) < 2:
        return {"value": "no test (fewer than two seeds got good)", "p": math.nan}
    data = [sps.CensoredData(uncensored=d[e], right=d[~e]) for d, e in ((dx, ex), (dy, ey))]
    if not ex.any() and not ey.any():
        p, z = 1.0, 0.0
    else:
        res = sps.logrank(*data)
        p, z = float(res.pvalue), float(res.statistic)
    return {"treatment": f"{int(ex.sum())}/{len(dx)} collapsed after good", "baseline": f"{int(ey.sum())}/{len(dy)} "
            "collapsed after good", "effect": f"log-rank z {z:+.2f}", "p": p, "test": "log-rank",
            "diff": -z, "lo": math.nan, "hi": math.nan, "nt": len(dx), "nb": len(dy)}  # more events than expected: earlier


def measure(ep_name: str, t: pd.DataFrame, b: pd.DataFrame, study: Study, margin: float | None = None) -> dict:
    """The endpoint's test of the treatment against the baseline: two-sided, or with a `margin`
    (expect no_worse) the one-sided test of a worsening by at least the margin (_no_worse)."""
    ep = ENDPOINTS[ep_name]
    if ep.premise:
        t, b = _good(t), _good(b)
    if ep.kind == RATE:
        out = _rate(t, b, ep)
    elif ep.kind == RANK:
        out = _rank(t, b, ep, study)
    else:
        out = _time(t, b, ep)
    return out if margin is None or math.isnan(out["p"]) else noninferiority.measure(out, ep, margin)


def arms_of(d: Declared):
    """(data set, the free axes' values, the comparison's name, treatment rows, baseline rows) per
    cell of a declared claim with both arms finished somewhere."""
    s, c = d.study, d.claim
    axis = s.lay.compare
    baseline = c.get("baseline") if c.get("baseline") is not None else s.contract["compare"]["baseline"]
    values = [v for v in s.axes[axis].drop_duplicates() if tables._label(v) != tables._label(baseline)]
    treatments = c.get("treatment") or sorted(values, key=lambda v: (isinstance(v, str), v))
    free = [a for a in s.lay.regimes if a not in c.get("within", {}) and a != axis]
    regimes = [{}] if not free else [dict(zip(free, r, strict=True))
                                     for r in s.axes[free].drop_duplicates().itertuples(index=False)]
    for dataset in sorted(s.done["dataset"].unique()):
        for extra in regimes:
            where = {**c.get("within", {}), **extra}
            b = s.arm(dataset, where, baseline)
            for value in treatments:
                t = s.arm(dataset, where, value)
                if len(t) and len(b):
                    yield dataset, extra, f"{axis} {tables._label(value)} vs {tables._label(baseline)}", t, b


def cells_of(d: Declared) -> list[dict]:
    """One row per (data set, the axes the claim does not hold, treatment) of its study."""
    rows = []
    for dataset, extra, comparison, t, b in arms_of(d):
        row = {"claim": d.claim["id"], "study": d.study.name, "dataset": dataset,
               "cell": ", ".join(f"{k}={v}" for k, v in extra.items()), "comparison": comparison,
               **measure(d.claim["primary"]["endpoint"], t, b, d.study, d.claim["primary"].get("margin"))}
        row["secondary"] = "; ".join(_secondary(e, t, b, d.study) for e in d.claim.get("secondary", []))
        rows.append(row)
    return rows


def _secondary(e: dict, t: pd.DataFrame, b: pd.DataFrame, s: Study) -> str:
    m = measure(e["endpoint"], t, b, s, e.get("margin"))
    if math.isnan(m["p"]):
        return f"{e['endpoint']}: {m.get('value', 'no test')}"
    against = ", one-sided against the margin" if e.get("margin") is not None else ""
    return f"{e['endpoint']}: {m['treatment']} vs {m['baseline']}, {m['effect']}, p = {m['p']:.2g} (unadjusted{against})"


def decide(claims: list[Declared]) -> pd.DataFrame:
    """Every declared claim's cells, Holm over each family, each cell's verdict."""
    rows = [r | {"family": d.family, "alpha": d.claim.get("alpha", 0.05), "expect": d.claim["primary"]["expect"]}
            for d in claims for r in cells_of(d)]
    if not rows:
        return pd.DataFrame()
    cells = pd.DataFrame(rows)
    cells["p_holm"] = np.nan
    for _, idx in cells.groupby("family").groups.items():
        cells.loc[idx, "p_holm"] = holm(cells.loc[idx, "p"])
    size = cells.groupby("family")["p"].transform(lambda p: max(int(p.notna().sum()), 1))
    verdicts, detect = [], []
    for i, c in cells.iterrows():
        decided = bool(c["p_holm"] < c["alpha"])
        if c["expect"] == NO_WORSE:
            verdicts.append(noninferiority.verdict(c, decided, size[i]))
            detect.append(noninferiority.detectable(c, c["alpha"] / size[i]))
            continue
        favourable = (c["diff"] < 0) == (c["expect"] == "lower") if not pd.isna(c.get("diff")) else False
        # what the data exclude, from the interval at the family's level (Bonferroni): never an exclusion of 0 where
        # the Holm-corrected test does not decide, as the unadjusted 95% interval could read
        interval = c.get("_interval")
        lo, hi = interval(1 - c["alpha"] / size[i]) if callable(interval) else (math.nan, math.nan)
        word = wording.verdict(decided, favourable, lo, hi, c.get("fmt") if isinstance(c.get("fmt"), str) else "{:.2f}",
                               level=f"{1 - c['alpha'] / size[i]:.1%} simultaneous over {size[i]}" if size[i] > 1 else None)
        if not decided and _premise_absent(c, c["alpha"] / size[i]):
            word = word.replace(wording.NOT_DECIDED, f"{wording.NOT_DECIDED}: {PREMISE_ABSENT} (baseline {c['baseline']}, "
                                "so not even the largest change this n could detect)", 1)
        verdicts.append(word)
        detect.append(_detectable(c, c["alpha"] / size[i]))
    return cells.assign(verdict=verdicts, detectable=detect).drop(columns=HIDDEN, errors="ignore")


HIDDEN = ("_interval", "_counts", "_xy", "_bound", "margin", "worse_up")  # what the verdict is computed from


PREMISE_ABSENT = "premise absent"


def _premise_absent(c: pd.Series, alpha: float) -> bool:
    """A rate claim whose baseline is so near the bound the claim moves away from that even the
    largest move (to 0, or to 1) is not found with 80% power: the baseline barely shows what the
    claim would lower (a baseline that loses modes in 1 of 20 seeds)."""
    if pd.isna(c.get("rate_b", math.nan)):
        return False
    bound = 0.0 if c["expect"] == "lower" else 1.0
    return fisher_power(int(c["nt"]), bound, int(c["nb"]), float(c["rate_b"]), alpha) < 0.8


def _detectable(c: pd.Series, alpha: float) -> str:
    if pd.isna(c.get("nt")) or pd.isna(c.get("nb")):
        return ""
    if not pd.isna(c.get("rate_b", math.nan)):
        d = detectable_difference(int(c["nt"]), int(c["nb"]), float(c["rate_b"]), alpha)
        return f"no rate change from {c['rate_b']:.2f}" if math.isnan(d) else f"a rate change of {d:.2f}"
    shift = ranks.detectable_shift(int(c["nt"]), int(c["nb"]), alpha)
    return "" if math.isnan(shift) else f"P(higher) beyond 0.5 +- {shift:.2f}"


def verdicts(cells: pd.DataFrame, claims: list[Declared]) -> list[tuple[list[Declared], str, pd.DataFrame]]:
    """(the claim as each study declared it, its overall verdict, its cells) per claim id and
    family, in declaration order: a claim declared alike in several studies is one verdict."""
    groups: dict[tuple[str, str], list[Declared]] = {}
    for d in claims:
        groups.setdefault((d.family, d.claim["id"]), []).append(d)
    out = []
    for (family, cid), ds in groups.items():
        mine = cells[(cells["claim"] == cid) & (cells["family"] == family)] if len(cells) else cells
        verdict = (overall(mine.rename(columns={"cell": "where", "verdict": "cell"})) if len(mine) else
                   "not measured yet (no finished trial of both arms in a cell)")
        absent = int(mine["verdict"].str.contains(PREMISE_ABSENT).sum()) if len(mine) else 0
        if absent == len(mine) and absent:
            verdict = f"not decided: {PREMISE_ABSENT} in every cell ({absent}): the baseline barely shows what the claim would change"
        elif absent:
            verdict += f"; {PREMISE_ABSENT} in {absent} of {len(mine)} cells"
        out.append((ds, verdict, mine))
    return out


SHOWN = ("study", "dataset", "cell", "comparison", "treatment", "baseline", "effect", "test", "p", "p_holm", "verdict",
         "detectable", "secondary")


def markdown(claims: list[Declared], cells: pd.DataFrame) -> str:
    """The declared claims' section: per claim its declaration (endpoint, family, alpha, when it
    was recorded, each amendment with its date), its verdict and its cells."""
    if not claims:
        return ""
    out = ["## Declared claims\n\n", "Declared in the study file and recorded in the results folder when its first trial "
           "started; decided on the primary endpoint after Holm's correction within each family. " + _words(claims) + "\n"]
    for ds, verdict, mine in verdicts(cells, claims):
        d = ds[0]
        c, ep = d.claim, ENDPOINTS[d.claim["primary"]["endpoint"]]
        where = ", ".join(f"`{tables.md_escape(x.study.name)}` ({x.record.get('declared', 'unknown')})" for x in ds)
        out.append(f"\n### {tables.md_escape(c['id'])}: {tables.md_escape(c['statement'])}\n\n**Verdict: {verdict}.** "
                   f"Primary endpoint `{ep.name}` ({ep.text}), expected {_expected(c['primary'])} for the treatment; "
                   f"family `{tables.md_escape(d.family)}`, alpha {c.get('alpha', 0.05)}; recorded in {where}.\n")
        for note in dict.fromkeys(x.record.get("note") for x in ds if x.record.get("note")):
            out.append(f"\n_{tables.md_escape(note)}_\n")
        for a in [a for x in ds for a in x.record.get("amendments", []) if a.get("claim") == c["id"]]:
            out.append(f"\n_Amended {a['date']}: {tables.md_escape(a['reason'])}_\n")
        if len(mine):
            table = mine[[col for col in SHOWN if col in mine]]
            table = table.loc[:, [col for col in table.columns if not (table[col].astype(str).isin(["", "nan"])).all()]]
            out.append("\n" + _table(table))
    return "".join(out)


def _expected(primary: dict) -> str:
    if primary["expect"] == NO_WORSE:
        return f"no worse than the baseline by more than {primary['margin']:g} (one-sided, at the family's level)"
    return primary["expect"]


VERDICT_WORDS = ("A cell **supports** or **contradicts** its claim only where the corrected test decides; otherwise it "
                 "is **not decided**, with what the 95% interval excludes; `detectable` is the smallest effect the "
                 "cell's n finds with 80% power at its family's first Holm step.")


def _words(claims: list[Declared]) -> str:
    """How the verdicts are worded, with the non-inferiority rule where a claim needs it."""
    return VERDICT_WORDS + (noninferiority.WORDS if any(d.claim["primary"]["expect"] == NO_WORSE for d in claims) else "")


def _table(frame: pd.DataFrame) -> str:
    head = ("| " + " | ".join(tables.md_escape(c).replace("|", "\\|") for c in frame.columns) + " |\n|"
            + "---|" * len(frame.columns) + "\n")
    fmt = lambda v: f"{v:.2g}" if isinstance(v, float) else tables.md_escape(v).replace("|", "\\|")  # noqa: E731
    return head + "".join("| " + " | ".join(fmt(v) for v in row) + " |\n" for row in frame.itertuples(index=False))


def decide_folders(paths: list[str]) -> tuple[str, list[str]]:
    """(the claims section, one line per claim) for the declared claims of results folders; a
    folder that declares none adds nothing, and none declaring any is an error."""
    studies = []
    for path in paths:
        res = load_results([path], warn=False)
        if len(res.trials) and suggested(res.trials).all():
            raise ResultsError(f"{path}: a search's trials (a protocol's tuning or `vi-sweep tune`'s) decide no claim; "
                               "a protocol's claims are decided on its test trials, in the folder that holds its tune/")
        own = res.sources[0]["contract"]  # the folder's own contract: its claims and its name
        study = tested_study(own.get("study", path), res, res.trials, claims=own.get("claims"))
        if study is not None and (own.get("claims") or {}).get("claims"):
            studies.append(study)
    declared = declared_claims(studies)
    if not declared:
        raise ResultsError(f"{', '.join(paths)}: no declared claims with a finished trial (declare them under `claims:` "
                           "in the study file; they are recorded when its first trial starts)")
    cells = decide(declared)
    lines = [f"{ds[0].claim['id']} ({', '.join(d.study.name for d in ds)}): {verdict}" for ds, verdict, _ in verdicts(cells, declared)]
    return markdown(declared, cells), lines


def report_studies(res) -> list[Study]:
    """The folders of a report that declare claims and have a finished trial, as Studies."""
    studies, seen = [], {}
    for source in res.sources:
        own = source.get("contract", {})
        if not (own.get("claims") or {}).get("claims"):
            continue
        if own.get("study") in seen:  # folders of one study are one study (before: its claims decided once per folder)
            if seen[own.get("study")]["claims"] != own["claims"]["claims"]:
                raise ResultsError(f"{source['location']} and {seen[own.get('study')]['location']} record different "
                                   f"claims for study {own.get('study')!r}: report each on its own")
            continue
        seen[own.get("study")] = {"claims": own["claims"]["claims"], "location": source.get("location")}
        trials = res.trials[res.trials["study"] == own.get("study")] if "study" in res.trials else res.trials
        study = tested_study(own.get("study", "study"), res, trials, claims=own["claims"], interims=own.get("interims"))
        if study is not None:
            studies.append(study)
    return studies


def tested_study(name: str, res, trials: pd.DataFrame, **contract) -> Study | None:
    """A study's rows as its claims are decided on, with their metrics: never a search's
    (`suggested`: a protocol's tuning), whose settings the scores a verdict would judge chose;
    None without a finished trial among them."""
    trials = trials[~suggested(trials)]
    if not trials["status"].isin(schema.FINISHED).any():
        return None
    return Study(name, trials, res.metrics[res.metrics["trial_id"].isin(trials["trial_id"])], {**res.contract, **contract})


def report_sections(studies: list[Study]) -> list[tuple[str, str, object]]:
    """The report's first section after the summary: each declared claim's verdict in one
    sentence, and its cells (nothing when no folder declares claims or none has finished)."""
    declared = declared_claims(studies)
    if not declared:
        return []
    cells = decide(declared)
    answers = [f"**{ds[0].claim['id']}** ({ds[0].claim['statement']}): {verdict}."  # the renderer escapes
               for ds, verdict, _ in verdicts(cells, declared)]
    shown = cells[[c for c in ("claim", "dataset", "cell", "comparison", "treatment", "baseline", "effect", "p_holm",
                               "verdict") if c in cells]] if len(cells) else cells
    fixed = " (fixed-n analysis)" if any(s.contract.get("interims") for s in studies) else ""
    return [("Declared claims: the answer", "", answers + [_words(declared)]), (f"Declared claims: every cell{fixed}", "", shown)]


def is_folder_of_exports(path: str) -> bool:
    """A local folder that is no results folder itself but holds exported ones (docs/reproduction).
    A protocol still tuning is a results folder: its searches (RESULTS/tune) are no exports, and
    their tuning trials were once decided here as if they were its test (CLAIMS.md written into it)."""
    root = Path(path)
    own = (schema.TRIALS_FILE, schema.CONTRACT_FILE, schema.STUDY_FILE, f"{schema.TUNE_DIR}/{schema.STUDY_FILE}")
    return (root.is_dir() and not any((root / name).exists() for name in own)
            and any((p / schema.TRIALS_FILE).exists() for p in root.iterdir() if p.is_dir()))
