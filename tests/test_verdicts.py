"""The claims' verdicts (analysis.verdicts) follow their stated rule on planted effects."""

import pandas as pd
import pytest

from analysis.claims_page import as_well_note
from analysis.load import load_results
from analysis.synthetic import synthetic_results
from analysis.verdicts import Claim, Study, _cells, claim_cells, decide, overall
from vi_contract import schema


def study_of(tmp_path, rates, seeds=20, regime=None, **kw):
    """The synthetic study of `rates`; with `regime`, also a constant axis of that name and value."""
    synthetic_results(tmp_path / "r", rates, seeds=seeds, **kw)
    if regime is not None:
        with_axis(tmp_path / "r", "regime", regime)
    res = load_results([str(tmp_path / "r")], warn=False)
    return Study("synthetic", res.trials, res.metrics, res.contract)


COLLAPSE = Claim("X", "lambda > 0 collapses less", "synthetic", {"bn": True, "g_steps": 1}, "collapse")


@pytest.mark.parametrize("rates, verdict", [
    ({0.0: 0.9, 5.0: 0.1, 50.0: 0.05}, "supported"),
    ({0.0: 0.1, 5.0: 0.9, 50.0: 0.95}, "contradicted"),
    ({0.0: 0.5, 5.0: 0.5, 50.0: 0.5}, "not decided at this n (no cell of 2 decided)"),
    ({0.0: 0.9, 5.0: 0.05, 50.0: 0.9}, "partly supported (1 of 2 cells; the rest not decided)"),
])
def test_a_collapse_claim_follows_the_planted_rates(tmp_path, rates, verdict):
    study = study_of(tmp_path, {(True, 1, lam): r for lam, r in rates.items()} | {(False, 5, 0.0): 0.9})
    cells = decide(COLLAPSE, pd.DataFrame(_cells(COLLAPSE, study)))
    assert list(cells["treatment"]) == ["lam 5", "lam 50"] and (cells["dataset"] == "ring8").all()
    assert overall(cells) == verdict, cells[["treatment value", "baseline value", "p_holm", "cell"]]
    # the other definitions are given beside the claim's own
    assert cells["other definitions"].str.contains("end ").all()


def test_a_claim_measured_in_two_studies_is_one_holm_family_over_both(tmp_path):
    # the paper's regime in a second study under its own axis values (bn_ablation_digits names it `regime`)
    claim = Claim("X2", "lambda > 0 collapses less", "first", {"bn": True, "g_steps": 1}, "collapse",
                  also=(("second", {"bn": False, "g_steps": 5}),))
    first = study_of(tmp_path / "a", {(True, 1, 0.0): 0.9, (True, 1, 5.0): 0.05, (False, 5, 0.0): 0.9})
    second = study_of(tmp_path / "b", {(False, 5, 0.0): 0.0, (False, 5, 5.0): 0.0, (True, 1, 0.0): 0.9}, seed=1)
    first.name, second.name = "first", "second"
    measured, cells = claim_cells(claim, {"first": first, "second": second})
    assert [m for m, _ in measured] == ["first", "second"] and list(cells["study"]) == ["first", "second"]
    assert list(cells["baseline value"].str.split(" = ").str[0]) == ["19/20", "0/20"]  # the realised late collapses
    # Holm over both cells: the smaller p is doubled
    assert cells["p_holm"].iloc[0] == pytest.approx(min(1.0, 2 * cells["p"].iloc[0]))
    assert overall(cells) == "partly supported (1 of 2 cells; the rest not decided)"
    # a study holding no trial of the claim's regime yet has not measured it
    ahead = Claim("X3", "", "first", {"bn": True, "g_steps": 1}, "collapse", also=(("second", {"bn": True, "g_steps": 5}),))
    assert [m for m, _ in claim_cells(ahead, {"first": first, "second": second})[0]] == ["first"]
    only, alone = claim_cells(claim, {"first": first})  # the second not measured yet: the first alone
    assert [m for m, _ in only] == ["first"] and alone["p_holm"].iloc[0] == pytest.approx(alone["p"].iloc[0])


def test_a_convergence_claim_finds_a_planted_speed_up(tmp_path):
    rates = {(False, 5, 0.0): 0.0, (False, 5, 5.0): 0.0}
    study = study_of(tmp_path, rates, seeds=12, converge_at={(False, 5, 0.0): 9, (False, 5, 5.0): 2})
    claim = Claim("Y", "faster", "synthetic", {"bn": False, "g_steps": 5}, "convergence", expect="faster")
    cells = decide(claim, pd.DataFrame(_cells(claim, study)))
    assert overall(cells) == "supported"
    assert cells["treatment value"].iloc[0] == "12/12 converged, median 200"
    assert cells["baseline value"].iloc[0] == "12/12 converged, median 900"


def test_does_as_well_needs_an_interval_below_the_margin(tmp_path):
    claim = Claim("Z", "as well", "synthetic", {}, "as_well", baselines=(0.0,), treatment=5.0)
    equal_many = study_of(tmp_path / "a", {(True, 1, 0.0): 0.0, (True, 1, 5.0): 0.0}, seeds=30)
    assert overall(decide(claim, pd.DataFrame(_cells(claim, equal_many)))) == "supported"  # 0/30 vs 0/30: [-0.11, +0.11]
    equal_few = study_of(tmp_path / "b", {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5}, seeds=8)
    assert overall(decide(claim, pd.DataFrame(_cells(claim, equal_few)))).startswith("not decided")
    worse = study_of(tmp_path / "c", {(True, 1, 0.0): 0.0, (True, 1, 5.0): 1.0}, seeds=20)
    assert overall(decide(claim, pd.DataFrame(_cells(claim, worse)))) == "contradicted"


def test_the_calibration_sets_mean_and_standard_error_beside_pacgans_row(tmp_path):
    import math

    from analysis.evidence import calibration

    study = study_of(tmp_path, {(True, 1, 0.0): 0.0}, seeds=4, dataset="grid25")
    study.done["eval/modes_lit"] = [17.0, 18.0, 19.0, 18.0]
    study.done["eval/hq_frac"] = 0.9
    study.done["eval/kl_uniform"] = 0.5
    (row,) = calibration(study).to_dict("records")
    assert row["modes (ours)"] == f"18 +- {math.sqrt(2 / 3) / 2:.2g}" and row["modes (PacGAN)"] == "17.3 +- 0.8"
    assert row["high quality % (ours)"] == "90 +- 0" and row["reverse KL (PacGAN)"] == "0.7 +- 0.07"


def test_a_study_without_regime_axes_is_one_cell_per_comparison_not_one_per_trial(tmp_path):
    claim = Claim("W", "as well", "synthetic", {}, "as_well", baselines=(0.0,), treatment=5.0)
    study = study_of(tmp_path, {(True, 1, 0.0): 0.2, (True, 1, 5.0): 0.2}, seeds=10)
    assert study.lay.regimes == [] and len(_cells(claim, study)) == 1  # it was 20 identical cells


def test_no_difference_of_times_where_neither_arm_converges(tmp_path):
    rates = {(False, 5, 0.0): 0.0, (False, 5, 5.0): 0.0}
    study = study_of(tmp_path, rates, seeds=6, converge_at={(False, 5, 0.0): 20, (False, 5, 5.0): 20})
    claim = Claim("Y", "faster", "synthetic", {"bn": False, "g_steps": 5}, "convergence", expect="faster")
    (cell,) = _cells(claim, study)
    assert cell["difference"] == "" and cell["treatment value"] == "0/6 converged, median not reached"  # it read +0 steps


def test_the_as_well_bound_uses_the_seeds_of_one_condition_not_of_pooled_regimes(tmp_path):
    study = study_of(tmp_path, {(True, 1, 0.0): 0.0, (True, 1, 5.0): 0.0, (False, 1, 0.0): 0.0, (False, 1, 5.0): 0.0},
                     seeds=10)
    # 10 seeds per condition: 0/10 vs 0/10 has a Newcombe upper bound of +0.28 (it said n = 20, +0.16)
    assert as_well_note(study).startswith("At n = 10 seeds per condition, equal rates of 0/10 give an upper bound of +0.28, "
                                          "above the margin of +0.2: equal rates cannot support")
    many = study_of(tmp_path / "many", {(True, 1, 0.0): 0.0, (True, 1, 5.0): 0.0}, seeds=30)
    assert "upper bound of +0.11, below the margin of +0.2: equal rates can support" in as_well_note(many)


def test_an_axis_named_regime_keeps_its_label_while_only_one_of_its_values_has_run():
    # a partly run bn_ablation_digits (only regime bn-1x1 started): its `regime` column read "all",
    # so the claims' regime=bn-1x1 matched no trial and the study's cells were silently missing
    from analysis import tables

    trials = pd.DataFrame({"config/model": "gan", "config/dataset": "stacked-digits", "axis/regime": "bn-1x1",
                           "config/lam": [0.0, 5.0], "config/seed": 0, "collapsed": False, "diverged": False})
    contract = {"axes": ["model", "dataset", "regime", "lam", "seed"], "compare": {"axis": "lam", "baseline": 0.0}}
    lay = tables.layout(trials, contract)
    assert lay.regimes == [] and list(tables.with_labels(trials, lay)["regime"]) == ["bn-1x1", "bn-1x1"]


@pytest.mark.slow
def test_the_claims_link_the_sample_panels_by_the_report_figures_file_names(tmp_path):
    # a data set whose name is not a file-name slug: the report writes samples-gan-ring-8.png,
    # CLAIMS.md looked for samples-gan-Ring_8.png, found none and showed no panel
    from analysis.claims_page import claims_markdown
    from analysis.report import build_report

    synthetic_results(tmp_path / "bn_ablation", {(True, 1, 0.0): 0.9, (True, 1, 5.0): 0.1}, seeds=6,
                      dataset="Ring_8", snapshots=True)
    with_axis(tmp_path / "bn_ablation", "phases", "1x1")  # the axis the claims read in bn_ablation
    build_report([str(tmp_path / "bn_ablation")], str(tmp_path / "bn_ablation" / "report"))
    assert (tmp_path / "bn_ablation" / "report" / "samples-gan-ring-8.png").exists()
    text = claims_markdown(tmp_path)
    assert ("The samples it rests on: [samples on Ring_8](bn_ablation/report/samples-gan-ring-8.png), "
            "[evolution on Ring_8](bn_ablation/report/evolution-gan-ring-8.png).") in text


def with_axis(folder, axis: str, value) -> None:
    """An exported folder with one more (constant) labelled axis in its trials and its contract."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(folder / schema.TRIALS_FILE)
    pq.write_table(table.append_column(f"axis/{axis}", pa.array([value] * len(table))), folder / schema.TRIALS_FILE)
    contract = json.loads((folder / schema.CONTRACT_FILE).read_text())
    contract["axes"].insert(contract["axes"].index("seed"), axis)
    contract["labelled"] = {**contract.get("labelled", {}), axis: {value: {}}}
    (folder / schema.CONTRACT_FILE).write_text(json.dumps(contract))


def test_an_axis_named_regime_stays_in_the_label_beside_another_varying_axis():
    # regime with one value beside a varying `bn`: the label read "bn=True" / "bn=False", the
    # regime's own value lost, so a claim's regime=bn-1x1 matched no trial
    from analysis import tables

    trials = pd.DataFrame({"config/model": "gan", "config/dataset": "stacked-digits", "axis/regime": "bn-1x1",
                           "config/bn": [True, False] * 2, "config/lam": [0.0, 0.0, 5.0, 5.0], "config/seed": 0,
                           "collapsed": False, "diverged": False})
    contract = {"axes": ["model", "dataset", "regime", "bn", "lam", "seed"], "compare": {"axis": "lam", "baseline": 0.0}}
    labels = list(tables.with_labels(trials, tables.layout(trials, contract))["regime"])
    assert labels == ["regime=bn-1x1, bn=True", "regime=bn-1x1, bn=False"] * 2
    both = trials.assign(**{"axis/regime": ["bn-1x1", "bn-1x1", "nobn-5x5", "nobn-5x5"], "config/lam": [0.0, 5.0] * 2})
    labels = list(tables.with_labels(both, tables.layout(both, contract))["regime"])
    assert labels == ["regime=bn-1x1, bn=True", "regime=bn-1x1, bn=False", "regime=nobn-5x5, bn=True",
                      "regime=nobn-5x5, bn=False"]


def test_a_claim_finds_its_regime_by_the_axis_value_not_by_the_label(tmp_path):
    # the label of a regime axis beside a varying bn is "regime=bn-1x1, bn=True, ...": matched
    # against it, the claim's regime=bn-1x1 found no trial and the study measured nothing
    study = study_of(tmp_path, {(True, 1, 0.0): 0.9, (True, 1, 5.0): 0.1, (False, 1, 0.0): 0.5, (False, 1, 5.0): 0.5},
                     seeds=10, regime="bn-1x1")
    claim = Claim("X", "lower", "synthetic", {"regime": "bn-1x1", "bn": True}, "collapse", rule="end")
    cells = _cells(claim, study)
    assert [(c["dataset"], c["treatment"], c["baseline value"].split(" = ")[0].split("/")[1]) for c in cells] == [
        ("ring8", "lam 5", "10")]  # the bn=True arm only: 10 seeds


def test_a_claim_never_pools_an_axis_its_regime_does_not_name_and_a_compare_axis_named_regime_is_found(tmp_path):
    # where = {regime: bn-1x1} beside a varying bn pooled the bn=True and bn=False arms into one
    # cell (2/20 against 14/20); and a compare axis named regime was relabelled "all": 0 cells
    study = study_of(tmp_path, {(True, 1, 0.0): 0.9, (True, 1, 5.0): 0.1, (False, 1, 0.0): 0.5, (False, 1, 5.0): 0.1},
                     seeds=10, regime="bn-1x1")
    cells = _cells(Claim("X", "lower", "synthetic", {"regime": "bn-1x1"}, "collapse", rule="end"), study)
    assert sorted(c["regime"] for c in cells) == ["bn=False", "bn=True"]
    assert all("/10 = " in c["baseline value"] and "/10 = " in c["treatment value"] for c in cells), cells  # not /20
    trials = study.trials.assign(**{"axis/regime": study.trials["config/lam"].map({0.0: "off", 5.0: "on"})}).drop(
        columns="config/lam")
    contract = {**study.contract, "axes": [a for a in study.contract["axes"] if a != "lam"],
                "compare": {"axis": "regime", "baseline": "off"}}
    by_regime = Study("synthetic", trials, study.metrics, contract)
    cells = _cells(Claim("Y", "lower", "synthetic", {"bn": True}, "collapse", rule="end", baselines=("off",)), by_regime)
    assert [(c["treatment"], c["baseline"]) for c in cells] == [("regime on", "regime off")]


def test_a_late_collapse_claim_whose_baseline_never_got_good_reads_premise_not_reached():
    """C1-long (issue 25): where no lambda = 0 seed ever met the convergence rule, a late collapse
    cannot show; the cell says so instead of 'inconclusive', and so does the claim when every cell does."""
    import pandas as pd

    from analysis.verdicts import CLAIMS, decide, overall

    claim = next(c for c in CLAIMS if c.key == "C1-long")
    cells = pd.DataFrame({"p": [0.5, 0.001], "sign": [-1.0, -1.0], "treatment got good": ["3/20", "9/20"],
                          "baseline got good": ["0/20", "0/20"]})
    decided = decide(claim, cells)
    assert list(decided["cell"]) == ["premise not reached"] * 2
    assert overall(decided).startswith("premise not reached at this budget")
    reached = decide(claim, cells.assign(**{"baseline got good": ["0/20", "7/20"]}))
    assert list(reached["cell"]) == ["premise not reached", "supports"]
    # a treatment none of whose seeds got good prevents no collapse after a good phase either
    unreached = decide(claim, cells.assign(**{"baseline got good": ["7/20", "7/20"], "treatment got good": ["0/20", "5/20"]}))
    assert list(unreached["cell"]) == ["premise not reached", "supports"]


def test_c1_long_counts_collapse_after_a_good_phase_over_the_seeds_that_got_good(tmp_path):
    """Issue 25: 'late' counted any collapse in the second half, also of a seed that never got
    good (on bn_long's grid25 at 20,000 steps: 16/20 late collapses at lambda 0, of which 10 seeds
    got good and 3 collapsed after); C1-long counts collapses after the first good evaluation,
    over the seeds that got good."""
    from analysis.verdicts import AFTER_GOOD, CLAIMS

    claim = next(c for c in CLAIMS if c.key == "C1-long")
    assert claim.rule == AFTER_GOOD
    # lambda 0: half its seeds get good at the 2nd evaluation, the rest never (past 10 evaluations);
    # lambda 5: every seed gets good at the 2nd; both collapse with probability 0.8 from a random evaluation on
    at = {(True, 1, 0.0): [2] * 10 + [11] * 10, (True, 1, 5.0): [2] * 20}
    study = study_of(tmp_path, {(True, 1, 0.0): 0.8, (True, 1, 5.0): 0.8}, seeds=20, converge_at=at)
    cells = pd.DataFrame(_cells(claim, study))
    done = study.done
    for value, column in ((0.0, "baseline"), (5.0, "treatment")):
        arm = done[done["config/lam"] == value]
        good = arm[arm["good_at"] < float("inf")]
        fell = int(good["ended_collapsed"].sum())
        assert cells[f"{column} got good"].iloc[0] == f"{len(good)}/20"
        assert cells[f"{column} value"].iloc[0].startswith(f"{fell}/{len(good)} = ")
    assert 0 < len(done[(done["config/lam"] == 0.0) & (done["good_at"] < float("inf"))]) <= 10
    assert "late " in cells["other definitions"].iloc[0]  # the second-half rule beside it, over all seeds


def test_premise_counts_the_seeds_that_got_good_even_if_they_diverged_after():
    """A seed that got good and then diverged (which after_good counts as ending collapsed) was
    counted as never having got good (steps_to_converge is inf for a diverged seed): a cell of
    6/6 collapses after good read 'premise not reached' with 'baseline got good 0/10'."""
    from analysis.verdicts import _reached

    inf = float("inf")
    arm = pd.DataFrame({"good_at": [100.0, inf, 300.0, float("nan")], "steps_to_converge": [inf, inf, 300.0, float("nan")]})
    assert _reached(arm) == "2/4"


def test_cells_whose_premise_is_not_reached_are_left_out_of_the_holm_family():
    from analysis.verdicts import CLAIMS

    claim = next(c for c in CLAIMS if c.key == "C1-long")
    cells = pd.DataFrame({"p": [1.0, 0.02, 0.03], "sign": [-1.0] * 3, "treatment got good": ["0/20", "9/20", "8/20"],
                          "baseline got good": ["5/20"] * 3})
    decided = decide(claim, cells)
    assert decided["p_holm"].tolist() == pytest.approx([1.0, 0.04, 0.04])  # over 2 tests, not 3 (0.06, 0.06)
    assert list(decided["cell"]) == ["premise not reached", "supports", "supports"]


def test_c1_long_without_the_convergence_metric_reads_premise_not_reached(tmp_path):
    """A bn_long export without modes_frac raised KeyError '_after_good'."""
    import pyarrow.parquet as pq

    from analysis.claims_page import claims_document

    synthetic_results(tmp_path / "bn_long", {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5}, seeds=6)
    for name in (schema.TRIALS_FILE, schema.METRICS_FILE):
        table = pq.read_table(tmp_path / "bn_long" / name)
        pq.write_table(table.drop(["eval/modes_frac"]), tmp_path / "bn_long" / name)
    c1 = claims_document(tmp_path)[0].split("## C1-long")[1].split("## C4a")[0]
    assert "**Verdict: premise not reached at this budget" in c1 and "| 0/6 | 0/6 |" in c1


def test_a_regime_axis_with_one_value_run_so_far_still_names_the_cell(tmp_path):
    """stabilisers_digits exported while only its bn-1x1 regime had finished showed an empty
    regime in C4's rows ('stabilisers_digits | stacked-digits |  |')."""
    study = study_of(tmp_path, {(True, 1, 0.0): 0.9, (True, 1, 5.0): 0.1}, seeds=10, regime="bn-1x1")
    cells = _cells(Claim("X", "lower", "synthetic", {}, "collapse", rule="end"), study)
    assert [c["regime"] for c in cells] == ["regime=bn-1x1"]


def test_the_cost_section_shows_the_committed_measurement_and_refuses_another_table(tmp_path):
    from analysis.claims_page import COST_FILE, claims_document
    from vi_contract.read import ResultsError

    stabiliser_export(tmp_path / "stabilisers", {"none": 0.9, "anchor": 0.3})
    assert "C4's cost" not in claims_document(tmp_path)[0]  # nothing measured: no section
    good = pd.DataFrame({"study": "stabilisers", "dataset": "ring8", "regime": "bn-1x1", "stabiliser": ["none", "r1"],
                         "pack_size": 20, "ms_per_iteration": [40.0, 60.0], "ms_per_seed_iteration": [2.0, 3.0],
                         "x_none": [1.0, 1.5], "rounds": 3, "measured": "2026-12-06, commit abc, 2 cores"})
    good.to_csv(tmp_path / COST_FILE, index=False)
    section = claims_document(tmp_path)[0].split("## C4's cost")[1]
    assert "| stabilisers | ring8 | bn-1x1 | 20 | 2 (1.00x) | 3 (1.50x) |" in section
    assert "2026-12-06, commit abc, 2 cores, best of 3 rounds" in section
    (tmp_path / COST_FILE).write_text("study,regime\nstabilisers,bn-1x1\n")
    with pytest.raises(ResultsError, match=f"{COST_FILE}: not the table .* writes \\(missing dataset, stabiliser"):
        claims_document(tmp_path)


@pytest.mark.parametrize("change, why", [
    ({"ms_per_seed_iteration": ["fast", 3.0]}, "ms_per_seed_iteration must be a positive number"),
    ({"x_none": [1.0, float("nan")]}, "x_none must be a positive number"),
    ({"pack_size": [20, 2.5]}, "pack_size must be a positive whole number"),
    ({"stabiliser": ["none", "study"]}, "stabiliser 'study' is the name of a column"),
    ({"stabiliser": ["none", "<b>r1</b>"]}, "stabiliser '<b>r1</b>' is not a plain name"),
    ({"regime": ["bn-1x1", ""]}, "a row without a regime"),
    ({"study": "foo"}, "study 'foo'; valid: stabilisers, stabilisers_digits"),
    ({"stabiliser": ["r1", "r1"]}, "an arm measured twice"),
])
def test_a_malformed_cost_table_is_refused_in_one_line_and_nothing_is_written(tmp_path, change, why):
    """Found by a hostile review: these gave tracebacks (a text time, a blank pack size) or wrong
    tables (a stabiliser named like a column overwrote it; markup reached CLAIMS.md)."""
    from analysis.__main__ import main
    from analysis.claims_page import COST_FILE

    stabiliser_export(tmp_path / "stabilisers", {"none": 0.9, "anchor": 0.3})
    pd.DataFrame({"study": "stabilisers", "dataset": "ring8", "regime": "bn-1x1", "stabiliser": ["none", "r1"],
                  "pack_size": 20, "ms_per_iteration": [40.0, 60.0], "ms_per_seed_iteration": [2.0, 3.0],
                  "x_none": [1.0, 1.5], "rounds": 3, "measured": "today"}).assign(**change).to_csv(
        tmp_path / COST_FILE, index=False)
    assert main(["claims", str(tmp_path)]) == 2
    assert not (tmp_path / "CLAIMS.md").exists()
    from analysis.claims_page import read_cost
    from vi_contract.read import ResultsError

    with pytest.raises(ResultsError) as err:
        read_cost(tmp_path / COST_FILE)
    assert why in str(err.value) and "\n" not in str(err.value)


def stabiliser_export(folder, rates: dict[str, float], seeds=20):
    """A synthetic `stabilisers` export: lambda's values relabelled as stabilisers (compare axis
    `stabiliser`, baseline none), one planted late-collapse rate per stabiliser."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(rates)
    synthetic_results(folder, {(True, 1, float(i)): rate for i, rate in enumerate(rates.values())}, seeds=seeds)
    table = pq.read_table(folder / schema.TRIALS_FILE)
    label = [names[int(v)] for v in table.column("config/lam").to_pylist()]
    pq.write_table(table.append_column("axis/stabiliser", pa.array(label)), folder / schema.TRIALS_FILE)
    contract = json.loads((folder / schema.CONTRACT_FILE).read_text())
    contract["labelled"] = {"stabiliser": {n: {} for n in names}}
    contract["axes"] = ["model", "dataset", "bn", "g_steps", "stabiliser", "seed"]
    contract["compare"] = {"axis": "stabiliser", "baseline": "none"}
    (folder / schema.CONTRACT_FILE).write_text(json.dumps(contract))


def test_c4_is_decided_against_none_and_the_anchor_and_drawn_as_cells_by_stabilisers(tmp_path):
    from matplotlib.patches import Rectangle

    from analysis.claims_page import GRID_FIGURE, claims_document, write_claims

    stabiliser_export(tmp_path / "stabilisers", {"none": 0.95, "anchor": 0.3, "r1": 0.95, "sn": 0.95})
    text, figures = claims_document(tmp_path)
    c4a = text.split("## C4a")[1].split("## C4b")[0]
    assert "stabiliser anchor" in c4a and "stabiliser r1" in c4a
    fig = figures[GRID_FIGURE]
    panels = [ax.get_title() for ax in fig.axes]
    assert panels == ["late collapse against none", "late collapse against anchor"]
    left = fig.axes[0]
    starred = [t.get_text() for t in left.texts if t.get_text().endswith("*")]
    assert len(starred) == 1 and float(starred[0][:-1]) < -0.4  # the anchor, and only it, lowers it significantly
    frames = [p for p in left.patches if isinstance(p, Rectangle) and not p.get_fill()]
    assert len(frames) == 1
    right = fig.axes[1]  # against the anchor, r1 and sn collapse more: red, and none of them lower
    assert all(float(t.get_text().rstrip("*")) > 0 for t in right.texts if t.get_text() != "baseline")
    path = write_claims(tmp_path)
    assert (path.parent / GRID_FIGURE).stat().st_size > 10_000 and f"]({GRID_FIGURE})" in path.read_text()
