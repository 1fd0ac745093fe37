import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis import ranks, stats, tables
from analysis.findings import findings
from analysis.load import load_results
from analysis.report import build_report
from analysis.synthetic import synthetic_results
from tests.conftest import ROOT
from vi_contract import columns, schema
from vi_contract.read import ResultsError

RATES = {(True, 1, 0.0): 0.6, (True, 1, 5.0): 0.2, (False, 5, 0.0): 0.8, (False, 5, 5.0): 0.3}


def test_wilson_interval_against_reference():
    lo, hi = stats.wilson(3, 10)
    assert (lo, hi) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert stats.wilson(0, 10)[0] == 0.0 and stats.wilson(10, 10)[1] == 1.0


def test_newcombe_difference_against_newcombe_1998():
    d, lo, hi = stats.newcombe_difference(56, 70, 48, 80)
    assert (d, lo, hi) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_fisher_exact_reference_value():
    assert stats.fisher_p(6, 8, 1, 5) == pytest.approx(0.102564, abs=1e-6)


def test_holm_adjustment_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(stats.holm([0.2, float("nan")])[1]) and stats.holm([0.2, float("nan")])[0] == 0.2


def test_mann_whitney_against_scipy_and_a_hand_count():
    # x entirely above y: U = 0 for y, exact two-sided p = 2 / C(6, 3) = 0.1
    assert stats.mann_whitney_p([4, 5, 6], [1, 2, 3]) == pytest.approx(0.1)


def test_bootstrap_interval_covers_the_true_median():
    x = np.random.default_rng(3).normal(5.0, 1.0, 400)
    med, lo, hi = stats.bootstrap_median(x)
    assert lo < 5.0 < hi and lo < med < hi and hi - lo < 0.4


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    return folder, synthetic_results(folder, RATES, seeds=200).rename(columns=columns.name_of)


def condition_table(folder):
    res = load_results([str(folder)])
    return tables.condition_table(res.trials, res.metrics, res.contract)


def test_condition_table_counts_and_intervals(synthetic):
    folder, truth = synthetic
    table = condition_table(folder).set_index(["regime", "treatment"])
    assert len(table) == 4 and (table["n"] == 200).all()
    for (bn, g, lam), rate in RATES.items():
        row = table.loc[(f"bn={bn}, g_steps={g}", f"{lam:g}")]
        sub = truth[(truth.bn == bn) & (truth.g_steps == g) & (truth.lam == lam)]
        k = int((sub.collapsed | sub.diverged).sum())
        assert row["collapsed_end"] == k and row["end_rate"] == k / 200
        assert (row["end_lo"], row["end_hi"]) == pytest.approx(stats.wilson(k, 200))
        assert row["end_lo"] < rate < row["end_hi"]  # holds for this seed; 95% in general
        # medians exclude diverged trials and say over how many
        assert row["fd_2d_n"] == 200 - int(sub.diverged.sum())


def test_effect_finds_the_planted_drop_and_the_findings_say_so(synthetic):
    folder, _ = synthetic
    res = load_results([str(folder)])
    lay = tables.layout(res.trials, res.contract)
    effect = tables.effect_table(tables.condition_table(res.trials, res.metrics, res.contract), lay)
    assert len(effect) == 2
    assert (effect["end_diff"] < 0).all() and (effect["end_hi"] < 0).all() and (effect["end_fisher_p"] < 1e-4).all()
    found = findings(tables.with_labels(res.trials, lay), effect, lay, res.contract["keys"])
    assert found["collapse"].str.startswith("lower collapse").all()
    assert found["collapse"].str.contains(r"lower collapse \(-0\.\d+, 95% interval -\d\.\d+ to [-+]\d\.\d+\)").all()
    assert found["collapse"].str.contains("significant at 5% \\(Fisher p = ").all()
    assert (found["warning"] == "").all()  # n = 200


def test_a_planted_null_is_not_called_significant_and_small_n_is_flagged(tmp_path):
    synthetic_results(tmp_path, {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5}, seeds=6, seed=1)
    res = load_results([str(tmp_path)])
    lay = tables.layout(res.trials, res.contract)
    effect = tables.effect_table(tables.condition_table(res.trials, res.metrics, res.contract), lay)
    found = findings(tables.with_labels(res.trials, lay), effect, lay, res.contract["keys"])
    assert len(found) == 1
    assert found["collapse"].iloc[0].startswith("collapse not decided at n = 6 vs 6")
    assert found["quality"].iloc[0].startswith("fd_2d not decided")
    assert found["warning"].iloc[0] == "n < 10: only large effects are detectable"


def test_a_planted_quality_effect_is_found_with_its_direction(tmp_path):
    rates = {(True, 1, 0.0): 0.0, (True, 1, 5.0): 0.0}
    synthetic_results(tmp_path, rates, seeds=30, metric_shift={(True, 1, 5.0): -1.0})
    res = load_results([str(tmp_path)])
    lay = tables.layout(res.trials, res.contract)
    effect = tables.effect_table(tables.condition_table(res.trials, res.metrics, res.contract), lay)
    found = findings(tables.with_labels(res.trials, lay), effect, lay, res.contract["keys"])
    assert found["quality"].iloc[0].startswith("better fd_2d (Hodges-Lehmann shift -1")
    assert found["quality_p"].iloc[0] < 1e-6
    assert found["collapse"].iloc[0].startswith("collapse not decided at n = 30 vs 30")


def test_the_wording_explains_an_interval_that_disagrees_with_the_exact_test():
    from analysis.findings import collapse_wording

    # n = 2 per arm, 0/2 vs 2/2: Newcombe's interval excludes 0 while Fisher's p = 0.33
    d, lo, hi = stats.newcombe_difference(0, 2, 2, 2)
    p = stats.fisher_p(0, 2, 2, 2)
    assert hi < 0 and p == pytest.approx(1 / 3)
    text = collapse_wording(d, lo, hi, p, 2, 2)
    assert text.startswith("collapse not decided at n = 2 vs 2")
    assert "the interval excludes 0 but the test does not reject, so no difference is claimed" in text


def test_the_quality_wording_gives_its_interval_and_explains_a_disagreement():
    from analysis.findings import quality_wording

    # significant, with the interval shown; and one whose median interval still spans 0
    assert quality_wording("fd_2d", "lower", -1.0, -1.2, -0.8, 1e-4, 20, 20) == (
        "better fd_2d (Hodges-Lehmann shift -1, 95% interval -1.2 to -0.8), significant at 5% (Mann-Whitney p = 0.0001)")
    assert "still spans 0" in quality_wording("fd_2d", "lower", -0.1, -0.3, +0.05, 0.01, 20, 20)
    # three against three: the exact test cannot reject (p = 0.1) and the exact interval is unbounded, so the
    # two agree where the bootstrap of medians excluded 0 (hi < 0) beside p = 0.1
    x, y = [1.0, 1.1, 1.2], [1.5, 1.6, 1.7]
    assert stats.median_difference(x, y)[2] < 0
    d, lo, hi = ranks.hodges_lehmann(x, y)
    p = stats.mann_whitney_p(x, y)
    assert p == pytest.approx(0.1) and (lo, hi) == (-math.inf, math.inf)
    text = quality_wording("fd_2d", "lower", d, lo, hi, p, 3, 3)
    assert text.startswith("fd_2d not decided at n = 3 vs 3: the data exclude no change of any size")


def test_collapse_share_over_time_rises_to_the_final_rate(synthetic):
    folder, _ = synthetic
    res = load_results([str(folder)])
    curves = tables.over_time(res.trials, res.metrics, "eval/fd_2d", res.contract)
    final = curves[curves["step"] == curves["step"].max()].set_index(["regime", "treatment"])
    table = tables.condition_table(res.trials, res.metrics, res.contract).set_index(["regime", "treatment"])
    assert np.allclose(final["collapsed_share"], table.loc[final.index, "end_rate"])
    first = curves[curves["step"] == 100]
    assert (first["collapsed_share"].values <= final["collapsed_share"].values).all()


def test_curves_stop_at_each_trials_budget_and_show_only_scheduled_steps(tmp_path):
    # two budgets (1000 and 3000 iterations) in one condition, and one trial diverging at step
    # 1234, between evaluations. v1 forward-filled the short trials to 3000 (n = 8 at step 3000
    # instead of 4) and drew a point at step 1234.
    frames = []
    for iterations in (1000, 3000):
        folder = tmp_path / f"b{iterations}"
        frames.append(synthetic_results(folder, {(True, 1, 0.0): 0.0}, seeds=4, evaluations=iterations // 100))
    res = load_results([str(tmp_path / "b1000"), str(tmp_path / "b3000")])
    metrics = res.metrics.copy()
    victim = res.trials.loc[res.trials["config/iterations"] == 3000, "trial_id"].iloc[0]
    keep = ~((metrics["trial_id"] == victim) & (metrics["step"] > 1000))
    metrics = pd.concat([metrics[keep], pd.DataFrame([{"trial_id": victim, "step": 1234, "collapsed": True,
                                                       "diverged": True}])], ignore_index=True)
    trials = res.trials.copy()
    curves = tables.over_time(trials, metrics, "eval/fd_2d", res.contract)
    assert 1234 not in set(curves["step"])
    assert curves.loc[curves["step"] == 3000, "n"].sum() == 4  # the diverged trial counts, as collapsed
    assert curves.loc[curves["step"] == 3000, "collapsed_share"].sum() == 0.25
    assert curves.loc[curves["step"] == 1000, "n"].sum() == 8
    assert curves.loc[curves["step"] == 2000, "n"].sum() == 4
    # the median at 3000 is over the 3 seeds with a value, and says so (n counted the diverged one too)
    assert curves.loc[curves["step"] == 3000, "n_median"].sum() == 3


def test_an_iterations_axis_keeps_its_budgets_apart(tmp_path):
    # v1's consolidation overwrote `iterations` with the steps done and pooled the budgets:
    # n = 8 per lam instead of n = 4 per (budget, lam).
    from vi_contract.store import Store
    from vi_contract.tables import Consolidation, trial_table

    store = Store.open(str(tmp_path / "r"))
    (tmp_path / "r" / schema.CONTRACT_FILE).write_text(json.dumps({"axes": ["model", "dataset", "iterations", "lam", "seed"]}))
    for iterations in (1000, 3000):
        for lam in (0.0, 5.0):
            for seed in range(4):
                config = {"trial_id": f"t{iterations}-{lam}-{seed}", "model": "gan", "dataset": "ring8", "seed": seed,
                          "lam": lam, "iterations": iterations, "eval_every": 500, "collapse_rule": "modes_frac<0.5"}
                rows = [{"step": s, "wall_s": 1.0, "eval/modes_frac": 1.0, "collapsed": False, "diverged": False}
                        for s in range(500, iterations + 1, 500)]
                store.write_table(schema.trial_file(config["trial_id"]), trial_table(config, {}, rows, "finished"))
    Consolidation(store).write()
    written = pq.read_table(tmp_path / "r" / schema.TRIALS_FILE).to_pandas()
    assert sorted(written["config/iterations"].unique()) == [1000, 3000]
    assert (written["steps_done"] == written["config/iterations"]).all()
    res = load_results([str(tmp_path / "r")])
    table = tables.condition_table(res.trials, res.metrics, res.contract)
    assert len(table) == 4 and (table["n"] == 4).all()


def test_a_key_missing_from_an_older_folder_takes_its_documented_default(tmp_path):
    # Folder a predates the `bn` key; folder b has bn = False for half its trials. v1 merged
    # the missing-bn trials with bn = False (pandas nunique drops NaN): 8 trials in one condition.
    a = synthetic_results(tmp_path / "a", {(True, 1, 0.0): 0.5}, seeds=4)
    synthetic_results(tmp_path / "b", {(False, 1, 0.0): 0.5, (True, 1, 0.0): 0.5}, seeds=4, seed=7)
    table = pq.read_table(tmp_path / "a" / schema.TRIALS_FILE)
    pq.write_table(table.drop(["config/bn"]).replace_schema_metadata(table.schema.metadata), tmp_path / "a" / schema.TRIALS_FILE)
    res = load_results([str(tmp_path / "a"), str(tmp_path / "b")])
    assert any("no `config/bn` column; filled with its documented default True" in n for n in res.notes)
    counts = tables.condition_table(res.trials, res.metrics, res.contract).groupby("regime")["n"].sum().to_dict()
    assert counts == {"bn=False": 4, "bn=True": 4 + len(a)}
    # with no declared default, the missing value is its own condition, never merged
    contract = {**res.contract, "config": {}}
    raw = load_results([str(tmp_path / "b")])
    older = raw.trials.drop(columns=["config/bn"]).assign(trial_id=lambda f: "old-" + f["trial_id"])
    both = pd.concat([raw.trials, older], ignore_index=True)
    metrics = pd.concat([raw.metrics, raw.metrics.assign(trial_id="old-" + raw.metrics["trial_id"])], ignore_index=True)
    split = tables.condition_table(both, metrics, contract)
    assert sorted(split["n"].tolist()) == [4, 4, 8] and "bn=nan" in set(split["regime"])


@pytest.mark.slow
def test_report_writes_every_figure_links_it_and_has_no_empty_or_repeated_columns(tmp_path):
    folder = tmp_path / "results"
    synthetic_results(folder, RATES, seeds=12, snapshots=True)
    path = build_report([str(folder)], str(tmp_path / "rep"))
    text = path.read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    pngs = sorted(p.stem for p in (tmp_path / "rep").glob("*.png"))
    assert {"collapse_rate", "collapse_rate_late", "metric-fd-2d", "metric-modes-frac", "collapse_over_time",
            "training_curves", "loss_curves", "samples-gan-ring8", "evolution-gan-ring8"} <= set(pngs)
    for name in pngs:
        assert (tmp_path / "rep" / f"{name}.svg").exists() and f"({name}.png)" in text
    assert html.count("data:image/png;base64,") == len(pngs)
    # sample points are a picture inside the SVG, not a path per point (2.9 MB for 120 trials of bn_ablation)
    assert "<image" in (tmp_path / "rep" / "samples-gan-ring8.svg").read_text()
    assert text.index("## Findings") < text.index("## Collapse rate at the last evaluation")
    assert "modes_frac<0.5" in text and "significant at 5%" in text
    for csv in ("conditions", "effects", "findings", "curves", "convergence"):
        frame = pd.read_csv(tmp_path / "rep" / f"{csv}.csv")
        assert not frame.isna().all().any(), csv  # no all-empty column
        header = (tmp_path / "rep" / f"{csv}.csv").read_text().splitlines()[0].split(",")
        assert len(header) == len(set(header)), csv  # read_csv would have renamed a repeat to `a.1`
        # no quantity twice under two names (v1 had fd_median beside fd_2d_median, and lam beside its label)
        assert not ({"fd_median", "fd_lo", "fd_hi"} & set(frame.columns)), csv
        assert not ({"lam", "treatment"} <= set(frame.columns)), csv
    lines = text.splitlines()  # the tables of REPORT.md: unique headers, no empty column
    tables_md = [i for i, line in enumerate(lines) if line.startswith("|---")]
    assert len(tables_md) >= 5
    for at in tables_md:
        head = [c.strip() for c in lines[at - 1].strip("|").split("|")]
        assert len(head) == len(set(head)), head
        end = next((i for i in range(at + 1, len(lines)) if not lines[i].startswith("|")), len(lines))
        body = [[c.strip() for c in row.strip("|").split("|")] for row in lines[at + 1:end]]
        assert body and all(any(r[j] for r in body) for j in range(len(head))), head


def test_a_linked_report_refers_to_its_pngs_and_is_the_embedded_one_without_the_pictures(tmp_path):
    from analysis.render import render_html

    (tmp_path / "fig.png").write_bytes(b"\x89PNG" + bytes(3000))
    sections = [("Collapse rate", "fig", ["a finding"]), ("Notes", "", "text")]
    embedded, linked = (re.sub(r"generated [^<]*", "", render_html(sections, tmp_path, link_figures=link))
                        for link in (False, True))
    assert "data:image/png;base64," in embedded and len(embedded) > 4000
    assert "data:image/png;base64," not in linked and "src='fig.png'" in linked and len(linked) < 1500
    # everything but the picture is the same page
    assert embedded.split("<img")[0] == linked.split("<img")[0]
    assert embedded.split("<img")[1].split(">", 1)[1] == linked.split("<img")[1].split(">", 1)[1]


@pytest.mark.slow
def test_missing_column_and_wrong_version_are_clear_errors(synthetic, tmp_path):
    folder, _ = synthetic
    table = pq.read_table(folder / schema.TRIALS_FILE)
    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(table.drop(["config/collapse_rule"]).replace_schema_metadata(table.schema.metadata), bad / schema.TRIALS_FILE)
    pq.write_table(pq.read_table(folder / schema.METRICS_FILE), bad / schema.METRICS_FILE)
    with pytest.raises(ResultsError, match="missing column"):
        load_results([str(bad)])
    pq.write_table(table.replace_schema_metadata({schema.SCHEMA_KEY: b"99"}), bad / schema.TRIALS_FILE)
    with pytest.raises(ResultsError, match="schema version '99'"):
        load_results([str(bad)])
    r = subprocess.run([sys.executable, "-m", "analysis", "report", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "schema version" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_analysis_runs_without_torch_or_ray(synthetic, tmp_path):
    folder, _ = synthetic
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'ray', 'vi_sweeps'): raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from analysis.__main__ import main\n"
            f"code = main(['report', {str(folder)!r}, '--out', {str(tmp_path / 'r')!r}])\n"
            f"assert main(['claims', {str(tmp_path)!r}]) == 2\n"  # no exported study there: refused, but imported
            "assert not {'torch', 'ray', 'vi_sweeps'} & set(sys.modules)\n"
            "sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "r" / "REPORT.md").exists() and not (tmp_path / "CLAIMS.md").exists()


def test_several_results_folders_combine(tmp_path):
    a = synthetic_results(tmp_path / "a", {(True, 1, 0.0): 0.5}, seeds=5)
    b = synthetic_results(tmp_path / "b", {(True, 1, 0.0): 0.5}, seeds=5, dataset="grid25")
    res = load_results([str(tmp_path / "a"), str(tmp_path / "b")])
    assert len(res.trials) == len(a) + len(b)
    assert set(tables.condition_table(res.trials, res.metrics, res.contract)["dataset"]) == {"ring8", "grid25"}


@pytest.mark.slow
def test_the_v1_measurement_reads_through_the_shim_and_reports(tmp_path):
    folder = ROOT / "docs" / "measurements" / "bn_ablation_ring8_5seeds"
    res = load_results([str(folder)])
    assert any("schema version 1" in n for n in res.notes)
    assert len(res.trials) == 40 and (res.trials["status"] == "finished").all()
    assert (res.trials["steps_done"] == 5000).all() and (res.trials["config/iterations"] == 5000).all()
    table = tables.condition_table(res.trials, res.metrics, res.contract)
    assert set(table["regime"]) == {"bn-1x1", "nobn-5x5"} and (table["n"] == 5).all()
    assert build_report([str(folder)], str(tmp_path / "r")).exists()


@pytest.mark.slow
def test_an_exported_folder_is_small_and_reports_exactly_as_the_original(tmp_path):
    from analysis.export import export_results

    synthetic_results(tmp_path / "full", RATES, seeds=12, snapshots=True)
    counts = export_results(str(tmp_path / "full"), tmp_path / "small")
    assert counts["trials"] == 48 and 0 < counts["snapshots"] < 48 * 10
    assert len(list((tmp_path / "small" / "samples").rglob("*.npy"))) == counts["snapshots"]
    build_report([str(tmp_path / "full")], str(tmp_path / "a"))
    build_report([str(tmp_path / "small")], str(tmp_path / "b"))
    for name in ("conditions.csv", "effects.csv", "findings.csv", "samples-gan-ring8.png", "evolution-gan-ring8.png",
                 "samples-gan-ring8.svg", "collapse_rate.svg"):  # an SVG carried its date and random ids
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_sweep_with_nothing_finished_yet_gets_a_report_not_a_traceback(tmp_path):
    synthetic_results(tmp_path / "r", {(True, 1, 0.0): 0.5}, seeds=3, per_trial_files=True)
    for p in (tmp_path / "r" / "trials").iterdir():  # every trial still running
        t = pq.read_table(p)
        pq.write_table(t.set_column(t.schema.get_field_index("status"), "status", [["running"] * len(t)]), p)
    text = build_report([str(tmp_path / "r")], str(tmp_path / "rep")).read_text()
    assert "3 trials (3 running); no trial has finished yet" in text


def test_a_trial_in_two_folders_is_read_from_its_finished_copy_whole(tmp_path):
    synthetic_results(tmp_path / "done", {(True, 1, 0.0): 0.0}, seeds=2, evaluations=10)
    synthetic_results(tmp_path / "partial", {(True, 1, 0.0): 0.0}, seeds=2, evaluations=10)
    t = pq.read_table(tmp_path / "partial" / schema.TRIALS_FILE).to_pandas().assign(status="running", steps_done=300)
    m = pq.read_table(tmp_path / "partial" / schema.METRICS_FILE).to_pandas()
    m = m[m["step"] <= 300].assign(**{"eval/fd_2d": -1.0})  # a copy that stopped early, with other values
    from vi_contract.tables import with_metadata

    contract = json.loads((tmp_path / "partial" / schema.CONTRACT_FILE).read_text())
    pq.write_table(with_metadata(t, contract), tmp_path / "partial" / schema.TRIALS_FILE)
    pq.write_table(with_metadata(m, contract), tmp_path / "partial" / schema.METRICS_FILE)
    for order in (["done", "partial"], ["partial", "done"]):
        res = load_results([str(tmp_path / f) for f in order], warn=False)
        assert len(res.trials) == 2 and (res.trials["status"] == "finished").all()
        assert len(res.metrics) == 20 and (res.metrics["eval/fd_2d"] > 0).all()  # no rows of the running copy
        assert set(res.locations.values()) == {str(tmp_path / "done")}


def test_foreign_files_without_axes_get_them_guessed_and_a_label_stands_for_what_it_sets():
    frame = pd.DataFrame({"trial_id": list("abcdefgh"), "config/model": "gan", "config/dataset": "ring8",
                          "config/seed": [0, 1] * 4, "axis/regime": ["bn-1x1"] * 4 + ["nobn-5x5"] * 4,
                          "config/bn": [True] * 4 + [False] * 4, "config/g_steps": [1] * 4 + [5] * 4,
                          "config/lam": [0.0, 0.0, 5.0, 5.0] * 2, "config/lr": 0.001, "status": "finished", "eval/fd_2d": 1.0})
    assert columns.guessed_axes(frame) == ["axis/regime", "config/lam"]  # not bn and g_steps: the label sets them
    assert columns.condition_columns(frame, {}) == ["axis/regime", "config/lam"]
    # a contract wins, naming its axes by their study names
    assert columns.condition_columns(frame, {"axes": ["bn", "lam", "seed"]}) == ["config/bn", "config/lam"]
    assert columns.condition_columns(frame, {"axes": ["regime", "seed"], "labelled": {"regime": {}}}) == ["axis/regime"]


@pytest.mark.slow
def test_the_report_opens_with_every_comparison_at_a_glance_and_a_compact_findings_table(tmp_path):
    """After the summary: the figure of every comparison, then the compact table whose numbers
    are the findings' own (collapse difference and interval, Holm p, verdict), then the sentences
    per cell; the footer names each folder's commit, torch/Ray/Optuna and machine."""
    folder = tmp_path / "results"
    # a planted large collapse effect (0.9 -> 0.1) in one regime, none in the other
    synthetic_results(folder, {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5, (False, 5, 0.0): 0.9, (False, 5, 5.0): 0.1},
                      seeds=30, metric_shift={(False, 5, 5.0): -2.0})
    versions = json.loads((folder / schema.VERSIONS_FILE).read_text()) if (folder / schema.VERSIONS_FILE).exists() else {}
    versions.update(git_commit="0123abcd" * 5, torch="2.13.0+cpu", ray="2.60.0", optuna="5.0.0",
                    machine="driver Linux x86_64, 2 CPUs; Ray cluster of 1 node(s): 2 CPUs, 0 GPUs")
    (folder / schema.VERSIONS_FILE).write_text(json.dumps(versions))
    text = build_report([str(folder)], str(tmp_path / "rep")).read_text()
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads[:4] == ["## Summary", "## The answer", "## Every comparison at a glance", "## Findings at a glance"]
    # the answer names the planted effect in one sentence, and only it (issue 39: the answer was never written)
    from analysis.glance import answer_of
    answer = answer_of(text)
    assert len(answer) == 1 and "bn=False" in answer[0] and "lam = 5 against lam = 0: less collapse at the end (-0.80" in answer[0]
    heads.remove("## The answer")
    html = (tmp_path / "rep" / "report.html").read_text()  # the first screen: the answer, then the labelled figure
    assert html.index("less collapse at the end (-0.80") < html.index("Every comparison at a glance")
    assert heads[3].startswith("## Findings: gan · ring8 · ") and heads[-1] == "## Provenance"
    assert (tmp_path / "rep" / "at_a_glance.png").stat().st_size > 10000
    table = pd.read_csv(tmp_path / "rep" / "glance.csv")
    found = pd.read_csv(tmp_path / "rep" / "findings.csv")
    effects = pd.read_csv(tmp_path / "rep" / "effects.csv")
    assert len(table) == len(found) == 2
    assert list(table.columns[:4]) == ["cell", "treatment vs baseline", "n", "collapse diff [95% CI]"]
    strong = table[table["cell"].str.contains("bn=False")].iloc[0]
    e = effects[effects["regime"].str.contains("bn=False")].iloc[0]
    assert strong["collapse diff [95% CI]"] == f"{e['end_diff']:+.2f} [{e['end_lo']:+.2f}, {e['end_hi']:+.2f}]"
    assert strong["treatment vs baseline"] == "5 vs 0" and strong["n"] == "30 vs 30"
    p = found[found["regime"].str.contains("bn=False")].iloc[0]
    holm = [c for c in table.columns if c.startswith("Holm p")][0]
    assert strong[holm].split(" · ")[0] == f"{p['collapse_p_holm']:.2g}" and p["collapse_p_holm"] < 0.05
    assert strong["verdict"] == "better" and "fd_2d: -" in strong["quality diff [95% CI]"]
    weak = table[table["cell"].str.contains("bn=True")].iloc[0]
    assert weak["verdict"] == "n.s."
    # the footer: provenance of the folder read
    footer = text[text.index("## Provenance"):]
    for value in ("0123abcd0123", "2.13.0+cpu", "2.60.0", "5.0.0", "2 CPUs; Ray cluster of 1 node(s)"):
        assert value in footer, value
    html = (tmp_path / "rep" / "report.html").read_text()
    order = ["<img alt='Every comparison at a glance'", "Findings at a glance</h2>", "Findings: gan", "<footer>"]
    assert [html.index(x) for x in order] == sorted(html.index(x) for x in order)


@pytest.mark.slow
def test_a_study_whose_every_trial_diverged_gets_its_report(tmp_path):
    """Every trial diverged at its 5th evaluation: the metric figures raised KeyError
    'modes_frac_n' (no condition has a median of a non-diverged seed). Each seed's course:
    good at the first evaluation, diverged (a collapse after it, and at its end) at the 5th."""
    from vi_contract.tables import with_metadata

    folder = tmp_path / "r"
    synthetic_results(folder, {(True, 1, 0.0): 0.0, (True, 1, 5.0): 0.0}, seeds=4)
    contract = json.loads((folder / schema.CONTRACT_FILE).read_text())
    trials, metrics = pd.read_parquet(folder / schema.TRIALS_FILE), pd.read_parquet(folder / schema.METRICS_FILE)
    metrics = metrics[metrics["step"] <= 500].copy()
    last = metrics["step"] == 500
    metrics.loc[last, ["diverged", "collapsed"]] = True
    metrics.loc[last, ["eval/modes_frac", "eval/fd_2d"]] = np.nan
    trials = trials.assign(status="diverged", diverged=True, collapsed=True, steps_done=500)
    pq.write_table(with_metadata(trials, contract), folder / schema.TRIALS_FILE)
    pq.write_table(with_metadata(metrics, contract), folder / schema.METRICS_FILE)
    text = build_report([str(folder)], str(tmp_path / "out")).read_text()
    assert "8 trials (8 diverged)" in text
    onsets = pd.read_csv(tmp_path / "out" / "onsets.csv")
    assert len(onsets) == 8 and (onsets["good_at"] == 100).all() and (onsets["collapse_at"] == 500).all()
    assert (onsets["ended_collapsed"] == 1).all()
