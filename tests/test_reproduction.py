"""The committed reproduction (docs/reproduction/): each exported study's report regenerates
from its committed results with the same tables, and its conditions have the seeds the
verdicts promise. The long studies themselves never run here (scripts/reproduce.sh does)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.load import load_results
from analysis.report import analyse, convergence_rule
from tests.conftest import ROOT
from vi_contract import schema
from vi_contract.columns import condition_columns
from vi_sweeps.cli.sequential import plan
from vi_sweeps.study.load import load_study_as_run
from vi_sweeps.sweep.protocol import chosen_study

DOCS = ROOT / "docs" / "reproduction"
EXPORTED = sorted(p.parent.parent.name for p in DOCS.glob("*/report/REPORT.md"))
# (study, data set) -> the fewest seeds a condition may have (issue 13's design); None: every data set
MIN_SEEDS = {("bn_ablation", "ring8"): 20, ("bn_ablation", "grid25"): 10, ("bn_ablation_digits", None): 10,
             ("ali_losses", None): 10, ("aae_ablation", None): 10, ("pacgan_baseline", None): 10,
             # issue 25's studies
             ("stabilisers", None): 20, ("stabilisers_digits", None): 10, ("bn_long", None): 20,
             ("stabilisers_fair", None): 10}  # issue 38: interims of 10 seeds
TABLES = ("conditions", "effects", "findings", "convergence")
# the exports whose seeds came in interims (issue 38's stabilisers_fair): their seeds are the design's
SEQUENTIAL = [s for s in EXPORTED if json.loads((DOCS / s / schema.CONTRACT_FILE).read_text()).get("interims")]


def test_the_main_study_is_committed():
    assert "bn_ablation" in EXPORTED, f"exported so far: {EXPORTED}"


@pytest.mark.parametrize("study", EXPORTED)
def test_a_committed_report_regenerates_with_the_same_tables(study, tmp_path):
    """The tables the report computes, written as the report writes them (the figures are drawn
    from the same tables; tests/test_analysis.py renders whole reports)."""
    res = load_results([str(DOCS / study)], warn=False)
    for name, frame in analyse(res, convergence_rule(None, res)).frames().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    for name in TABLES:
        committed = Path(DOCS / study / "report" / f"{name}.csv")
        if not committed.exists():
            continue
        if not committed.read_text().strip():  # a study without a treatment axis has no effects
            assert not (tmp_path / f"{name}.csv").read_text().strip(), (study, name)
            continue
        again = pd.read_csv(tmp_path / f"{name}.csv")
        pd.testing.assert_frame_equal(again, pd.read_csv(committed), check_exact=False, rtol=1e-9, obj=f"{study} {name}")


@pytest.mark.parametrize("study", EXPORTED)
def test_every_condition_has_the_seeds_the_design_promises(study):
    res = load_results([str(DOCS / study)], warn=False)
    trials = res.trials
    assert (trials["status"].isin(["finished", "diverged"])).all(), trials["status"].value_counts().to_dict()
    counts = trials.groupby(condition_columns(trials, res.contract), dropna=False).size()
    for dataset, n in counts.groupby(level="config/dataset"):
        need = MIN_SEEDS.get((study, dataset), MIN_SEEDS.get((study, None), 1))
        assert n.min() >= need, (study, dataset, n.min())


def design_trials(folder: Path) -> tuple[set[str], list]:
    """(the trial ids a sequential study's design needed, from its own rows, its study as run
    and, for a tune-then-test protocol, the settings its protocol.json chose; its comparisons)."""
    run = load_study_as_run((folder / schema.STUDY_FILE).read_text(), str(folder / schema.STUDY_FILE))
    if run.spec.protocol is not None:
        run = chosen_study(run, str(folder))
        assert run is not None, f"{folder}: no protocol.json choosing a setting for every test condition"
    return plan(run, str(folder))


@pytest.mark.parametrize("study", SEQUENTIAL)
def test_a_sequential_study_holds_the_trials_its_design_needed_and_no_more(study):
    """Every pack the interims asked for ran and finished, none beyond: each comparison is decided
    (a boundary crossed, futile) or at the design's maximum, as recomputed from the committed rows."""
    needed, comparisons = design_trials(DOCS / study)
    held = set(pd.read_parquet(DOCS / study / schema.TRIALS_FILE)["trial_id"])
    assert needed == held, (study, len(needed - held), "needed, not held", len(held - needed), "held, not needed")
    assert comparisons and all(c.path.decision != "open" for c in comparisons), [
        (c.name, c.path.decision) for c in comparisons if c.path.decision == "open"]


@pytest.mark.slow
def test_the_committed_verdicts_regenerate_from_the_committed_results(monkeypatch):
    """CLAIMS.md is decided again from the exports beside it (a calibration study without a
    compare axis stopped this: "not the study `pacgan_baseline` the claims read (no axis compare)")."""
    from analysis.claims_page import claims_markdown

    monkeypatch.chdir(ROOT)  # the page names the folder as given
    assert claims_markdown(Path("docs") / "reproduction") == (DOCS / "CLAIMS.md").read_text()
