"""The paper's claims, decided from committed results by one stated rule.

Each Claim names the study it is measured in, the regime it is about, what is measured and
which direction the paper predicts. Every comparison behind a claim (a data set, a treatment
against its baseline) is a cell; a cell is decided by a two-sided test after Holm's correction
over the claim's cells, and the claim's verdict follows from its cells (VERDICT_RULE). The
numbers come from the same tables as the report (analysis.tables, analysis.convergence), so a
verdict can be checked against the report it cites.

`python -m analysis claims FOLDER` reads FOLDER/STUDY/ (each an exported results folder) and
writes FOLDER/CLAIMS.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import convergence, tables
from analysis.evidence import calibration, dose_response, stabiliser_grid
from analysis.load import load_results
from analysis.stats import fisher_p, holm, mann_whitney_p, median_difference, newcombe_difference, wilson
from vi_contract import schema
from vi_contract.columns import config, settings
from vi_contract.read import ResultsError

ALPHA = 0.05
MARGIN = 0.2  # "does as well": a collapse rate at most this much higher, by the 95% interval

VERDICT_RULE = (
    f"Each cell is one comparison (a data set, a treatment against its baseline), decided by a two-sided test at "
    f"{ALPHA:.0%} after Holm's correction over the claim's cells: Fisher's exact test for collapse rates, the "
    "Mann-Whitney U test (exact at small n) for steps to converge (never = slower than every seed that converged) "
    "and for the final quality metric. A cell **supports** the claim when the difference is significant in the "
    "predicted direction, **contradicts** it when it is significant in the other, and is **inconclusive** "
    f"otherwise. For \"does as well\" (C3), a cell supports when the 95% Newcombe interval of the collapse-rate "
    f"difference lies below +{MARGIN} and the quality difference is not significantly worse, contradicts when either "
    "is significantly worse, and is inconclusive otherwise (the margin's interval is the unadjusted 95% one). The "
    "claim is **supported** when every cell supports it, **contradicted** when every cell contradicts it, **mixed** "
    "when cells go both ways, **partly supported** or **partly contradicted** (as counted) when the others are "
    "inconclusive, and **inconclusive at this n** when no cell is decided. A cell of a claim about runs that got "
    "good first (C1-long) whose baseline never met the convergence rule is **premise not reached** and counts as "
    "undecided; the claim reads **premise not reached at this budget** when every cell is.")


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    study: str
    where: dict  # the regime: config or label values
    measure: str  # collapse | convergence | quality | as_well
    expect: str = "lower"  # for collapse: lower; convergence: faster; quality: better
    rule: str = "late"  # the collapse definition of a collapse claim
    baselines: tuple = ()  # compare against these (default: the study's compare baseline)
    treatment: object = None  # the treatment value (default: every value but the baselines)
    also: tuple = ()  # (study, where) pairs: the same regime in another study (its own axis names)
    premise: bool = False  # a collapse claim about runs that got good first: a cell whose baseline never
    # met the convergence rule is "premise not reached", not a test of the claim

    def places(self) -> tuple[tuple[str, dict], ...]:
        """Every (study, regime) the claim is measured in, the first its own."""
        return ((self.study, self.where), *self.also)


CLAIMS = (
    Claim("C1", "With BatchNorm and one G phase per iteration, lambda = 0 collapses late in training and lambda > 0 "
          "does not: a lower late-collapse rate for every lambda > 0.", "bn_ablation", {"bn": True, "phases": "1x1"},
          "collapse", also=(("bn_ablation_digits", {"regime": "bn-1x1"}),)),
    Claim("C2a", "Without BatchNorm and with 5 phases, lambda > 0 converges faster (steps until the convergence rule "
          "holds).", "bn_ablation", {"bn": False, "phases": "5x5"}, "convergence", expect="faster",
          also=(("bn_ablation_digits", {"regime": "nobn-5x5"}),)),
    Claim("C2b", "Without BatchNorm and with 5 phases, lambda > 0 ends better (final Frechet distance).", "bn_ablation",
          {"bn": False, "phases": "5x5"}, "quality", expect="better",
          also=(("bn_ablation_digits", {"regime": "nobn-5x5"}),)),
    Claim("C3", "ALI trained with the paper's loss (-E_enc log D - E_gen log D) does as well as with the standard "
          "losses (minimax, non-saturating), with and without BatchNorm.", "ali_losses", {}, "as_well",
          baselines=("minimax", "nonsaturating"), treatment="vi"),
    Claim("C1-long", "At 4x and 10x bn_ablation's budget, with BatchNorm and one G phase, lambda = 0 reaches good "
          "samples and then collapses late, and lambda = 5 does not: a lower late-collapse rate.", "bn_long", {},
          "collapse", premise=True),
    Claim("C4a", "(An extension.) A stabiliser lowers late collapse against no stabiliser, in each regime.",
          "stabilisers", {}, "collapse", baselines=("none",), also=(("stabilisers_digits", {}),)),
    Claim("C4b", "(An extension.) A stabiliser converges faster than no stabiliser, in each regime.", "stabilisers", {},
          "convergence", expect="faster", baselines=("none",), also=(("stabilisers_digits", {}),)),
    Claim("C4c", "(An extension.) A stabiliser ends better (final Frechet distance) than no stabiliser.", "stabilisers",
          {}, "quality", expect="better", baselines=("none",), also=(("stabilisers_digits", {}),)),
    Claim("C4d", "(An extension.) A stabiliser lowers late collapse against the paper's anchor term (lambda 5).",
          "stabilisers", {}, "collapse", baselines=("anchor",), also=(("stabilisers_digits", {}),)),
)


@dataclass
class Study:
    """One exported study: its trials labelled, the per-condition tables and per-seed times."""

    name: str
    trials: pd.DataFrame
    metrics: pd.DataFrame
    contract: dict
    lay: tables.Layout = field(init=False)

    def __post_init__(self):
        self.lay = tables.layout(self.trials, self.contract)
        done = self.trials[self.trials["status"].isin(schema.FINISHED)]
        rules = tables.collapse_rules(done, self.metrics)
        labelled = tables.with_labels(done, self.lay).assign(**{f"_{r}": v.values for r, v in rules.items()})
        rule = convergence.parse_rule(convergence.DEFAULT_RULE, tables.metric_keys(done, self.contract)) \
            if "eval/modes_frac" in done else None
        labelled["steps_to_converge"] = (convergence.steps_to_converge(labelled, self.metrics, rule).values
                                         if rule else np.nan)
        self.done = labelled
        self.axes = settings(done)  # the axes' own values by their study names (a label replaces an axis named regime)

    def arm(self, dataset: str, where: dict, value) -> pd.DataFrame:
        sel = (self.done["dataset"] == dataset) & (self.axes[self.lay.compare].map(tables._label) == tables._label(value))
        for key, want in where.items():
            sel &= self.axes[key].astype(str) == str(want)
        return self.done[sel]


def _cells(claim: Claim, study: Study, where: dict | None = None) -> list[dict]:
    """One row per (data set, treatment, baseline) of `study` in the regime `where` (default:
    the claim's own), with the numbers and the raw p."""
    where = claim.where if where is None else where
    compare = study.lay.compare
    baselines = claim.baselines or (study.lay.baseline,)
    values = sorted(study.axes[compare].unique(), key=lambda v: (isinstance(v, str), v))
    treatments = [claim.treatment] if claim.treatment is not None else [v for v in values if v not in baselines]
    rows, keys = [], study.contract.get("keys", {})
    for dataset in sorted(study.done["dataset"].unique()):
        rest = [r for r in study.lay.regimes if r not in where]  # the other axes: one cell per value, never pooled
        regimes = [{}] if not rest else [
            dict(zip(rest, r, strict=True)) for r in study.axes[rest].drop_duplicates().itertuples(index=False)]
        for extra in regimes:
            cell = {**where, **extra}
            for base in baselines:
                b = study.arm(dataset, cell, base)
                for value in treatments:
                    t = study.arm(dataset, cell, value)
                    if len(t) and len(b):
                        rows.append({"study": study.name, "dataset": dataset, "regime": ", ".join(f"{k}={v}" for k, v in extra.items()),
                                     "treatment": f"{compare} {tables._label(value)}",
                                     "baseline": f"{compare} {tables._label(base)}", **MEASURES[claim.measure](claim, t, b, keys),
                                     **({"baseline converged": _reached(b)} if claim.premise else {})})
    return rows


def claim_cells(claim: Claim, studies: dict[str, Study]) -> tuple[list[tuple[str, dict]], pd.DataFrame]:
    """The (study, regime) places of `claim` that `studies` has, and their cells decided
    together (one Holm family over every study the claim is measured in)."""
    measured, rows = [], []
    for name, where in claim.places():
        cells = _cells(claim, studies[name], where) if name in studies else []
        if cells:  # a study exported before any trial of this regime finished has not measured it
            measured.append((name, where))
            rows += cells
    return measured, decide(claim, pd.DataFrame(rows))


def _reached(arm: pd.DataFrame) -> str:
    """How many seeds of an arm ever met the convergence rule (the premise of a late collapse)."""
    return f"{int(np.isfinite(arm['steps_to_converge'].astype(float)).sum())}/{len(arm)}"


def _rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def _collapse(claim: Claim, t: pd.DataFrame, b: pd.DataFrame, keys: dict, rule: str | None = None) -> dict:
    rule = rule or claim.rule
    kt, kb, nt, nb = int(t[f"_{rule}"].sum()), int(b[f"_{rule}"].sum()), len(t), len(b)
    d, lo, hi = newcombe_difference(kt, nt, kb, nb)
    others = []
    for other in [r for r in tables.RULES if r != rule and f"_{r}" in t]:
        ko, kbo = int(t[f"_{other}"].sum()), int(b[f"_{other}"].sum())
        others.append(f"{other} {ko / nt - kbo / nb:+.2f} (p = {fisher_p(ko, nt, kbo, nb):.2g})")
    return {"treatment value": _rate(kt, nt), "baseline value": _rate(kb, nb), "difference": f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]",
            "p": fisher_p(kt, nt, kb, nb), "sign": np.sign(d), "hi": hi, "d": d, "other definitions": "; ".join(others)}


def _times(t: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    budget = min(t[config("iterations")].max(), b[config("iterations")].max())
    return (convergence.censor(t["steps_to_converge"].dropna(), budget),
            convergence.censor(b["steps_to_converge"].dropna(), budget))


def _convergence(claim: Claim, t: pd.DataFrame, b: pd.DataFrame, keys: dict) -> dict:
    x, y = _times(t, b)
    out = convergence.compare_times(x, y)
    faster = (x[:, None] < y[None, :]).mean() + 0.5 * (x[:, None] == y[None, :]).mean() > 0.5 if len(x) and len(y) else False
    med = lambda v: "not reached" if not len(v) or math.isinf(float(np.median(v))) else f"{np.median(v):,.0f}"  # noqa: E731
    return {"treatment value": f"{int(np.isfinite(x).sum())}/{len(x)} converged, median {med(x)}",
            "baseline value": f"{int(np.isfinite(y).sum())}/{len(y)} converged, median {med(y)}",
            "difference": "" if "not reached" in (med(x), med(y)) else f"{out['diff']:+,.0f} steps",
            "p": out["p"], "sign": -1.0 if faster else 1.0}


def _quality(claim: Claim, t: pd.DataFrame, b: pd.DataFrame, keys: dict) -> dict:
    metric = tables.quality_metric(t, keys)
    if metric is None:
        return {"treatment value": "no quality metric", "baseline value": "", "difference": "", "p": math.nan,
                "sign": 0.0}
    x = t.loc[~t["diverged"].astype(bool), metric].dropna()
    y = b.loc[~b["diverged"].astype(bool), metric].dropna()
    d, lo, hi = median_difference(x, y)
    name = metric.removeprefix("eval/")
    return {"treatment value": f"{name} median {np.median(x):.3g} (n={len(x)})",
            "baseline value": f"{name} median {np.median(y):.3g} (n={len(y)})",
            "difference": f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]", "p": mann_whitney_p(x, y), "sign": np.sign(d)}


def _as_well(claim: Claim, t: pd.DataFrame, b: pd.DataFrame, keys: dict) -> dict:
    rate = _collapse(claim, t, b, keys, rule="end")
    quality = _quality(claim, t, b, keys)
    return {**rate, "quality": f"{quality['treatment value']} vs {quality['baseline value']}: {quality['difference']}, "
                               f"p = {quality['p']:.2g}", "quality p": quality["p"], "quality sign": quality["sign"]}


MEASURES = {"collapse": _collapse, "convergence": _convergence, "quality": _quality, "as_well": _as_well}


def decide(claim: Claim, cells: pd.DataFrame) -> pd.DataFrame:
    """Holm over the claim's cells, then each cell's verdict by VERDICT_RULE."""
    if cells.empty:
        return cells
    cells = cells.assign(p_holm=holm(cells["p"]))
    if claim.measure == "as_well":
        cells = cells.assign(quality_p_holm=holm(cells["quality p"]))
    good = -1.0  # lower collapse, faster, lower Frechet distance: the treatment's difference is negative
    verdicts = []
    for _, c in cells.iterrows():
        significant = c["p_holm"] < ALPHA
        if claim.measure == "as_well":
            worse = (significant and c["sign"] > 0) or (c["quality_p_holm"] < ALPHA and c["quality sign"] > 0)
            verdicts.append("contradicts" if worse else "supports" if c["hi"] < MARGIN else "inconclusive")
        elif claim.premise and str(c.get("baseline converged", "")).startswith("0/"):
            verdicts.append("premise not reached")  # no baseline seed got good: a late collapse cannot show
        else:
            verdicts.append("inconclusive" if not significant else "supports" if c["sign"] == good else "contradicts")
    return cells.assign(cell=verdicts)


def overall(cells: pd.DataFrame) -> str:
    if cells.empty:
        return "not measured"
    counts = cells["cell"].value_counts().to_dict()
    s, c, n = counts.get("supports", 0), counts.get("contradicts", 0), len(cells)
    unreached = counts.get("premise not reached", 0)
    if unreached == n:
        return f"premise not reached at this budget (in none of {n} cells did a baseline seed get good samples)"
    if s == n:
        return "supported"
    if c == n:
        return "contradicted"
    if s and c:
        return f"mixed ({s} of {n} cells support, {c} contradict)"
    if s:
        return f"partly supported ({s} of {n} cells; the rest inconclusive)"
    if c:
        return f"partly contradicted ({c} of {n} cells; the rest inconclusive)"
    return f"inconclusive at this n (no cell of {n} decided)"


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no rows)_\n"
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    fmt = lambda v: f"{v:.2g}" if isinstance(v, float) else tables.md_escape(v)  # noqa: E731
    return head + "".join("| " + " | ".join(fmt(v) for v in row) + " |\n" for row in frame.itertuples(index=False))


DOSE_STUDIES = ("bn_ablation", "bn_ablation_digits")  # the lambda x regime grids
STUDIES = tuple(sorted({name for c in CLAIMS for name, _ in c.places()} | {"pacgan_baseline"}))


GRID_FIGURE = "claims_c4.png"  # beside CLAIMS.md: C4's cells x stabilisers
GRID_CLAIMS = ("C4a", "C4d")  # against no stabiliser, against the paper's anchor


def claims_markdown(root: str | Path) -> str:
    """CLAIMS.md for the exported studies under `root` (a study that is not there: not
    measured); a folder that holds none of them is an error."""
    return claims_document(root)[0]


def claims_document(root: str | Path) -> tuple[str, dict]:
    """(CLAIMS.md, {file name: figure} to write beside it)."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"{root}: not a folder of exported studies")
    studies: dict[str, Study] = {}
    for name in STUDIES:
        if (root / name / schema.TRIALS_FILE).exists():
            res = load_results([str(root / name)], warn=False)
            if not res.trials["status"].isin(schema.FINISHED).any():
                continue  # nothing finished yet: not measured
            studies[name] = Study(name, res.trials, res.metrics, res.contract)
            # the claims' regime keys must be the study's own columns (the labelled frame always has `regime`)
            missing = ({k for c in CLAIMS for study, where in c.places() if study == name for k in where}
                       - set(studies[name].axes.columns))
            if studies[name].lay.compare is None and any(s == name for c in CLAIMS for s, _ in c.places()):
                missing.add("compare")  # a claim compares; the calibration study need not
            if missing:
                raise ResultsError(f"{root / name}: not the study `{name}` the claims read (no axis "
                                   f"{', '.join(sorted(missing))})")
    if not studies:
        raise ResultsError(f"{root}: holds none of the exported studies the claims read ({', '.join(STUDIES)})")
    shown_root = root if not root.is_absolute() else root.name
    out = ["# The paper's claims: verdicts\n\n", f"_Generated by `python -m analysis claims {shown_root}` from the "
           "exported results beside this file; do not edit by hand._\n\n", f"**Rule.** {VERDICT_RULE}\n\n",
           f"Convergence rule: `{convergence.DEFAULT_RULE}`. Collapse definitions: "
           + "; ".join(f"**{r}** = {t}" for r, t in tables.RULES.items()) + ".\n"]
    decided = {}
    for claim in CLAIMS:
        out.append(f"\n## {claim.key}: {claim.text}\n")
        measured, cells = claim_cells(claim, studies)
        decided[claim.key] = cells
        if not measured:
            out.append(f"\n**Verdict: not measured yet** ({', '.join(f'`{n}`' for n, _ in claim.places())}: "
                       f"no finished trial of the regime in {root}).\n")
            continue
        what = f"collapse rule **{claim.rule}**" if claim.measure == "collapse" else claim.measure
        named = lambda w: ", ".join(v if k == "regime" else f"{k}={v}" for k, v in w.items()) or "every regime"  # noqa: E731
        where_text = "; ".join(f"study `{name}`, regime {tables.md_escape(named(where))}" for name, where in measured)
        absent = [name for name, w in claim.places() if (name, w) not in measured]
        out.append(f"\n**Verdict: {overall(cells)}.** {where_text[0].upper()}{where_text[1:]}; measure: {what}."
                   + (f" Not measured yet: {', '.join(f'`{a}`' for a in absent)}." if absent else "") + "\n\n")
        if claim.measure == "as_well" and len(cells):
            out.append(as_well_note(studies[measured[0][0]]))
        shown = cells.drop(columns=[c for c in ("sign", "hi", "d", "quality p", "quality sign") if c in cells]
                           + (["study"] if len(measured) == 1 and "study" in cells else []))
        shown = shown.loc[:, [c for c in shown.columns if not (shown[c].astype(str) == "").all()]]
        out.append(_table(shown))
        panels = [f"[{kind} on {d}]({name}/report/{tables.figure_name(kind, m, d)}.png)" for name, _ in measured
                  for m in sorted(studies[name].done["model"].unique())
                  for d in sorted(studies[name].done["dataset"].unique()) for kind in ("samples", "evolution")
                  if (root / name / "report" / f"{tables.figure_name(kind, m, d)}.png").exists()]
        if panels:
            out.append(f"\nThe samples it rests on: {', '.join(panels)}.\n")
    doses = [dose_response(studies[name]).assign(study=name) for name in DOSE_STUDIES if name in studies]
    if doses:
        dose = pd.concat(doses, ignore_index=True).fillna("")
        out.append("\n## Dose-response: late-collapse rate by lambda in every BN x phases cell\n\n")
        out.append(_table(dose[["study", *[c for c in dose.columns if c != "study"]]] if len(doses) > 1
                          else dose.drop(columns="study")))
    if "pacgan_baseline" in studies:
        out.append("\n## Calibration: PacGAN's 2-D GAN baseline, ours beside their Table 1 (GAN row)\n\n"
                   "Mean +- standard error over seeds of the published metrics (2,500 samples). Theirs trained "
                   "400,000 iterations; the iterations column says how many ours did.\n\n")
        out.append(_table(calibration(studies["pacgan_baseline"])))
    figures = {}
    grid = [(claim.baselines[0], decided[claim.key]) for claim in CLAIMS if claim.key in GRID_CLAIMS
            and len(decided.get(claim.key, []))]
    if grid:
        figures[GRID_FIGURE] = stabiliser_grid(grid, ALPHA)
        out.append("\n## C4 at a glance: cells x stabilisers\n\n"
                   f"![late-collapse difference of each stabiliser against {' and '.join(b for b, _ in grid)}]({GRID_FIGURE})\n\n"
                   "Each square: the stabiliser's late-collapse rate minus its baseline's in one cell; blue lower, "
                   "red higher; framed and starred where the cell decides after Holm over the claim's cells.\n")
    return "".join(out), figures


def seeds_per_condition(study: Study) -> int:
    """The fewest seeds of any condition (a condition: every axis but the seed)."""
    return int(study.done.groupby([study.lay.col(c) for c in study.lay.conditions], dropna=False).size().min())


def as_well_note(study: Study) -> str:
    """What "does as well" can show at the study's n: the Newcombe bound of two equal rates of 0."""
    n = seeds_per_condition(study)
    bound = newcombe_difference(0, n, 0, n)[2]
    if bound < MARGIN:
        return (f"At n = {n} seeds per condition, equal rates of 0/{n} give an upper bound of {bound:+.2f}, "
                f"below the margin of +{MARGIN}: equal rates can support \"as well\" at this n.\n\n")
    return (f"At n = {n} seeds per condition, equal rates of 0/{n} give an upper bound of {bound:+.2f}, above "
            f"the margin of +{MARGIN}: equal rates cannot support \"as well\" at this n; only a cell where the "
            "treatment collapses clearly less often than its baseline can.\n\n")


def write_claims(root: str | Path, out: str | Path | None = None) -> Path:
    path = Path(out) if out else Path(root) / "CLAIMS.md"
    text, figures = claims_document(root)
    try:
        path.write_text(text)
        for name, fig in figures.items():
            fig.savefig(path.parent / name, dpi=130, bbox_inches="tight")
            plt.close(fig)
    except OSError as err:
        raise ResultsError(f"cannot write {path}: {err.strerror or err}") from None
    return path
