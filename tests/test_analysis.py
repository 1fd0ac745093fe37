import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import schema, stats, tables
from analysis.load import ResultsError, load_results
from analysis.report import FIGURES, build_report
from analysis.synthetic import synthetic_results
from tests.conftest import ROOT

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


def test_bootstrap_interval_covers_the_true_median():
    x = np.random.default_rng(3).normal(5.0, 1.0, 400)
    med, lo, hi = stats.bootstrap_median(x)
    assert lo < 5.0 < hi and lo < med < hi and hi - lo < 0.4


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    return folder, synthetic_results(folder, RATES, seeds=200)


def test_condition_table_counts_and_intervals(synthetic):
    folder, truth = synthetic
    table = tables.condition_table(load_results([str(folder)]).trials).set_index(["regime", "lam"])
    assert len(table) == 4 and (table["n"] == 200).all()
    for (bn, g, lam), rate in RATES.items():
        row = table.loc[(f"bn={bn}, d_steps={g}, g_steps={g}", lam)]
        sub = truth[(truth.bn == bn) & (truth.g_steps == g) & (truth.lam == lam)]
        k = int((sub.collapsed | sub.diverged).sum())
        assert row["collapsed"] == k and row["collapse_rate"] == k / 200
        assert (row["rate_lo"], row["rate_hi"]) == pytest.approx(stats.wilson(k, 200))
        assert row["rate_lo"] < rate < row["rate_hi"]  # holds for this seed; 95% in general


def test_lambda_effect_finds_the_planted_drop(synthetic):
    folder, _ = synthetic
    effect = tables.lambda_effect(tables.condition_table(load_results([str(folder)]).trials))
    assert len(effect) == 2
    assert (effect["difference"] < 0).all() and (effect["diff_hi"] < 0).all()
    assert (effect["fisher_p"] < 1e-4).all()


def test_collapse_share_over_time_rises_to_the_final_rate(synthetic):
    folder, _ = synthetic
    res = load_results([str(folder)])
    curves = tables.over_time(res.trials, res.metrics, "eval/fd_2d")
    final = curves[curves["step"] == curves["step"].max()].set_index(["regime", "lam"])
    table = tables.condition_table(res.trials).set_index(["regime", "lam"])
    assert np.allclose(final["collapsed_share"], table.loc[final.index, "collapse_rate"])
    first = curves[curves["step"] == 100]
    assert (first["collapsed_share"].values <= final["collapsed_share"].values).all()


def test_report_writes_every_figure_and_links_it(synthetic, tmp_path):
    folder, _ = synthetic
    path = build_report([str(folder)], str(tmp_path / "rep"))
    text = path.read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    for name in FIGURES:
        for ext in ("png", "svg"):
            assert (tmp_path / "rep" / f"{name}.{ext}").stat().st_size > 5000
        assert f"({name}.png)" in text
    assert html.count("data:image/png;base64,") == len(FIGURES)
    assert "modes_frac<0.5" in text and "| lam |" in text.replace(" lam ", " lam ")


def test_missing_column_and_wrong_version_are_clear_errors(synthetic, tmp_path):
    folder, _ = synthetic
    table = pq.read_table(folder / schema.TRIALS_FILE)
    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(table.drop(["lam"]), bad / schema.TRIALS_FILE)
    pq.write_table(pq.read_table(folder / schema.METRICS_FILE), bad / schema.METRICS_FILE)
    with pytest.raises(ResultsError, match="missing column"):
        load_results([str(bad)])
    pq.write_table(table.replace_schema_metadata({schema.SCHEMA_KEY: b"99"}), bad / schema.TRIALS_FILE)
    with pytest.raises(ResultsError, match="schema version '99'"):
        load_results([str(bad)])
    r = subprocess.run([sys.executable, "-m", "analysis", "report", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "schema version" in r.stderr


def test_analysis_runs_without_torch_or_ray(synthetic, tmp_path):
    folder, _ = synthetic
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'ray', 'vi_sweeps'): raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from analysis.__main__ import main\n"
            f"code = main(['report', {str(folder)!r}, '--out', {str(tmp_path / 'r')!r}])\n"
            "assert not {'torch', 'ray', 'vi_sweeps'} & set(sys.modules)\n"
            "sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "r" / "REPORT.md").exists()


def test_several_results_folders_combine(tmp_path):
    a = synthetic_results(tmp_path / "a", {(True, 1, 0.0): 0.5}, seeds=5)
    b = synthetic_results(tmp_path / "b", {(True, 1, 0.0): 0.5}, seeds=5, dataset="grid25")
    res = load_results([str(tmp_path / "a"), str(tmp_path / "b")])
    assert len(res.trials) == len(a) + len(b)
    assert set(tables.condition_table(res.trials)["dataset"]) == {"ring8", "grid25"}
    assert isinstance(res.metrics, pd.DataFrame) and pa is not None


def test_a_labelled_axis_names_the_regime_alone(tmp_path):
    synthetic_results(tmp_path / "a", RATES, seeds=3)
    res = load_results([str(tmp_path / "a")])
    trials = res.trials.assign(regime=res.trials["bn"].map({True: "bn-1x1", False: "nobn-5x5"}))
    assert tables.regime_columns(trials) == ["regime"]
    assert set(tables.condition_table(trials)["regime"]) == {"bn-1x1", "nobn-5x5"}


def test_the_committed_measurement_reads_and_reports(tmp_path):
    folder = ROOT / "docs" / "measurements" / "bn_ablation_ring8_5seeds"
    res = load_results([str(folder)])
    assert len(res.trials) == 40 and (res.trials["status"] == "finished").all()
    assert len(res.metrics) == 40 * 10
    table = tables.condition_table(res.trials)
    assert set(table["regime"]) == {"bn-1x1", "nobn-5x5"} and (table["n"] == 5).all()
    assert build_report([str(folder)], str(tmp_path / "r")).exists()
