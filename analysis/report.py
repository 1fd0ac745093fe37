"""results folders -> figures (PNG and SVG), REPORT.md and one self-contained report.html.

The report opens with the answer: a short summary, one figure of every comparison at a glance
(conditions x treatments, coloured by the difference in collapse and in quality, framed where
significant after Holm) and one compact findings table; then each cell's findings as sentences
(worded by the rule the report states), then the samples a GAN researcher looks at first, then the evidence: collapse rates
under both collapse rules, each metric with every seed shown, curves over training and losses.
Every table behind a figure is in the report and in CSV beside it.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import claims, convergence, figures, glance, interims, protocol, tables
from analysis.findings import RULE, SMALL_N, findings, findings_by_cell
from analysis.load import Results, load_results
from analysis.publish import REPORT_FILES, check_destination, new_folder_beside, remove_stale_beside, replace_folder
from analysis.render import PROVENANCE, Code, appendix, fmt, render_html, render_markdown
from analysis.samples import read_snapshot, sample_grid, sample_panels
from analysis.search import search_sections
from vi_contract import schema
from vi_contract.columns import config, suggested
from vi_contract.read import ResultsError
from vi_contract.rules import Rule, RuleError


def clean(frame: pd.DataFrame, compare: str | None = None) -> pd.DataFrame:
    """No all-empty columns (NaN or ""); `treatment` only where it is not the compare axis
    itself under another name."""
    if frame.empty:
        return frame
    frame = frame.loc[:, [not frame[c].replace("", np.nan).isna().all() for c in frame.columns]]
    if compare and tables.compare_column(compare) in frame and "treatment" in frame:
        frame = frame.drop(columns="treatment")
    return frame


def _interval(med, lo, hi, n) -> str:
    if med != med:
        return ""
    text = fmt(med)
    if lo == lo and hi == hi:
        text += f" [{fmt(lo)}, {fmt(hi)}]"
    return text + f" (n={int(n)})"


def leading(table: pd.DataFrame, compare: str | None, *more: str) -> pd.DataFrame:
    """The columns a summary starts with, each once (a compare axis may be named `regime`)."""
    cols = dict.fromkeys(["model", "dataset", "regime", tables.compare_column(compare) or "treatment", *more])
    return table[[c for c in cols if c in table]].copy()


def collapse_summary(table: pd.DataFrame, compare: str | None) -> pd.DataFrame:
    out = leading(table, compare, "n")
    for rule in [r for r in tables.RULES if f"collapsed_{r}" in table]:
        out[f"collapsed, {rule}"] = [
            f"{int(k)}/{int(n)} = {r:.2f} [{lo:.2f}, {hi:.2f}]" for k, n, r, lo, hi in
            table[[f"collapsed_{rule}", "n", f"{rule}_rate", f"{rule}_lo", f"{rule}_hi"]].itertuples(index=False)]
    out["diverged"] = table["diverged"]
    return clean(out, compare)


def metric_summary(table: pd.DataFrame, metrics: list[str], compare: str | None) -> pd.DataFrame:
    out = leading(table, compare)
    for m in metrics:
        name = m.removeprefix("eval/")
        if f"{name}_median" in table:
            out[name] = [_interval(*r) for r in table[[f"{name}_median", f"{name}_lo", f"{name}_hi", f"{name}_n"]]
                         .itertuples(index=False)]
    return clean(out, compare)


def effect_summary(effect: pd.DataFrame) -> pd.DataFrame:
    if effect.empty:
        return effect
    out = effect[["model", "dataset", "regime", "treatment", "n", "n_base"]].copy()
    for rule in [r for r in tables.RULES if f"{r}_diff" in effect]:
        out[f"{rule}: difference [95% CI], Fisher p"] = [
            f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}], p = {p:.2g}" for d, lo, hi, p in
            effect[[f"{rule}_diff", f"{rule}_lo", f"{rule}_hi", f"{rule}_fisher_p"]].itertuples(index=False)]
    return clean(out)


def sample_figures(res: Results, labelled: pd.DataFrame, lay: tables.Layout) -> dict[str, tuple[str, plt.Figure]]:
    """Per model x data set: final samples of the best, median and worst seed of every
    condition, and one evolution strip per condition (the median seed across evaluations)."""
    out = {}
    order = figures.treatments(labelled[labelled["status"].isin(schema.FINISHED)], lay.compare)
    for (model, dataset), (finals, strips) in sample_panels(res, labelled, order, lay.compare,
                                                             tables.quality_metric).items():
        if not any(path for _, cells in finals for _, _, path in cells):
            continue
        geometry = res.contract.get("datasets", {}).get(dataset, {})

        def drawn(rows):
            return [(label, [(caption, read_snapshot(loc, path) if path else None) for caption, loc, path in cells])
                    for label, cells in rows]

        out[tables.figure_name("samples", model, dataset)] = (
            f"Samples: {model} on {dataset} (best, median and worst seed by the collapse metric)",
            sample_grid(drawn(finals), geometry, f"Final samples · {model} · {dataset}"))
        out[tables.figure_name("evolution", model, dataset)] = (
            f"Samples over training: {model} on {dataset} (the median seed of each condition)",
            sample_grid(drawn(strips), geometry, f"Samples over training · {model} · {dataset}"))
    return out


def loss_frame(res: Results, labelled: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    cols = [k for k in keys if k in res.metrics]
    if not cols:
        return pd.DataFrame(columns=["model", "dataset", "regime", "treatment", "step", "loss", "median"])
    long = res.metrics[["trial_id", "step", *cols]].melt(["trial_id", "step"], var_name="loss", value_name="value")
    long = long.merge(labelled[["trial_id", "model", "dataset", "regime", "treatment"]], on="trial_id").dropna(subset=["value"])
    return long.groupby(["model", "dataset", "regime", "treatment", "loss", "step"])["value"].median() \
        .rename("median").reset_index()


def build_report(locations: list[str], out: str, converged: str | None = None, link_figures: bool = False) -> Path:
    """The report of `locations` in the folder `out` (replaced whole). Everything is read
    first, then written to a folder beside `out` that takes its place only when complete: a
    results folder that cannot be read (ResultsError) or a report that cannot be written
    (OSError) leaves `out` as it was. `converged`: the convergence rule (analysis.convergence);
    default DEFAULT_RULE where the results have its metric. `link_figures`: report.html refers
    to the PNGs beside it instead of embedding them (a committed report is then not stored twice;
    by default the HTML is one self-contained file to send around)."""
    res = load_results(locations)
    converge = convergence_rule(converged, res)
    final = Path(out).expanduser().absolute()
    remove_stale_beside(final)  # a report killed mid-swap left the previous one aside: back first, then checked
    check_destination(final, locations, "--out", REPORT_FILES)
    final.parent.mkdir(parents=True, exist_ok=True)
    building = new_folder_beside(final)
    try:
        name = _write_report(res, locations, building, converge, link_figures).name
        replace_folder(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final / name


@dataclass
class Analysis:
    """Everything a report shows, computed from its results (and the tables it writes as CSV)."""

    lay: tables.Layout
    labelled: pd.DataFrame
    table: pd.DataFrame
    effect: pd.DataFrame
    found: pd.DataFrame
    converging: pd.DataFrame
    onsets: pd.DataFrame  # per seed: when it first got good and when it collapsed after (empty without a rule)
    at_glance: pd.DataFrame
    quality: str | None
    curves: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"conditions": clean(self.table, self.lay.compare), "effects": clean(self.effect),
                "findings": clean(self.found), "curves": clean(self.curves, self.lay.compare),
                "convergence": clean(self.converging), "glance": glance.glance_table(self.at_glance),
                "onsets": self.onsets}


def analyse(res: Results, converge: Rule | None) -> Analysis:
    """The report's tables of results with at least one finished trial."""
    trials, contract = res.trials, res.contract
    keys = contract.get("keys", {})
    lay = tables.layout(trials, contract)
    labelled = tables.with_labels(trials, lay)
    onsets = pd.DataFrame()
    if converge:
        labelled["steps_to_converge"] = convergence.steps_to_converge(labelled, res.metrics, converge).values
        on = convergence.onsets(labelled, res.metrics, converge)
        labelled = labelled.assign(**{c: on[c].values for c in on})
        done = labelled[labelled["status"].isin(schema.FINISHED) & labelled["good_at"].notna()]
        onsets = done[["trial_id", "model", "dataset", "regime", "treatment", config("seed"), "steps_done",
                       *convergence.ONSET_COLUMNS]].rename(columns={config("seed"): "seed"}).sort_values(
            ["model", "dataset", "regime", "treatment", "seed"], kind="stable").reset_index(drop=True)
    table = tables.condition_table(trials, res.metrics, contract)
    effect = tables.effect_table(table, lay)
    found = findings(labelled, effect, lay, keys, convergence.rule_text(converge) if converge else None)
    converging = convergence.convergence_table(labelled, tables.GROUP_KEYS) if converge else pd.DataFrame()
    quality = tables.quality_metric(trials[trials["status"].isin(schema.FINISHED)], keys)
    return Analysis(lay, labelled, table, effect, found, converging, onsets,
                    glance.glance_rows(found, effect, keys, converging),
                    quality, tables.over_time(trials[trials["status"] != "error"], res.metrics, quality, contract))


def _write_report(res: Results, locations: list[str], out_dir: Path, converge, link_figures: bool) -> Path:
    trials, contract = res.trials, res.contract
    metrics = tables.metric_keys(trials[trials["status"].isin(schema.FINISHED)], contract)
    if not trials["status"].isin(schema.FINISHED).any():
        return early_report(res, out_dir)
    a = analyse(res, converge)
    lay, labelled, table, effect, found = a.lay, a.labelled, a.table, a.effect, a.found
    converging, at_glance, quality, curves = a.converging, a.at_glance, a.quality, a.curves
    order = figures.treatments(labelled, lay.compare)
    keys = contract.get("keys", {})
    label = lambda m: keys.get(m, {}).get("label", m.removeprefix("eval/"))  # noqa: E731

    figs: dict[str, tuple[str, plt.Figure]] = {}
    if len(at_glance):
        figs["at_a_glance"] = ("Every comparison at a glance", figures.at_a_glance(at_glance, order, lay.compare))
    figs.update(sample_figures(res, labelled, lay))
    figs["collapse_rate"] = ("Collapse rate at the last evaluation", figures.collapse_rate(table, lay.compare, "end"))
    figs["collapse_rate_late"] = ("Collapse rate at any evaluation in the last half of training",
                                  figures.collapse_rate(table, lay.compare, "late"))
    for rule in [r for r in tables.DEFINITIONS if f"collapsed_{r}" in table]:
        figs[f"collapse_rate_{rule}"] = (f"Collapse rate, {rule}: {tables.RULES[rule]}",
                                         figures.collapse_rate(table, lay.compare, rule))
    done = labelled[labelled["status"].isin(schema.FINISHED)]
    for m in metrics:
        log = keys.get(m, {}).get("scale") == "log"
        figs[tables.figure_name("metric", m.removeprefix("eval/"))] = (label(m), figures.metric_by_condition(
            done, table, m, label(m), lay.compare, log=log))
    if lay.compare and pd.api.types.is_numeric_dtype(trials[lay.col(lay.compare)]) and len(order) > 2:
        figs["dose_response"] = (f"Dose-response of collapse to {lay.compare}", figures.lambda_sensitivity(table, lay.compare))
    if quality:
        figs["training_curves"] = (f"{quality.removeprefix('eval/')} during training", figures.over_time(
            curves, "median", f"{quality.removeprefix('eval/')} (median, IQR band)",
            f"{quality.removeprefix('eval/')} during training", ("q25", "q75"), order, log=True, legend=lay.compare or "treatment"))
    figs["collapse_over_time"] = ("Collapse over time", figures.over_time(
        curves, "collapsed_share", "share of seeds collapsed", "Collapse over time", None, order, legend=lay.compare or "treatment"))
    if len(converging):
        seeds = done[done["steps_to_converge"].notna()]
        figs["time_to_converge"] = (f"Time to converge: steps until {convergence.rule_text(converge)}",
                                    figures.time_to_converge(seeds, converging, convergence.rule_text(converge), lay.compare))
    if len(a.onsets) and a.onsets.groupby(["model", "dataset"]).size().max() <= figures.ONSET_SEEDS:
        figs["onsets"] = ("A good phase, then a collapse? Each seed's course",
                          figures.onsets(a.onsets, order, convergence.rule_text(converge), lay.compare))
    loss_keys = [k for k in keys if k.startswith("loss/")] or [c for c in res.metrics if c.startswith("loss/")]
    losses = loss_frame(res, labelled, loss_keys)
    if len(losses):
        present = [(k, label(k)) for k in loss_keys if k in set(losses["loss"])]
        figs["loss_curves"] = ("Losses during training", figures.loss_curves(losses, present, order, lay.compare or "treatment"))
    for name, (_, fig) in figs.items():
        figures.save(fig, out_dir / name)

    for name, frame in a.frames().items():
        frame.to_csv(out_dir / f"{name}.csv", index=False)
    sections = report_sections(res, lay, table, effect, found, figs, metrics, at_glance)
    if len(converging):
        at = appendix(sections)
        sections[at:at] = [(figs["time_to_converge"][0], "time_to_converge", convergence_summary(converging, converge)),
                           ("Time to converge by condition", "", convergence_frame(converging))]
    if len(a.onsets):
        at = appendix(sections)
        course = convergence.onset_summary(a.onsets, ["model", "dataset", "regime", "treatment"],
                                           convergence.rule_text(converge))
        title = figs["onsets"][0] if "onsets" in figs else "A good phase, then a collapse? Each seed's course"
        sections[at:at] = [(title, "onsets" if "onsets" in figs else "", ONSETS_NOTE),
                           ("Each seed's course by condition", "", clean(course))]
    at = appendix(sections)
    sections[at:at] = protocol.protocol_sections(locations, res, out_dir) + search_sections(locations, res, out_dir)
    (out_dir / "REPORT.md").write_text(render_markdown(sections))
    (out_dir / "report.html").write_text(render_html(sections, out_dir, link_figures))
    return out_dir / "REPORT.md"


def convergence_rule(text: str | None, res: Results) -> Rule | None:
    """The rule asked for (refused in one line if it does not fit the results), else the
    default where the results have its metric; checked against what the trials report so
    far, finished or not."""
    trials, contract = res.trials, res.contract
    metrics = (tables.metric_keys(trials, contract) if len(trials) else
               [k for k in contract.get("keys", {}) if k.startswith("eval/")])
    if text:
        try:
            return convergence.parse_rule(text, metrics)
        except RuleError as err:
            raise ResultsError(str(err)) from None
    try:
        return convergence.parse_rule(convergence.DEFAULT_RULE, metrics)
    except RuleError:
        return None


def convergence_summary(frame: pd.DataFrame, rule: Rule) -> str:
    return (f"A seed converges at the first evaluation where {convergence.rule_text(rule)} holds (the report's "
            f"`--converged` rule; default {convergence.DEFAULT_RULE}). A seed that never meets it within its budget, "
            "or diverged, has not converged: it counts as slower than every seed that did (in medians and in the "
            "Mann-Whitney test of the findings), and is drawn on the dashed line. A time is known to the resolution "
            "of the trial's own `eval_every`; two arms of different budgets are compared over the steps both had.")


ONSETS_NOTE = ("A seed gets good at the first evaluation that meets the convergence rule while it is not collapsed or diverged; after "
               "that, a collapse at some evaluation is a dip it may come back from, and it ends collapsed when its last evaluation is "
               "collapsed or it diverged (which time to converge counts as never converged). The mean share of evaluations after good "
               "that were collapsed says how long the seeds spent collapsed, dips included, where the last evaluation alone can fall "
               "either side of a dip. Every seed's course is in onsets.csv (collapsed_share per seed). The figure draws one line a seed "
               f"(up to {figures.ONSET_SEEDS} a panel): grey over its budget, then from a dot where it got good, green to its end or red "
               "when it ended collapsed, with an x at its first collapse after getting good; the table gives lower medians of steps.")


def convergence_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["model", "dataset", "regime", "treatment", "n"]].copy()
    out["converged"] = [f"{int(k)}/{int(n)} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]" for k, n, lo, hi in
                        frame[["converged", "n", "converged_lo", "converged_hi"]].itertuples(index=False)]
    out["median steps [95% CI]"] = [
        ("not reached" if math.isinf(m) else fmt(m)) + ("" if lo != lo else " [" + ", ".join(
            "not reached" if math.isinf(v) else fmt(v) for v in (lo, hi)) + "]")
        for m, lo, hi in frame[["steps_median", "steps_lo", "steps_hi"]].itertuples(index=False)]
    return clean(out)


def early_report(res: Results, out_dir: Path) -> Path:
    """A sweep with no finished trial yet: what is running, and nothing else to claim."""
    statuses = ", ".join(f"{v} {k}" for k, v in res.trials["status"].value_counts().sort_index().items())
    sections = [("Summary", "", [f"{len(res.trials)} trials ({statuses or 'none started'}); no trial has finished "
                                 "yet, so there is nothing to compare. Run the report again later.",
                                 *[f"Note: {n}" for n in res.notes]])]
    sections += [(f"Study as run: {s['location']}", "", Code(s["study"].strip(), "yaml")) for s in res.sources]
    sections.append((PROVENANCE, "", clean(provenance(res))))
    (out_dir / "REPORT.md").write_text(render_markdown(sections))
    (out_dir / "report.html").write_text(render_html(sections, out_dir))
    return out_dir / "REPORT.md"


PROVENANCE_KEYS = {"git_commit": "vi-sweeps commit", "torch": "torch", "ray": "Ray", "optuna": "Optuna",
                   "machine": "machine"}


def provenance(res: Results) -> pd.DataFrame:
    """Per results folder read: the commit of vi-sweeps, the versions of torch, Ray and Optuna and
    the machine kind that produced it (its versions.json), then the rest of versions.json."""
    rows = []
    for source in res.sources:
        v = dict(source["versions"] or {})
        runs = v.pop("runs", None)  # every run's record (vi_sweeps.engine.results.with_history): the top is the last one's
        if "machine" not in v and v:
            v["machine"] = ", ".join(x for x in (v.get("gpu", ""), "not recorded (versions.json before the field)") if x)
        row = {"results": source["location"]}
        row.update({label: v.pop(key, "not recorded" if source["versions"] else "no versions.json")
                    for key, label in PROVENANCE_KEYS.items()})
        row.update(v)
        if isinstance(runs, list):
            row["runs"] = len(runs)
        rows.append(row)
    return pd.DataFrame(rows)


def report_sections(res: Results, lay, table, effect, found, figs, metrics, at_glance=None) -> list[tuple[str, str, object]]:
    """(heading, figure name or '', body: a frame, a paragraph, or a list of bullets). The first
    screen: a short summary, every comparison at a glance (figure and compact table); then the
    findings' sentences per cell, how they are worded, and the evidence."""
    t = res.trials
    statuses = ", ".join(f"{v} {k}" for k, v in t["status"].value_counts().sort_index().items())
    rules = ", ".join(f"`{r}`" for r in sorted(t[config("collapse_rule")].dropna().unique()))
    small = int((table["n"] < SMALL_N).sum()) if len(table) else 0
    summary = [f"{len(t)} trials ({statuses}) in {len(table)} conditions; axes: "
               f"{', '.join(lay.conditions) or 'none'} (treatment: {lay.compare or 'none'}, baseline "
               f"{tables._label(lay.baseline) if lay.compare else '-'})."]
    if small:
        summary.append(f"**Warning: {small} of {len(table)} conditions have fewer than 10 seeds.**")
    summary += [f"Note: {n}" for n in res.notes]
    reading = [RULE,
               f"Collapse rule: {rules}. Collapse is counted under several definitions, always named: "
               + "; ".join(f"**{r}** = {tables.RULES[r]}" for r in tables.RULES if f"collapsed_{r}" in table)
               + ". A diverged trial counts as collapsed under every one, and as diverged; metric "
               "medians are over trials that did not diverge (their count is the n shown beside each median).",
               "Intervals: Wilson 95% for rates, percentile bootstrap 95% (2,000 resamples) for medians (only where "
               f"n >= {tables.MIN_N_INTERVAL}), Newcombe's hybrid score interval for differences of rates."]
    declared = claims.report_studies(res)
    answer = claims.report_sections(declared) or [(glance.ANSWER, "", glance.answer_sentences(
        at_glance if at_glance is not None else pd.DataFrame(), lay.compare, [int(n) for n in table.get("n", [])],
        searched=bool(suggested(res.trials).any())))]
    sections: list[tuple[str, str, object]] = [("Summary", "", summary), *answer, *interims.report_sections(declared)]
    if at_glance is not None and len(at_glance):
        sections += [(figs["at_a_glance"][0], "at_a_glance", None),
                     ("Findings at a glance", "", glance.glance_table(at_glance)),
                     ("", "", glance.glance_note(at_glance))]
    for cell, lines in findings_by_cell(found, lay):
        sections.append((f"Findings: {cell}" if cell else "Findings", "", lines))
    sections.append(("How the findings are worded", "", reading))
    sections += [(title, name, None) for name, (title, _) in figs.items() if name.startswith(("samples-", "evolution-"))]
    sections += [("Collapse rate at the last evaluation", "collapse_rate", collapse_summary(table, lay.compare)),
                 ("Collapse rate at any evaluation in the last half of training", "collapse_rate_late", None)]
    sections += [(figs[f"collapse_rate_{r}"][0], f"collapse_rate_{r}", None) for r in tables.DEFINITIONS
                 if f"collapse_rate_{r}" in figs]
    sections += [("Effect on collapse against the baseline, under every collapse definition", "", effect_summary(effect))]
    for m in metrics:
        name = tables.figure_name("metric", m.removeprefix("eval/"))
        sections.append((figs[name][0], name, res.contract.get("keys", {}).get(m, {}).get("note", "")))
    sections.append(("Metric medians by condition: median [bootstrap 95% CI] (n non-diverged)", "",
                     metric_summary(table, metrics, lay.compare)))
    for name in ("dose_response", "training_curves", "collapse_over_time", "loss_curves"):
        if name in figs:
            sections.append((figs[name][0], name, None))
    sections += [(f"Study as run: {s['location']}", "", Code(s["study"].strip(), "yaml")) for s in res.sources]
    sections.append((PROVENANCE, "", clean(provenance(res))))
    return sections


