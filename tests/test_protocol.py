"""A tune-then-test protocol (issue 38): every arm tuned with the same budget on seeds disjoint
from the test seeds; a study that breaks either is refused in one line."""

import re

import pytest

from vi_sweeps.study.config import ConfigError
from vi_sweeps.study.load import load_study_text
from vi_sweeps.study.protocol import frozen, tuning_objective

STUDY = """name: fair
datasets: [ring8]
base: {hidden: 16, batch_size: 32, eval_samples: 200}
budget: {iterations: 40, eval_every: 20}
grid:
  stabiliser:
    none: {}
    anchor: {lam: 1.0}
    r1: {r1: 1.0}
compare: {axis: stabiliser, baseline: none}
claims:
  - id: fair
    statement: every stabiliser loses modes less often than none
    primary: {endpoint: mode_loss, expect: lower}
protocol:
  tune:
    trials: 3
    seeds: [100, 101]
    space:
      anchor: {lam: {type: loguniform, low: 0.1, high: 100}}
      r1: {r1: {type: loguniform, low: 0.01, high: 10}}
    shared: {lr: {type: loguniform, low: 1.0e-4, high: 3.0e-3}}
  test:
    seeds: 3
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_study_text(text, "fair.yaml")
    return err.value.problems


def test_a_protocol_study_validates_and_tunes_on_its_claims_endpoint():
    study = load_study_text(STUDY, "fair.yaml")
    assert sorted({t.config.seed for t in study.trials}) == [0, 1, 2]  # protocol.test.seeds are the study's seeds
    objective = tuning_objective(study.spec)
    assert (objective.metric, objective.mode) == ("modes_lit_frac", "max")  # mode_loss tunes on the literature's count


def test_tuning_seeds_among_the_test_seeds_are_refused_in_one_line():
    found = problems(STUDY.replace("seeds: [100, 101]", "seeds: [1, 100]"))
    assert found == ["protocol.tune.seeds: 1 are also test seeds (protocol.test.seeds); tuning and test seeds must be "
                     "disjoint"]


def test_unequal_budgets_are_refused_in_one_line_each():
    # an arm with nothing to search while the others search (no shared keys)
    found = problems(STUDY.replace("    shared: {lr: {type: loguniform, low: 1.0e-4, high: 3.0e-3}}\n", ""))
    assert found == ["protocol.tune.space: none would search nothing while the other arms search 3 suggestions each; "
                     "every arm gets the same budget: give each arm a space, or search shared keys "
                     "(protocol.tune.shared, e.g. lr) for all"]
    # an arm that trains longer than the others
    found = problems(STUDY.replace("anchor: {lam: 1.0}", "anchor: {lam: 1.0, d_steps: 2}"))
    assert len(found) == 1 and found[0].startswith("grid.stabiliser: the arms train different budgets (none: iterations 40, batch_size 32, "
                                                            "d_steps 1")
    assert found[0].endswith("a protocol gives every arm the same budget")


def test_test_seeds_are_declared_once_and_arms_are_the_axis_values():
    found = problems(STUDY.replace("name: fair\n", "name: fair\nseeds: 3\n"))
    assert len(found) == 1 and "protocol declares its test seeds once, as protocol.test.seeds; drop seeds:" in found[0]
    found = problems(STUDY.replace("      r1: {r1:", "      r2: {r2:"))
    assert found == ["protocol.tune.space.r2: not a value of stabiliser; valid choices: none, anchor, r1"]


def test_the_chosen_values_freeze_into_the_test_trials_and_their_ids_name_them():
    from vi_sweeps.study.expansion import condition_key

    study = load_study_text(STUDY, "fair.yaml")
    chosen = {condition_key(t.config, t.labels): ({"lam": 3.5, "lr": 5e-4} if t.labels["stabiliser"] == "anchor"
                                                  else {"lr": 1e-3}) for t in study.trials}
    tests = frozen(study.trials, chosen)
    anchor = [t for t in tests if t.labels["stabiliser"] == "anchor"]
    assert {(t.config.lam, t.config.lr) for t in anchor} == {(3.5, 5e-4)}
    assert {t.trial_id for t in tests}.isdisjoint({t.trial_id for t in study.trials})
    assert len({t.trial_id for t in tests}) == len(tests) == 9


def test_a_small_protocol_tunes_both_arms_with_equal_budgets_and_tests_the_chosen_values(tmp_path):
    import json

    import pandas as pd
    from click.testing import CliRunner

    from tests.conftest import ROOT  # noqa: F401  (the package under test)
    from tests.helpers import SMALL_PROTOCOL
    from tests.stopped_tuning import stopped_exported_and_resumed
    from vi_sweeps.cli.commands import main

    path, results = tmp_path / "fair.yaml", tmp_path / "r"
    path.write_text(SMALL_PROTOCOL)
    # stopped between its searches, exported and resumed elsewhere: equal to this resume in place
    r = stopped_exported_and_resumed(tmp_path, path, results)
    assert r.exit_code == 0, r.output
    record = json.loads((results / "protocol.json").read_text())
    assert sorted(record["budgets"].values()) == [2, 2]  # the same budget for each arm
    chosen = {c["arm"]: c for c in record["chosen"].values()}
    assert set(chosen) == {"none", "anchor"} and set(chosen["none"]) == {"arm", "search", "lr"}
    assert 0.1 <= chosen["anchor"]["lam"] <= 10
    search = pd.read_parquet(results / "tune" / "search.parquet")
    assert search.groupby("search_study")["state"].apply(lambda s: (s == "COMPLETE").sum()).tolist() == [2, 2]
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"finished"} and set(trials["config/seed"]) == {0, 1}
    anchor = trials[trials["axis/stabiliser"] == "anchor"]
    assert set(anchor["config/lam"]) == {chosen["anchor"]["lam"]} and set(anchor["config/lr"]) == {chosen["anchor"]["lr"]}
    # a second run tunes nothing more and runs no test trial again; its report shows the chosen values
    again = CliRunner().invoke(main, ["run", str(path), "--results", str(results)])
    assert again.exit_code == 0, again.output
    assert json.loads((results / "protocol.json").read_text()) == record
    assert len(pd.read_parquet(results / "tune" / "search.parquet")) == 4
    status = CliRunner().invoke(main, ["status", str(results)])  # the test trials, counted by their tuned ids
    assert status.exit_code == 0 and "trials: 4/4 done" in status.output, status.output
    assert "earlier identity" not in status.output  # before: its ids were taken for ids of another version
    text = (results / "report" / "REPORT.md").read_text()
    assert "Every arm of every cell was tuned with the same budget: 2 suggestions on the same tuning seeds" in text
    assert f"lam = {chosen['anchor']['lam']:.3g}" in text
    assert (results / "report" / "protocol_history.png").stat().st_size > 5000
    exported_and_tuning(tmp_path, results, path, chosen)


def exported_and_tuning(tmp_path, results, path, chosen):
    """The export carries the protocol (its record and searches) and resumes without tuning; a
    folder still tuning shows its searches in `status`, and claims and report refuse it in one line."""
    import json
    import shutil

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main
    from vi_sweeps.study.protocol import chosen_values

    run = lambda *args: CliRunner().invoke(main, [str(a) for a in args])  # noqa: E731
    out = tmp_path / "exported"
    r = run("export", results, "--to", out)
    assert r.exit_code == 0 and "(and the 8 tuning trials of its protocol)" in r.output, r.output
    assert (out / "protocol.json").read_bytes() == (results / "protocol.json").read_bytes()
    assert len(pd.read_parquet(out / "tune" / "search.parquet")) == 4 and not (out / "tune" / "samples").exists()
    r = run("report", out, "--out", out / "report")
    assert r.exit_code == 0, r.output  # before: the export had no protocol.json or tune/, so no protocol section
    assert f"lam = {chosen['anchor']['lam']:.3g}" in (out / "report" / "REPORT.md").read_text()
    assert "scored on the claim's endpoint (mean modes_lit_frac over the 2 tuning seeds)" in \
        (out / "report" / "REPORT.md").read_text()
    hours = [pd.read_parquet(f).groupby("pack_id")["wall_s"].max().sum() / 3600
             for f in (out / "tune" / "trials.parquet", out / "trials.parquet")]
    assert (f"Compute: tuning {hours[0]:.2f} pack-hours (4 packs), testing {hours[1]:.2f} pack-hours (2 packs)"
            in (out / "report" / "REPORT.md").read_text())
    assert (out / "report" / "protocol_history.png").exists()
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    changed = tmp_path / "changed.yaml"
    changed.write_text(path.read_text().replace("seeds: [10, 11]", "seeds: [10, 12]"))
    r = run("run", changed, "--results", copy, "--no-report")  # before: tuning seeds changed unnoticed
    assert r.exit_code == 2 and "(protocol.tune.seeds: [10, 11] there, [10, 12] here)" in r.output, r.output
    # a record written before a config key was added (the stabilisers_fair run's, before `compile`)
    # keys the same conditions: before, its keys matched none, so status counted "suggested so far"
    # and a re-run tuned again
    record = json.loads((copy / "protocol.json").read_text())
    def rekeyed(change):
        return {json.dumps([change(kept), labels], sort_keys=True): c
                for (kept, labels), c in ((json.loads(k), c) for k, c in record["chosen"].items())}

    old = rekeyed(lambda kept: {k: v for k, v in kept.items() if k != "compile"})
    between = rekeyed(lambda kept: {**kept, "compile": False})  # as the versions since `compile` wrote it
    assert set(chosen_values({"chosen": between})) == set(chosen_values({"chosen": old})) != set(between)
    (copy / "protocol.json").write_text(json.dumps({**record, "chosen": old}))
    from analysis.protocol import scored_on  # a record without its metric: the claim's, from the study as run
    assert scored_on(str(copy), {k: v for k, v in record.items() if k != "metric"}) == \
        "mean modes_lit_frac over the 2 tuning seeds"
    # spelling is no other experiment (before: refused, "its trial ids"; then "protocol.test.seeds: 2 there")
    commented = tmp_path / "commented.yaml"
    commented.write_text("# the same protocol\n" + path.read_text().replace("test: {seeds: 2}", "test: {seeds: [0, 1]}"))
    r = run("run", commented, "--results", copy, "--no-report")
    assert r.exit_code == 0, r.output
    assert not (copy / "tune" / "optuna.db").exists()  # frozen: nothing searched again
    assert "trials: 4/4 done" in run("status", copy).output
    other = tmp_path / "other"  # a folder of another study is refused before any tuning (before: after hours of it)
    other.mkdir()
    (other / "study.yaml").write_text(path.read_text().replace("stabiliser: {none: {}, anchor: {lam: 1.0}}",
                                                               "stabiliser: {none: {}, anchor: {lam: 2.0}}"))
    r = run("run", path, "--results", other, "--no-report")
    assert r.exit_code == 2 and "holds a different study" in r.output and not (other / "tune").exists(), r.output
    # before: a report of both compared 6 seeds an arm (the 4 tuning seeds joined the test's 2) and
    # decided the claim on them, once per folder
    both = run("report", results, results / "tune", "--out", tmp_path / "both")
    assert both.exit_code == 2 and "holds a search's trials" in both.output and "report each on its own" in both.output
    assert not (tmp_path / "both").exists()
    r = run("report", results / "tune", "--out", tmp_path / "tuned")  # the searches alone: said to be no test
    assert r.exit_code == 0 and "These rows are a search's suggestions" in (tmp_path / "tuned" / "REPORT.md").read_text()
    assert "Declared claims" not in (tmp_path / "tuned" / "REPORT.md").read_text()

    tuning = tmp_path / "tuning"  # the folder as it stood while tuning: its searches, one suggestion short
    shutil.copytree(results / "tune", tuning / "tune")
    last = pd.read_parquet(tuning / "tune" / "search.parquet").sort_values("number").iloc[-1]
    for tid in last["user_attrs_trial_ids"].split(","):
        (tuning / "tune" / "trials" / f"{tid}.parquet").unlink()
    # a resumed suggestion's members may carry two Optuna numbers (one diverged before the stop keeps
    # its old one): a suggestion is its pack
    first = pd.read_parquet(tuning / "tune" / "search.parquet").sort_values("number").iloc[0]
    member = tuning / "tune" / "trials" / f"{first['user_attrs_trial_ids'].split(',')[0]}.parquet"
    table = pq.read_table(member)
    i = table.schema.get_field_index("search_trial")
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array([99] * len(table), pa.int64())), member)
    with open(tuning / "tune" / "study.yaml", "a") as f:  # as run with --set (before: "overrides: unknown key")
        f.write("\n# --set overrides, merged into base:\noverrides: {eval_samples: 200}\n")
    status = run("status", tuning)
    assert status.exit_code == 0, status.output  # before: "trials.parquet: missing; run `vi-sweep run`"
    assert "a tune-then-test protocol, tuning; no driver" in status.output
    assert "searches: 1/2 at their budget of 2 suggestions (2 tuning seeds each); 3/4 suggestions done" in status.output
    assert re.search(r"\ncompute: at least \d+\.\d\d pack-hours so far .*; about \d+\.\d more for the suggestions left", status.output)
    assert "sequential" not in run("status", tuning / "tune").output
    for command in (["claims", tuning], ["claims", tuning / "tune"], ["report", tuning, "--out", tmp_path / "rep"]):
        r = run(*command)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert "protocol" in r.output
    from analysis.__main__ import main as analysis_main
    assert analysis_main(["claims", str(tuning)]) == 2  # before: exit 0, CLAIMS.md decided on the tuning trials
    bad = run("status", "foo://x")  # before this change's review: a traceback from the tuning check
    assert bad.exit_code == 2 and bad.output.startswith("error: ") and "Traceback" not in bad.output
    # before: claims took the folder for a folder of exports and decided C4-like verdicts on the
    # tuning trials, writing CLAIMS.md into it
    assert sorted(p.name for p in tuning.iterdir()) == ["tune"] and not (tmp_path / "rep").exists()


def test_test_seeds_may_come_in_interims():
    # the test phase runs as any study's, a sequential design's rounds included (checked by hand:
    # tuning, then rounds of 2 seeds up to 4, status showing the path)
    study = load_study_text(STUDY.replace("seeds: 3", "seeds: {interim: 2, max: 4}").replace(
        "name: fair\n", "name: fair\npack_seeds: 2\n"), "fair.yaml")
    assert study.spec.seeds == {"interim": 2, "max": 4} and len(study.trials) == 12


def test_pack_hours_count_each_pack_once_and_a_trial_without_one_alone():
    import pandas as pd

    from vi_contract.tables import pack_hours

    trials = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "pack_id": ["p", "p", None, "q"],
                           "wall_s": [3600.0, 3600.0, 1800.0, float("nan")]})
    assert pack_hours(trials) == (1.5, 3)  # p's members share its hour; c alone; q never reported a wall time
    assert pack_hours(trials.iloc[:0]) == (0.0, 0)
    assert pack_hours(trials.drop(columns="pack_id")) == (2.5, 4)  # old tables: each trial its own pack
    assert pack_hours(trials.drop(columns="wall_s")) == (0.0, 3)


def test_the_tuning_estimate_takes_each_searchs_own_mean_then_its_cells_then_its_regimes():
    import pandas as pd

    from vi_sweeps.sweep.status import tuning_hours

    keys = ["dataset", "regime", "stabiliser"]
    packs = [("ring8", "5x5", "none", "p1", (500.0, 600.0)), ("ring8", "5x5", "none", "p2", (1200.0, 1200.0)),
             ("ring8", "5x5", "anchor", "p3", (1800.0, 1800.0)), ("ring8", "1x1", "none", "p4", (100.0, 100.0)),
             ("grid25", "5x5", "none", "p5", (3000.0, 3000.0)), ("ring8", None, "none", "p7", (3600.0, 3600.0))]
    rows = [(d, r, s, p, w, "finished", f"{p}-{m}") for d, r, s, p, walls in packs for m, w in enumerate(walls)]
    rows += [("ring8", "1x1", "anchor", "p6", 10.0, "diverged", "p6-0"),  # a suggestion half done: no mean of it
             ("ring8", "1x1", "anchor", "p6", 5.0, "running", "p6-1")]
    trials = pd.DataFrame(rows, columns=[*keys, "pack_id", "wall_s", "status", "trial_id"])
    searches = pd.DataFrame([("ring8", "5x5", "none", 2), ("ring8", "5x5", "anchor", 1), ("ring8", "1x1", "none", 1),
                             ("ring8", "1x1", "anchor", 0), ("grid25", "5x5", "none", 1), ("grid25", "5x5", "anchor", 0),
                             ("grid25", "1x1", "anchor", 0), ("ring8", None, "none", 1), ("digits", "3x3", "none", 0)],
                            columns=[*keys, "done"])
    spent, left, levels = tuning_hours(trials, searches, keys, "stabiliser", budget=4, seeds=2)
    assert spent == pytest.approx(10310 / 3600)  # every pack that trained, once (its longest member), p6 too
    # own: 900 (p1's 600 and p2), 1800, 100, 3000, 3600 (a setting of None matches itself); cell:
    # ring8/1x1 100 (p6 is not whole), grid25/5x5 3000 (its regime's would be 1650); regime: 1x1 100;
    # nothing shared: every whole pack's mean, 10,300 / 6
    assert left == pytest.approx((2 * 900 + 3 * 1800 + 3 * 100 + 4 * 100 + 3 * 3000 + 4 * 3000 + 4 * 100 + 3 * 3600
                                  + 4 * 10300 / 6) / 3600)
    assert list(levels.values()) == [5, 2, 1, 1]
    running = trials[trials["status"] == "running"]
    assert tuning_hours(running, searches, keys, "stabiliser", 4, 2) == (5 / 3600, None, {})
    # trials of no pack id are packs of their own (before: one pack of all of them, 3,600 s)
    old = pd.DataFrame({"dataset": ["ring8"] * 2, "pack_id": [None, None], "wall_s": [3600.0, 0.0],
                        "status": ["finished"] * 2, "trial_id": ["a", "b"]})
    one = pd.DataFrame({"dataset": ["ring8"], "done": [2]})
    assert tuning_hours(old, one, ["dataset"], None, 3, 1)[1] == 0.5
    assert tuning_hours(old.drop(columns="pack_id"), one, ["dataset"], None, 3, 1)[1] == 0.5  # an older table


def test_an_errored_trial_keeps_the_time_it_trained():
    from vi_contract.tables import build_tables, pack_hours, trial_table

    settings, rows = {"trial_id": "t1", "lam": 1.0}, [{"step": 10, "wall_s": 3600.0, "collapsed": False, "diverged": False}]
    blob = {"config": settings, "labels": {}, "study": "s", "error": "boom", "pack_id": "p", "search_trial": None}
    trials, _ = build_tables([trial_table(settings, {}, rows, "running", "s", pack="p")], [blob])
    assert trials["status"].tolist() == ["error"] and trials["steps_done"].tolist() == [10]
    assert trials["wall_s"].tolist() == [3600.0] and pack_hours(trials) == (1.0, 1)  # before: NaN, (0.0, 1)
