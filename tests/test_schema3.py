"""Schema 3 (vi_contract/schema.py): setting columns prefixed (config/KEY, axis/NAME), nulls for
missing values, a pack id beside the pack size; read by any Parquet reader (DuckDB here), and
every earlier version read as 3 through vi_contract.upgrade."""

import json
import shutil

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analysis.export import export_results
from analysis.load import load_results
from tests.conftest import ROOT
from vi_contract import schema, upgrade
from vi_contract.columns import column_of, condition_columns
from vi_contract.read import ResultsError
from vi_contract.tables import pack_id
from vi_sweeps.cli.commands import main

DOCS = ROOT / "docs" / "reproduction"

STUDY = """name: nulls
models: [gan]
datasets: [ring8]
base: {hidden: 16, eval_every: 10, iterations: 20}
grid:
  lam: [0.0, 5.0]
  lr: [1.0e-3, 1.0e10]
seeds: 2
pack_seeds: 2
"""


@pytest.mark.slow
def test_duckdb_selects_config_and_eval_columns_with_nulls_where_values_are_missing(local_ray, tmp_path):
    # lr = 1e10 diverges at the first evaluation: its eval/modes is missing, and so are the search
    # trial (no search) and the error (none); a pack id names each condition's pack of 2 seeds
    study = tmp_path / "nulls.yaml"
    study.write_text(STUDY)
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(tmp_path / "r"), "--no-report"])
    assert r.exit_code == 0, r.output
    path = str(tmp_path / "r" / schema.TRIALS_FILE)
    rows = duckdb.sql(f"""SELECT "config/lam", "config/lr", "eval/modes", status, search_trial, error, pack_id,
                                 "config/pack_size", trial_id
                          FROM '{path}' ORDER BY "config/lam", "config/lr", "config/seed" """).fetchall()
    assert len(rows) == 8
    for lam, lr, modes, status, search_trial, error, _pack, size, _ in rows:
        assert lam in (0.0, 5.0) and search_trial is None and error is None and size == 2
        if lr == 1.0e10:
            assert status == "diverged" and modes is None
        else:
            assert status == "finished" and modes is not None and 0 <= modes <= 8
    packs: dict = {}
    for lam, lr, *_, pack, _, _tid in rows:
        packs.setdefault((lam, lr), set()).add(pack)
    assert all(len(p) == 1 for p in packs.values()) and len(set.union(*packs.values())) == 4
    # the id is the hash of the pack's trial ids in the study's layout (seed order)
    first = [tid for lam, lr, *_, tid in rows if (lam, lr) == (0.0, 1.0e-3)]
    assert packs[(0.0, 1.0e-3)] == {pack_id(first)}
    types = {c[0]: c[1] for c in duckdb.sql(f"DESCRIBE SELECT * FROM '{path}'").fetchall()}
    assert types["config/lam"] == "DOUBLE" and types["search_trial"] == "BIGINT" and types["eval/modes"] == "DOUBLE"
    meta = pq.read_schema(path).metadata
    assert meta[schema.SCHEMA_KEY] == b"3" and json.loads(meta[schema.CONTRACT_KEY])["schema"] == "3"


def test_a_committed_v2_export_reads_as_v3_with_every_value_kept(tmp_path):
    folder = DOCS / "bn_ablation"
    raw = pq.read_table(folder / schema.TRIALS_FILE)
    assert raw.schema.metadata[schema.SCHEMA_KEY] == b"2"
    before = raw.to_pandas()
    res = load_results([str(folder)], warn=False)
    after = res.trials.set_index("trial_id").loc[before["trial_id"]]
    labelled = res.contract["labelled"]
    assert set(labelled) == {"phases"}
    moved = 0
    for col in before.columns:
        if col in ("trial_id", "pack"):
            continue
        new = col if col in upgrade.V2_OUTPUTS or schema.is_result_key(col) else column_of(col, res.contract)
        missing = upgrade.NULL_WHEN.get(col, object())
        assert nulls_as_none(after[new]) == [None if v == missing else v for v in nulls_as_none(before[col])], col
        moved += new != col
    assert moved > 30 and "axis/phases" in after and "config/lam" in after and "phases" not in after
    assert (after["config/pack_size"].to_numpy() == before["pack"].to_numpy()).all()  # v2's `pack` was the size
    assert after["pack_id"].isna().all() and after["search_trial"].isna().all() and after["error"].isna().all()
    assert res.sources[0]["contract"]["schema"] == "3" and condition_columns(res.trials, res.contract) == [
        "config/model", "config/dataset", "config/bn", "axis/phases", "config/lam"]


def nulls_as_none(series) -> list:
    return [None if v is None or (isinstance(v, float) and v != v) or v is pd.NA else v for v in series]


def test_an_export_is_written_as_v3_and_reads_back_equal(tmp_path):
    export_results(str(DOCS / "pacgan_baseline"), tmp_path / "x")
    assert pq.read_schema(tmp_path / "x" / schema.TRIALS_FILE).metadata[schema.SCHEMA_KEY] == b"3"
    assert json.loads((tmp_path / "x" / schema.CONTRACT_FILE).read_text())["schema"] == "3"
    a, b = (load_results([str(f)], warn=False) for f in (DOCS / "pacgan_baseline", tmp_path / "x"))
    pd.testing.assert_frame_equal(a.trials, b.trials, check_dtype=False)
    pd.testing.assert_frame_equal(a.metrics, b.metrics, check_dtype=False)


@pytest.mark.slow
def test_a_sweep_resumes_from_a_v2_export_writing_v3_and_reruns_nothing(tmp_path):
    copy = tmp_path / "pacgan"
    shutil.copytree(DOCS / "pacgan_baseline", copy)
    before = load_results([str(copy)], warn=False)
    r = CliRunner().invoke(main, ["run", str(ROOT / "studies" / "pacgan_baseline.yaml"), "--results", str(copy),
                                  "--no-report"])
    assert r.exit_code == 0, r.output
    assert "restored 20 finished trials' own files" in r.output
    files = sorted((copy / schema.TRIALS_DIR).glob("*.parquet"))
    assert len(files) == 20 and all(pq.read_schema(f).metadata[schema.SCHEMA_KEY] == b"3" for f in files)
    assert pq.read_schema(copy / schema.TRIALS_FILE).metadata[schema.SCHEMA_KEY] == b"3"
    after = load_results([str(copy)], warn=False)
    assert not (copy / schema.CHECKPOINTS_DIR).exists() or not any((copy / schema.CHECKPOINTS_DIR).iterdir())
    order = lambda m: m.sort_values(["trial_id", "step"]).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(order(before.metrics), order(after.metrics), check_dtype=False)
    keep = [c for c in before.trials if c != "pack_id"]  # the layout names the packs now
    pd.testing.assert_frame_equal(before.trials[keep], after.trials[keep], check_dtype=False)
    assert after.trials["pack_id"].notna().all() and after.trials.groupby("config/dataset")["pack_id"].nunique().eq(1).all()


def test_a_live_v2_folder_is_refused_by_run_naming_reuse(tmp_path):
    folder = tmp_path / "live"
    shutil.copytree(DOCS / "pacgan_baseline", folder)
    (folder / schema.TRIALS_DIR).mkdir(exist_ok=True)
    table = pq.read_table(folder / schema.TRIALS_FILE)
    one = table.slice(0, 1).rename_columns(["step" if c == "steps_done" else c for c in table.column_names])
    pq.write_table(one.replace_schema_metadata({schema.SCHEMA_KEY: b"2"}), folder / schema.trial_file(one["trial_id"][0].as_py()))
    listing = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    r = CliRunner().invoke(main, ["run", str(ROOT / "studies" / "pacgan_baseline.yaml"), "--results", str(folder)])
    assert r.exit_code == 2
    line = r.output.strip().splitlines()[-1]
    assert "schema version '2'" in line and "--reuse" in line, r.output
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == listing  # nothing written
    # the readers still read it, through the shim
    assert len(load_results([str(folder)], warn=False).trials) == 1


@pytest.mark.parametrize("name", ["status", "treatment", "n", "pack_id"])
def test_a_labelled_axis_may_take_the_name_of_an_output(name, tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(f"name: s\ngrid:\n  {name}: {{a: {{lam: 0.0}}, b: {{lam: 5.0}}}}\nseeds: 1\n")
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 0, r.output


def odd_axes(folder, names: dict[str, tuple], compare: str):
    """A synthetic folder whose labelled axes take the names given (name -> (config key, {value: label}))."""
    from analysis.synthetic import synthetic_results
    from tests.helpers import R, rewrite

    synthetic_results(folder, R, 4)
    c = json.loads((folder / schema.CONTRACT_FILE).read_text())
    c["axes"] = ["model", "dataset", *names, "seed"]
    c["labelled"] = {n: {label: {key: value} for value, label in labels.items()} for n, (key, labels) in names.items()}
    c["compare"] = {"axis": compare, "baseline": next(iter(names[compare][1].values()))}
    rewrite(folder, lambda x: x.assign(**{f"axis/{n}": x[f"config/{key}"].map(labels)
                                          for n, (key, labels) in names.items()}), contract=c)


@pytest.mark.parametrize("compare", ["n", "regime", "treatment"])
def test_a_compare_axis_named_like_a_table_column_keeps_its_values_in_every_table(compare, tmp_path):
    """Found by a hostile review: compare axis `n` overwrote the count (the report raised
    "invalid literal for int() with base 10: 'b'"); `regime` or `treatment` dropped the
    treatment, so conditions.csv held two identical rows for the baseline and the treatment."""
    from analysis.report import analyse, convergence_rule

    other = {"n": "regime", "regime": "n", "treatment": "n"}[compare]
    odd_axes(tmp_path, {compare: ("bn", {True: "a", False: "b"}), other: ("lam", {0.0: "x", 5.0: "z"})}, compare)
    res = load_results([str(tmp_path)], warn=False)
    frames = analyse(res, convergence_rule(None, res)).frames()
    conditions = frames["conditions"]
    assert len(conditions) == 4 and not conditions.duplicated(["model", "dataset", "regime", f"{compare} (axis)"]).any()
    assert sorted(conditions[f"{compare} (axis)"]) == ["a", "a", "b", "b"] and (conditions["n"] == 4).all()
    assert set(frames["effects"]["treatment"]) == {"b"}


@pytest.mark.parametrize("name", ["trials", "done", "errors"])
def test_status_keeps_an_axis_named_like_a_count_apart_from_the_count(name, tmp_path):
    """Found by a hostile review: `status --json` raised "DataFrame columns must be unique"."""
    odd_axes(tmp_path, {name: ("bn", {True: "a", False: "b"}), "arm": ("lam", {0.0: "x", 5.0: "z"})}, "arm")
    (tmp_path / schema.STUDY_FILE).unlink()  # not a study this code can expand: status counts what the files hold
    (tmp_path / schema.STUDY_FILE).write_text("name: synthetic\nsearch: {}\n")
    r = CliRunner().invoke(main, ["status", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["conditions"]
    assert len(rows) == 4 and all(row["trials"] == 4 and row[f"{name} (axis)"] in ("a", "b") for row in rows)


@pytest.mark.slow
def test_columns_null_in_every_row_keep_their_type_so_folders_read_as_one(tmp_path):
    """Found by a hostile review: `error` and `device_name` (and `pack_id` of a v2 export) were
    written as Arrow's null type, and DuckDB could not read a v2 export beside a resumed run
    ("failed to cast column pack_id from type VARCHAR to NULL")."""
    export_results(str(DOCS / "pacgan_baseline"), tmp_path / "x")
    shutil.copytree(DOCS / "pacgan_baseline", tmp_path / "resumed")
    r = CliRunner().invoke(main, ["run", str(ROOT / "studies" / "pacgan_baseline.yaml"), "--results",
                                  str(tmp_path / "resumed"), "--no-report"])
    assert r.exit_code == 0, r.output
    for folder in ("x", "resumed"):
        types = {f.name: str(f.type) for f in pq.read_schema(tmp_path / folder / schema.TRIALS_FILE)}
        text = ("string", "large_string")  # pandas 3 writes text as large_string
        assert types["pack_id"] in text and types["error"] in text and types["search_trial"] == "int64", (folder, types)
    files = [str(tmp_path / f / schema.TRIALS_FILE) for f in ("x", "resumed")]
    assert duckdb.sql(f"SELECT count(pack_id), count(*), count(error) FROM read_parquet({files})").fetchall() == [(20, 40, 0)]


def test_a_v2_contract_without_labelled_takes_the_axes_from_its_tables(tmp_path):
    folder = tmp_path / "v2"
    shutil.copytree(DOCS / "bn_ablation", folder, ignore=shutil.ignore_patterns("samples", "report"))
    contract = json.loads((folder / schema.CONTRACT_FILE).read_text())
    del contract["labelled"]
    (folder / schema.CONTRACT_FILE).write_text(json.dumps(contract))
    trials = load_results([str(folder)], warn=False).trials
    assert "axis/phases" in trials and "config/phases" not in trials


def test_migrate_leaves_a_v3_folder_alone_and_refuses_an_unknown_version(tmp_path):
    from vi_sweeps.engine.migrate import main as migrate

    export_results(str(DOCS / "pacgan_baseline"), tmp_path / "x")
    before = {p: p.read_bytes() for p in (tmp_path / "x").rglob("*.parquet")}
    assert migrate([str(tmp_path / "x")]) == 0
    assert {p: p.read_bytes() for p in (tmp_path / "x").rglob("*.parquet")} == before
    table = pq.read_table(tmp_path / "x" / schema.TRIALS_FILE)
    pq.write_table(table.replace_schema_metadata({schema.SCHEMA_KEY: b"4"}), tmp_path / "x" / schema.TRIALS_FILE)
    assert migrate([str(tmp_path / "x")]) == 2


def test_folders_of_two_studies_are_refused_in_one_line_not_pooled(tmp_path):
    """Found by a hostile review (older than schema 3): the report of bn_ablation_digits beside
    pacgan_baseline raised "'<' not supported between instances of 'str' and 'float'"; once that
    was fixed, it reported both under the first study's comparison alone (issue 33: the second's
    vanished, its cells labelled regime=None). Now refused in one line naming both."""
    with pytest.raises(ResultsError) as err:
        load_results([str(DOCS / "bn_ablation_digits"), str(DOCS / "pacgan_baseline")], warn=False)
    assert str(err.value) == (f"{DOCS / 'pacgan_baseline'} holds study 'pacgan_baseline' comparing nothing, "
                              f"{DOCS / 'bn_ablation_digits'} study 'bn_ablation_digits' comparing lam against 0.0: "
                              "a report compares within one study, so report each on its own")
