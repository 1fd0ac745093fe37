"""The report's first screen: every comparison of the findings at a glance, as one compact table
(this module) and one figure (analysis.figures.at_a_glance) drawn from the same rows. The
numbers are the findings' own (analysis.findings): nothing here tests anything again."""

from __future__ import annotations

import math

import pandas as pd

from analysis.findings import ALPHA

CELL = ("model", "dataset", "regime")
VERDICTS = {"better": "significant improvements only", "worse": "significant worsenings only",
            "mixed": "significant improvements and worsenings", "n.s.": "no significant difference"}


def _signed(v: float, fmt: str) -> str:
    return "" if v != v else fmt.format(v)


def _interval(d: float, lo: float, hi: float, fmt: str) -> str:
    if d != d:
        return ""
    text = _signed(d, fmt)
    return text + (f" [{_signed(lo, fmt)}, {_signed(hi, fmt)}]" if lo == lo and hi == hi else "")


def _p(p) -> str:
    return "" if p is None or p != p else f"{p:.2g}"


def _blind(blind_to) -> str:
    """The label of a quality metric that decides no verdict ('' for one that does)."""
    return f"blind to {blind_to}: not in the verdict" if isinstance(blind_to, str) and blind_to else ""


def glance_rows(found: pd.DataFrame, effect: pd.DataFrame, keys: dict, converging: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per finding with the numbers the first screen shows: the collapse difference
    (end of training) with its Newcombe interval and Holm p, the quality difference (the
    Hodges-Lehmann shift) with its distribution-free interval and Holm p, the convergence shares and Holm p, each signed as better
    (+1), worse (-1) or not significant (0), and the verdict word."""
    if found.empty:
        return pd.DataFrame()
    on = [*CELL, "treatment"]
    rows = found.merge(effect[[*on, "end_diff", "end_lo", "end_hi"]], on=on, how="left")
    out = []
    for r in rows.to_dict("records"):
        row = {**{k: r[k] for k in on}, "baseline": r["baseline"], "n": r["n"], "n_base": r["n_base"],
               "collapse_diff": r["end_diff"], "collapse_lo": r["end_lo"], "collapse_hi": r["end_hi"],
               "collapse_p_holm": r["collapse_p_holm"],
               "collapse_sign": (1 if r["end_diff"] < 0 else -1) if r["collapse_p_holm"] < ALPHA else 0}
        metric = r.get("quality_metric")
        if isinstance(metric, str):
            p = r.get("quality_p_holm", math.nan)
            declared = keys.get(f"eval/{metric}", {})
            lower, blind = declared.get("better", "lower") == "lower", declared.get("blind_to", "")
            good = (r["quality_diff"] < 0) == lower
            # a metric blind to modes (fd_2d) is shown, but never makes a row read better or worse
            row.update(quality_metric=metric, quality_diff=r["quality_diff"], quality_lo=r["quality_lo"],
                       quality_hi=r["quality_hi"], quality_p_holm=p, quality_lower_better=lower, quality_blind_to=blind,
                       quality_sign=(1 if good else -1) if p == p and p < ALPHA and not blind else 0)
        p = r.get("convergence_p_holm", math.nan)
        if p == p or isinstance(r.get("convergence"), str):
            text = r.get("convergence") or ""
            row.update(convergence_p_holm=p,
                       convergence_sign=(1 if "converges faster" in text else -1 if "converges slower" in text else 0))
            if converging is not None and len(converging):
                share = {}
                for label in (r["treatment"], r["baseline"]):
                    c = converging[(converging["model"] == r["model"]) & (converging["dataset"] == r["dataset"])
                                   & (converging["regime"] == r["regime"]) & (converging["treatment"] == label)]
                    share[label] = f"{int(c['converged'].iloc[0])}/{int(c['n'].iloc[0])}" if len(c) else "?"
                row["convergence_shares"] = f"{share[r['treatment']]} vs {share[r['baseline']]}"
        signs = [row.get(k, 0) for k in ("collapse_sign", "quality_sign", "convergence_sign")]
        row["verdict"] = ("mixed" if 1 in signs and -1 in signs else "better" if 1 in signs
                          else "worse" if -1 in signs else "n.s.")
        row["small_n"] = bool(r.get("warning"))
        out.append(row)
    return pd.DataFrame(out)


def glance_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The compact findings table: cell, treatment vs baseline, the differences with their 95%
    intervals, convergence, the Holm-adjusted p of each family and the verdict word."""
    if rows.empty:
        return rows
    table = pd.DataFrame({
        "cell": [" · ".join(str(r[k]) for k in CELL) for r in rows.to_dict("records")],
        "treatment vs baseline": [f"{t} vs {b}" for t, b in zip(rows["treatment"], rows["baseline"], strict=True)],
        "n": [f"{int(a)} vs {int(b)}" for a, b in zip(rows["n"], rows["n_base"], strict=True)],
        "collapse diff [95% CI]": [_interval(d, lo, hi, "{:+.2f}") for d, lo, hi in
                                   rows[["collapse_diff", "collapse_lo", "collapse_hi"]].itertuples(index=False)],
    })
    if "quality_metric" in rows:
        table["quality diff [95% CI]"] = [
            f"{m}: {_interval(d, lo, hi, '{:+.3g}')}" + (f" ({_blind(blind)})" if _blind(blind) else "")
            if isinstance(m, str) else ""
            for m, d, lo, hi, blind in zip(rows["quality_metric"], rows["quality_diff"], rows["quality_lo"],
                                           rows["quality_hi"], rows.get("quality_blind_to", [""] * len(rows)), strict=True)]
    if "convergence_shares" in rows:
        table["converged"] = rows["convergence_shares"].fillna("")
    families = [("collapse", "collapse_p_holm"), ("quality", "quality_p_holm"), ("converge", "convergence_p_holm")]
    present = [(name, col) for name, col in families if col in rows]
    table["Holm p (" + " · ".join(name for name, _ in present) + ")"] = [
        " · ".join(_p(r.get(col)) or "-" for _, col in present) for r in rows.to_dict("records")]
    table["verdict"] = [v + (" (n < 10)" if small else "") for v, small in zip(rows["verdict"], rows["small_n"], strict=True)]
    return table


def glance_note(rows: pd.DataFrame, alpha: float = ALPHA) -> str:
    words = "; ".join(f"**{w}**: {VERDICTS[w]}" for w in VERDICTS)
    blind = sorted({f"{m} (blind to {b})" for m, b in rows[["quality_metric", "quality_blind_to"]].itertuples(index=False)
                    if _blind(b)}) if "quality_blind_to" in rows else []
    return (f"One row per finding below. Differences are treatment minus baseline: collapse at the last evaluation "
            f"(negative is less collapse), the cell's quality metric (its direction in the figure), and the share of "
            f"seeds that converged. Holm p: each family's Holm-adjusted p; a verdict counts a family as significant at "
            f"p < {alpha} ({words})"
            + (f"; {', '.join(blind)} is shown (grey in the figure) but counts in no verdict" if blind else "")
            + ". The sentences after the figure say the same per cell, with the tests.")


ANSWER = "The answer"  # the first section of a report without declared claims


SEARCHED = ("These rows are a search's suggestions (a protocol's tuning or `vi-sweep tune`'s): each condition pools "
            "the settings its search tried, so a comparison here describes the search, not the arms, and no claim is "
            "decided on them (a protocol's claims are decided on its test trials).")


def answer_sentences(rows: pd.DataFrame, compare: str | None, n_seeds: list[int], searched: bool = False) -> list[str]:
    """One sentence per comparison a family-corrected test decided (collapse, quality,
    convergence), from the glance rows; 'nothing decided yet' with the seed counts otherwise;
    first, for a search's rows, what they are."""
    return ([SEARCHED] if searched else []) + _answers(rows, compare, n_seeds)


def _answers(rows: pd.DataFrame, compare: str | None, n_seeds: list[int]) -> list[str]:
    out = []
    for r in rows.to_dict("records") if len(rows) else []:
        said = []
        if r.get("collapse_sign"):
            said.append(f"{'less' if r['collapse_diff'] < 0 else 'more'} collapse at the end "
                        f"({r['collapse_diff']:+.2f}, Holm p {_p(r['collapse_p_holm'])})")
        if r.get("quality_sign"):
            said.append(f"{'better' if r['quality_sign'] > 0 else 'worse'} {r['quality_metric']} "
                        f"({r['quality_diff']:+.3g}, Holm p {_p(r['quality_p_holm'])})")
        elif _blind(r.get("quality_blind_to")) and r.get("quality_p_holm", math.nan) < ALPHA:  # said, not a verdict
            said.append(f"{'lower' if r['quality_diff'] < 0 else 'higher'} {r['quality_metric']} "
                        f"({r['quality_diff']:+.3g}, Holm p {_p(r['quality_p_holm'])}; {_blind(r['quality_blind_to'])})")
        if r.get("convergence_sign"):
            said.append(f"converges {'faster' if r['convergence_sign'] > 0 else 'slower'} "
                        f"(Holm p {_p(r['convergence_p_holm'])})")
        if said:
            name = compare or "treatment"
            out.append(f"{' · '.join(str(r[k]) for k in CELL)}: {name} = {r['treatment']} against {name} = "
                       f"{r['baseline']}: {'; '.join(said)} (n = {int(r['n'])} vs {int(r['n_base'])}).")
    if out:
        return out
    if not compare:
        return ["No comparison: the study sets no `compare:` axis, so nothing is tested; the tables below describe "
                "each condition."]
    n = f"{min(n_seeds)}" if n_seeds and min(n_seeds) == max(n_seeds) else f"{min(n_seeds)}-{max(n_seeds)}" if n_seeds else "0"
    return [f"Nothing decided yet: no comparison differs after Holm's correction (n = {n} seeds per condition); "
            "the tables below say what the data exclude."]


def answer_of(markdown: str) -> list[str]:
    """The answer lines of a REPORT.md (the declared claims' answer, else the findings' one), as
    plain text for a terminal."""
    lines, inside, claims = [], False, False
    for line in markdown.splitlines():
        if line.startswith("## "):
            if inside:
                break
            inside = line[3:].strip() in (ANSWER, "Declared claims: the answer")
            claims = line[3:].strip() != ANSWER
        elif inside and line.startswith("- **" if claims else "- "):  # a claim's verdict, not the note on the words
            text = line[2:].replace("**", "").replace("\\", "")
            lines.append(text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&"))
    return lines
