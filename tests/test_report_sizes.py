"""The report renders at every edge size and shape (issue 23): nothing finished, one seed, one
condition, every seed diverged or collapsed, no baseline, and a compare axis of each kind and
name. Before: one seed raised scipy's "two or more observations" (and `run` exited 1 after
every trial finished); a compare axis named `regime` raised "truth value of a Series is
ambiguous"."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from analysis.synthetic import synthetic_results
from tests.helpers import R, rewrite
from vi_sweeps.cli.commands import main

cases = {}


def case(name):
    def deco(f):
        cases[name] = f
        return f

    return deco


@case("one-seed")
def _(d):
    synthetic_results(d, R, 1)


@case("one-condition")
def _(d):
    synthetic_results(d, {(True, 1, 0.0): 0.5}, 5)


@case("no-baseline")
def _(d):
    synthetic_results(d, {(True, 1, 5.0): 0.5, (False, 5, 5.0): 0.5}, 5)


@case("all-collapsed")
def _(d):
    synthetic_results(d, {k: 1.0 for k in R}, 5)


@case("all-diverged")
def _(d):
    synthetic_results(d, R, 5)

    def t(x):
        return x.assign(status="diverged", diverged=True, collapsed=True, **{"eval/fd_2d": float("nan"), "eval/modes_frac": float("nan")})

    def m(x):
        return x.assign(diverged=True, collapsed=True, **{"eval/fd_2d": float("nan")})

    rewrite(d, t, m)


@case("none-finished")
def _(d):
    synthetic_results(d, R, 5)
    rewrite(d, lambda x: x.assign(status="running"))


@case("compare-regime")
def _(d):
    synthetic_results(d, R, 5)
    c = json.loads((d / "contract.json").read_text())
    c["axes"] = ["model", "dataset", "regime", "lam", "seed"]
    c["labelled"] = {"regime": {"bn-1x1": {"bn": True, "g_steps": 1}, "nobn-5x5": {"bn": False, "g_steps": 5}}}
    c["compare"] = {"axis": "regime", "baseline": "bn-1x1"}
    rewrite(d, lambda x: x.assign(**{"axis/regime": x["config/bn"].map({True: "bn-1x1", False: "nobn-5x5"})}), contract=c)


@case("compare-bn")
def _(d):
    synthetic_results(d, {(bn, 1, lam): 0.5 for bn in (True, False) for lam in (0.0, 5.0)}, 5)
    c = json.loads((d / "contract.json").read_text())
    c["compare"] = {"axis": "bn", "baseline": True}
    rewrite(d, contract=c)


@case("baseline-in-no-cell")  # bn is confounded with g_steps: no cell holds both values of bn
def _(d):
    synthetic_results(d, R, 5)
    c = json.loads((d / "contract.json").read_text())
    c["compare"] = {"axis": "bn", "baseline": True}
    rewrite(d, contract=c)


@case("compare-labelled")
def _(d):
    synthetic_results(d, R, 5)
    c = json.loads((d / "contract.json").read_text())
    c["axes"] = ["model", "dataset", "phases", "lam", "seed"]
    c["labelled"] = {"phases": {"a": {"bn": True, "g_steps": 1}, "b": {"bn": False, "g_steps": 5}}}
    c["compare"] = {"axis": "phases", "baseline": "a"}
    rewrite(d, lambda x: x.assign(**{"axis/phases": x["config/bn"].map({True: "a", False: "b"})}), contract=c)


@case("axes-named-like-outputs")  # schema 3: a labelled axis may take any name (status, treatment, n)
def _(d):
    synthetic_results(d, R, 5)
    c = json.loads((d / "contract.json").read_text())
    c["axes"] = ["model", "dataset", "status", "treatment", "seed"]
    c["labelled"] = {"status": {"a": {"bn": True, "g_steps": 1}, "b": {"bn": False, "g_steps": 5}},
                     "treatment": {"off": {"lam": 0.0}, "on": {"lam": 5.0}}}
    c["compare"] = {"axis": "treatment", "baseline": "off"}
    rewrite(d, lambda x: x.assign(**{"axis/status": x["config/bn"].map({True: "a", False: "b"}),
                                     "axis/treatment": x["config/lam"].map({0.0: "off", 5.0: "on"})}), contract=c)


# what the findings must say where no test was possible
SAYS = {
    "one-seed": "no test of fd_2d at n = 1 vs 1 (a test needs two seeds an arm)",
    "none-finished": "no trial has finished yet, so there is nothing to compare",
    "no-baseline": "No condition holds both lam = 0 (the baseline)",
    "compare-regime": "nobn-5x5 vs bn-1x1",
    "compare-labelled": "b vs a",
    "axes-named-like-outputs": "on vs off",
    "compare-bn": "False vs True",
    "baseline-in-no-cell": "No condition holds both bn = True (the baseline) and another value of bn",
    "all-collapsed": "Fisher p = 1",
    "all-diverged": "Fisher p = 1",
    "one-condition": "No condition holds both lam = 0 (the baseline)",
}


# each report draws its figures (2-5 s): the fast tier keeps one size
@pytest.mark.parametrize("name", [n if n == "all-diverged" else pytest.param(n, marks=pytest.mark.slow) for n in cases])
def test_the_report_renders_at_every_edge_size(name, tmp_path):
    folder = tmp_path / name
    cases[name](folder)
    r = CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert SAYS[name] in text, text[:3000]


@pytest.mark.slow
def test_no_user_markup_reaches_any_markdown(tmp_path):
    """Before: a label <script>alert(1)</script> stood unescaped on 11 lines of REPORT.md."""
    from analysis.claims_page import _table

    label = "<script>alert(1)</script>"
    folder = tmp_path / "xss"
    synthetic_results(folder, R, 3)
    c = json.loads((folder / "contract.json").read_text())
    c["axes"] = ["model", "dataset", "phases", "lam", "seed"]
    c["labelled"] = {"phases": {label: {"bn": True, "g_steps": 1}, "b": {"bn": False, "g_steps": 5}}}
    c["compare"] = {"axis": "phases", "baseline": "b"}
    rewrite(folder, lambda x: x.assign(**{"axis/phases": x["config/bn"].map({True: label, False: "b"})}), contract=c)
    r = CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; vs b" in text and "<script>" not in text
    assert "<script>" not in _table(pd.DataFrame({"regime": [label]}))  # CLAIMS.md's tables


@pytest.mark.slow
def test_a_full_disk_while_writing_the_report_exits_1_not_2(tmp_path):
    """Before: ENOSPC was reported as bad input (exit 2)."""
    from tests.conftest import tmpfs

    folder = tmp_path / "r"
    synthetic_results(folder, R, 3)
    with tmpfs(tmp_path / "disk", "200k") as disk:
        r = CliRunner().invoke(main, ["report", str(folder), "--out", str(disk / "report")])
        assert r.exit_code == 1, r.output
        assert "No space left on device" in r.output


@pytest.mark.slow
def test_an_empty_trials_folder_beside_the_tables_reads_the_tables_with_a_note(tmp_path):
    """Before: `report` said "0 trials" though trials.parquet held 12 finished, with no note."""
    folder = tmp_path / "r"
    synthetic_results(folder, R, 3)
    (folder / "trials").mkdir()
    r = CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "report" / "REPORT.md").read_text()
    assert "12 trials (12 finished)" in text and "trials/ holds no trial file; read from trials.parquet" in text


@pytest.mark.slow
def test_replacing_a_report_that_is_a_symlink_leaves_nothing_beside_it(tmp_path):
    """Before: `.report.old-HOST-PID` (the moved link; rmtree refuses links) stayed for good."""
    folder = tmp_path / "r"
    synthetic_results(folder, R, 3)
    CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "target")])
    (tmp_path / "report").symlink_to(tmp_path / "target")
    r = CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "report", "target"]
    assert (tmp_path / "report").is_dir() and not (tmp_path / "report").is_symlink()
