"""A Key declares its role, note and scale once (vi_sweeps.core.keys); the contract carries them and
every reader reads them there, results written before keys declared them through one shim
(vi_contract.read.ROLES_BEFORE_DECLARED) (issue 20)."""

import json

import pytest

from analysis import tables
from analysis.load import load_results
from tests.conftest import ROOT
from vi_contract.read import BLIND_BEFORE_DECLARED, ROLES_BEFORE_DECLARED, declared_keys
from vi_sweeps.core.keys import Key
from vi_sweeps.metrics import keys as eval_keys
from vi_sweeps.metrics.evaluators import EVALUATORS


def test_each_evaluator_declares_exactly_one_quality_key_with_a_direction():
    for name in EVALUATORS.names():
        quality = [k for k in EVALUATORS.meta(name).metrics if k.role == "quality"]
        assert len(quality) == 1 and quality[0].better == "lower", name
    assert eval_keys.FD_2D.describe()["scale"] == "log" and "Frechet distance" in eval_keys.FD_2D.note


def test_a_key_refuses_a_role_or_scale_it_does_not_know_and_a_quality_key_without_a_direction():
    with pytest.raises(ValueError, match="role: one of"):
        Key("eval/x", "x", role="best")
    with pytest.raises(ValueError, match="scale: one of"):
        Key("eval/x", "x", scale="sqrt")
    with pytest.raises(ValueError, match="says which direction is better"):
        Key("eval/x", "x", role="quality")
    with pytest.raises(ValueError, match="blind_to: one of"):
        Key("eval/x", "x", blind_to="colours")


def test_the_shim_gives_old_results_the_roles_the_declarations_have_now():
    for key, shim in ROLES_BEFORE_DECLARED.items():
        declared = next(k for n in EVALUATORS.names() for k in EVALUATORS.meta(n).metrics if k == key)
        assert {f: declared.describe()[f] for f in shim} == shim, key
    blind = {str(k): k.blind_to for n in EVALUATORS.names() for k in EVALUATORS.meta(n).metrics if k.blind_to}
    assert blind == BLIND_BEFORE_DECLARED == {"eval/fd_2d": "modes"}
    # a contract that declares blind_to keeps its own; one written before the field gets the shim's
    assert declared_keys({"keys": {"eval/fd_2d": {"blind_to": ""}}}, [])["keys"]["eval/fd_2d"]["blind_to"] == ""
    assert declared_keys({"keys": {"eval/fd_2d": {"label": "x"}}}, [])["keys"]["eval/fd_2d"]["blind_to"] == "modes"
    # a contract of its own wins; a key the tables lack is not invented
    out = declared_keys({"keys": {"eval/fd_2d": {"role": "", "label": "x"}}}, ["eval/fd_2d", "eval/modes"])
    assert out["keys"]["eval/fd_2d"]["role"] == "" and out["keys"]["eval/modes"]["role"] == "modes"
    assert "eval/fid_inception" not in out["keys"]


def strip_roles(folder):
    """The folder as it was written before keys declared roles (contract.json and metadata)."""
    import pyarrow.parquet as pq

    from vi_contract import schema

    contract = json.loads((folder / "contract.json").read_text())
    contract["keys"] = {k: {f: v for f, v in d.items() if f not in ("role", "note", "scale")}
                        for k, d in contract["keys"].items()}
    (folder / "contract.json").write_text(json.dumps(contract))
    for name in (schema.TRIALS_FILE, schema.METRICS_FILE):
        table = pq.read_table(folder / name)
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, schema.CONTRACT_KEY: json.dumps(contract)}),
                       folder / name)


def test_an_export_written_before_roles_reads_through_the_shim_and_migrates_to_equal_declarations(tmp_path):
    import shutil

    import pandas as pd

    from vi_sweeps.engine.migrate import declare_keys

    folder = tmp_path / "bn_ablation"
    shutil.copytree(ROOT / "docs" / "reproduction" / "bn_ablation", folder)
    committed = json.loads((folder / "contract.json").read_text())["keys"]
    strip_roles(folder)
    res = load_results([str(folder)], warn=False)
    assert tables.quality_metric(res.trials, res.contract["keys"]) == "eval/fd_2d"
    assert res.contract["keys"]["eval/fd_2d"]["scale"] == "log" and "note" not in res.contract["keys"]["eval/fd_2d"]
    before = pd.read_parquet(folder / "metrics.parquet")
    assert declare_keys(folder) == 15 and declare_keys(folder) == 0
    # what the committed one holds, and blind_to, declared after it was written (the shim reads the same from it)
    assert json.loads((folder / "contract.json").read_text())["keys"] == {
        **committed, "eval/fd_2d": {**committed["eval/fd_2d"], "blind_to": "modes"}}
    assert "blind_to" not in committed["eval/fd_2d"]
    assert load_results([str(ROOT / "docs" / "reproduction" / "bn_ablation")], warn=False).contract["keys"][
        "eval/fd_2d"]["blind_to"] == "modes"
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "metrics.parquet"), before)  # the data untouched
    assert "does not see modes" in load_results([str(folder)], warn=False).contract["keys"]["eval/fd_2d"]["note"]
