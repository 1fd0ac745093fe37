"""Declared claims: validated with the study, recorded when the first trial starts, refused when
changed without an amendment, and decided on endpoints that separate mode loss from quality."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import fisher_exact

from analysis import claims as decide_claims
from analysis.verdicts import Study
from tests.helpers import ARMS, CLAIMS, SEEDS, STUDY, planted_study  # noqa: F401
from vi_contract import schema
from vi_sweeps.study.claims import record
from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.load import load_study_text


def test_planted_effects_are_decided_on_the_endpoint_that_measures_them(tmp_path):
    folder = planted_study(tmp_path)
    text, lines = decide_claims.decide_folders([str(folder)])
    from analysis.load import load_results

    res = load_results([str(folder)], warn=False)
    contract = res.sources[0]["contract"]
    declared = decide_claims.declared_claims([Study("planted", res.trials, res.metrics, res.contract | contract)])
    cells = decide_claims.decide(declared).set_index(["claim", "comparison"])
    assert cells.loc[("modes", "lam 5 vs 0"), "verdict"] == "supports"  # 0/20 against 10/20
    fisher = fisher_exact([[0, 20], [10, 10]])[1]  # the smallest of the family's three: Holm multiplies it by 3
    assert cells.loc[("modes", "lam 5 vs 0"), "p_holm"] == pytest.approx(3 * fisher, rel=1e-9)
    assert cells.loc[("modes", "lam 50 vs 0"), "verdict"].startswith("not decided: the data exclude")  # the null
    # blur only: no more mode loss than the baseline, so not decided there; and worse on quality
    assert cells.loc[("modes", "lam 0.5 vs 0"), "verdict"].startswith("not decided")
    assert cells.loc[("blur", "lam 0.5 vs 0"), "verdict"] == "contradicts"
    assert "hq_share: median 0.299 (n=20) vs median 0.895 (n=20)" in cells.loc[("blur", "lam 0.5 vs 0"), "secondary"]
    assert lines == ["modes (planted): partly supported (1 of 3 cells; the rest not decided)",
                     "blur (planted): contradicted"]
    assert "### modes: lambda" in text and "### blur: lambda 0.5 ends with better samples" in text
    assert "Primary endpoint `mode_loss`" in text


def test_the_late_rule_would_have_counted_the_blur_as_collapse(tmp_path):
    """The same blur-only arm under the any-evaluation rule on modes_frac (a share per mode):
    every seed collapsed, so the old endpoint read blur as mode loss (20/20 against 10/20)."""
    claims = [dict(CLAIMS[0], id="late", primary={"endpoint": "collapse_late", "expect": "lower"}, treatment=[0.5])]
    folder = planted_study(tmp_path, claims)
    from analysis.load import load_results

    res = load_results([str(folder)], warn=False)
    contract = res.contract | res.sources[0]["contract"]
    cells = decide_claims.decide(decide_claims.declared_claims([Study("planted", res.trials, res.metrics, contract)]))
    assert cells.iloc[0]["treatment"] == "20/20" and cells.iloc[0]["baseline"] == "10/20"
    assert cells.iloc[0]["verdict"] == "contradicts"


def test_claims_validate_with_one_line_per_problem():
    bad = STUDY.replace("mode_loss", "modes_lost").replace("claims:\n", "claims:\n  - id: C1\n    statement: again\n"
                                                                      "    within: {bn: maybe}\n"
                                                                      "    primary: {endpoint: quality, expect: lower}\n")
    with pytest.raises(ConfigError) as err:
        load_study_text(bad, "claimed.yaml")
    problems = err.value.problems
    assert "claims: id 'C1' declared more than once" in problems
    assert any(p.startswith("claims[1].primary.endpoint: 'modes_lost' is not an endpoint; valid choices: mode_loss,")
               for p in problems)
    assert any(p.startswith("claims[0].within.bn: not an axis a cell can hold") for p in problems)
    with pytest.raises(ConfigError, match=r"claims\[0\].treatment: 50.0 is not a value of lam; valid choices: 0.0, 5.0"):
        load_study_text(STUDY.replace("    primary:", "    treatment: [50.0]\n    primary:"), "claimed.yaml")


def test_a_changed_claim_is_refused_and_an_amendment_is_recorded_with_its_date():
    first = load_study_text(STUDY, "claimed.yaml").spec
    stored, why = record(first, None, today="2026-12-01")
    assert why is None and stored["declared"] == "2026-12-01" and stored["claims"][0]["id"] == "C1"
    assert record(first, stored)[0] is stored  # unchanged: the record stays as it was
    changed = load_study_text(STUDY.replace("mode_loss", "collapse_late"), "claimed.yaml").spec
    kept, why = record(changed, stored)
    assert kept is None and why.startswith("claims C1 changed after the first trial started (2026-12-01); declare each")
    amended = load_study_text(STUDY.replace("mode_loss", "collapse_late") + "amendments:\n  - {claim: C1, date: "
                              "2026-12-07, reason: the late rule as in the earlier study}\n", "claimed.yaml").spec
    kept, why = record(amended, stored)
    assert why is None and kept["declared"] == "2026-12-01"
    assert kept["amendments"] == [{"claim": "C1", "date": "2026-12-07", "reason": "the late rule as in the earlier study"}]
    assert kept["claims"][0]["primary"]["endpoint"] == "collapse_late"


def test_time_to_collapse_is_a_log_rank_test_in_the_right_direction():
    """Seeds that got good at 100; the treatment collapses after it at 900 or never, the baseline
    at 200: the treatment collapses later (favourable for expect: higher)."""
    def arm(hits):
        return pd.DataFrame({"good_at": 100.0, "collapse_at": hits, "config/iterations": 1000})

    t, b = arm([900.0, math.inf, math.inf, 800.0, math.inf, math.inf]), arm([200.0] * 6)
    got = decide_claims._time(t, b, None)
    assert got["p"] < 0.01 and got["diff"] > 0


@pytest.mark.slow
@pytest.mark.ray
def test_a_sweep_records_its_claims_refuses_a_changed_one_and_the_cli_decides_them(local_ray, tmp_path):
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main
    from vi_sweeps.study.load import load_study
    from vi_sweeps.sweep.driver import run_sweep

    study_file = tmp_path / "claimed.yaml"
    study_file.write_text(STUDY.replace("seeds: 2", "seeds: 2\npack_seeds: 2\nbase: {hidden: 16, eval_samples: 300}"))
    results = tmp_path / "r"
    assert run_sweep(load_study(study_file), str(results), show_progress=False).exit_code == 0
    stored = json.loads((results / schema.CONTRACT_FILE).read_text())["claims"]
    assert stored["claims"][0]["primary"] == {"endpoint": "mode_loss", "expect": "lower"} and stored["amendments"] == []
    before = {p.name: p.stat().st_mtime_ns for p in results.iterdir()}
    study_file.write_text(study_file.read_text().replace("mode_loss", "hq_share").replace("expect: lower", "expect: higher"))
    with pytest.raises(ConfigError, match="claims C1 changed after the first trial started"):
        run_sweep(load_study(study_file), str(results), show_progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in results.iterdir()} == before  # nothing written
    study_file.write_text(study_file.read_text() + "amendments:\n  - {claim: C1, date: 2026-12-07, reason: precision}\n")
    assert run_sweep(load_study(study_file), str(results), show_progress=False).exit_code == 0
    stored = json.loads((results / schema.CONTRACT_FILE).read_text())["claims"]
    assert stored["amendments"][0]["date"] == "2026-12-07" and stored["claims"][0]["primary"]["endpoint"] == "hq_share"
    out = CliRunner().invoke(main, ["claims", str(results)])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].startswith("C1 (claimed): not decided at this n")
    page = (results / "claims.md").read_text()
    assert "_Amended 2026-12-07: precision_" in page and "Primary endpoint `hq_share`" in page


def test_a_baseline_that_barely_loses_modes_reads_premise_absent(tmp_path):
    """C1 on the 2-D sets: the BN GAN at lambda 0 loses modes in 1 of 20 seeds (ring8), so no
    treatment could show a drop this n detects; the verdict says the premise is absent instead of
    an undecided 'no effect'. Before, the late rule's 17/20 made the premise look present."""
    arms = {0.0: (1, 0.9, 0.10), 5.0: (4, 0.9, 0.10), 50.0: (0, 0.9, 0.10), 0.5: (1, 0.9, 0.1)}
    _, lines = decide_claims.decide_folders([str(planted_study(tmp_path, [CLAIMS[0]], arms))])
    assert lines == ["modes (planted): not decided: premise absent in every cell (3): the baseline barely shows what the "
                     "claim would change"]


@pytest.mark.slow
def test_vi_sweep_claims_on_the_folder_of_exports_regenerates_claims_md(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tests.conftest import ROOT
    from vi_sweeps.cli.commands import main

    monkeypatch.chdir(ROOT)  # the page names the folder as given
    out = CliRunner().invoke(main, ["claims", "docs/reproduction", "--out", str(tmp_path / "CLAIMS.md")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "CLAIMS.md").read_text() == (ROOT / "docs" / "reproduction" / "CLAIMS.md").read_text()


def test_folders_of_one_study_decide_its_claims_once(tmp_path):
    """A study in two folders (half its seeds each) is one study: before, each folder decided its
    claims over all the rows again, so every cell came twice and Holm corrected over 6 cells, not 3
    (lam 5 vs 0: p_holm 6 x Fisher's p instead of 3 x)."""
    import shutil

    from analysis.load import load_results
    from tests.helpers import rewrite

    (tmp_path / "whole").mkdir()
    whole = planted_study(tmp_path / "whole")
    halves = []
    for parity in (0, 1):
        half = tmp_path / f"half{parity}"
        shutil.copytree(whole, half)
        rewrite(half, lambda t, p=parity: t[t["config/seed"] % 2 == p],
                lambda m, p=parity: m[m["trial_id"].str.rsplit("-", n=1).str[1].astype(int) % 2 == p])
        halves.append(str(half))
    studies = decide_claims.report_studies(load_results(halves, warn=False))
    assert len(studies) == 1 and len(studies[0].trials) == 4 * SEEDS
    contract = json.loads((Path(halves[0]) / "contract.json").read_text())  # a first folder that records none
    rewrite(Path(halves[0]), contract={k: v for k, v in contract.items() if k != "claims"})
    assert len(decide_claims.report_studies(load_results(halves, warn=False))) == 1  # before: 0 in this order
    cells = decide_claims.decide(decide_claims.declared_claims(studies))
    five = cells[(cells["claim"] == "modes") & (cells["comparison"] == "lam 5 vs 0")]
    assert len(five) == 1 and five["p_holm"].iloc[0] == pytest.approx(3 * fisher_exact([[0, 20], [10, 10]])[1], rel=1e-9)
