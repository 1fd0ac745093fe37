"""The modules only a slow test reached (issue 36: every module is exercised by the fast tier):
`python -m vi_sweeps.cli` and `python -m analysis` called in this process, `--reuse` of a pack
trained here without Ray, and the first round of a sequential design."""

import logging
import os
import runpy
import sys

import pandas as pd
import pytest

from vi_contract import schema
from vi_contract.store import Store
from vi_sweeps.engine.runner import PackRunner
from vi_sweeps.study.load import load_study_text
from vi_sweeps.sweep.driver import make_packs, prepare_store

STUDY = """
name: reused
datasets: [ring8]
base: {hidden: 16, mlp_layers: 2, batch_size: 16, eval_samples: 200}
grid: {lam: [0.0, 5.0]}
seeds: 2
pack_seeds: 2
budget: {iterations: 6, eval_every: 3}
"""


def test_python_m_vi_sweeps_cli_is_the_vi_sweep_command(monkeypatch, capsys):
    def exit_(code):  # the command ends in os._exit (vi_sweeps.cli.commands.entry): here, a SystemExit
        raise SystemExit(code)

    monkeypatch.setattr(sys, "argv", ["vi-sweep", "--help"])
    monkeypatch.setattr(os, "_exit", exit_)
    monkeypatch.setattr(logging, "shutdown", lambda: None)  # pytest's own log handlers stay open
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("vi_sweeps.cli", run_name="__main__")
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("validate", "run", "report", "status", "trial"))


def test_python_m_analysis_refuses_a_folder_that_is_not_results_with_exit_2(tmp_path, capsys):
    from analysis.__main__ import main

    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()


def numbers(rows):
    return [{k: v for k, v in r.items() if (k == "step" or schema.is_result_key(k)) and v is not None and v == v} for r in rows]


def test_reuse_takes_a_pack_trained_elsewhere_with_its_rows_and_leaves_the_rest(tmp_path, capsys):
    from vi_sweeps.sweep.reuse import contradiction, reuse_finished

    study = load_study_text(STUDY, "reused.yaml")
    source = prepare_store(study, str(tmp_path / "a"))  # its study, contract and versions, as a sweep writes them
    first, second = make_packs(study, source.uri, {t.trial_id for t in study.trials})
    list(PackRunner(source, first).run())  # one pack of two, without Ray
    here = Store.open(str(tmp_path / "b"))
    assert reuse_finished(str(tmp_path / "a"), study, here) == 2
    for tid in first.trial_ids:  # every step's losses and metrics (a column empty in every row is not copied)
        taken, trained = (numbers(store.read_table(schema.trial_file(tid)).to_pylist()) for store in (here, source))
        assert taken == trained and [r["step"] for r in taken] == [3, 6] and "loss/d" in taken[0]
    assert not any((tmp_path / "b" / "trials" / f"{tid}.parquet").exists() for tid in second.trial_ids)
    assert reuse_finished(str(tmp_path / "a"), study, here) == 0  # taken once
    # a trial whose evaluations are not its budget's is not its id's
    rows = pd.DataFrame({"step": [3]})
    trial = source.read_table(schema.trial_file(first.trial_ids[0])).to_pandas().iloc[-1]
    assert contradiction(trial, rows, {}) is not None
    assert capsys.readouterr().err == ""


def test_a_sequential_design_starts_with_the_first_pack_of_every_condition(tmp_path):
    from vi_sweeps.cli.sequential import progress_line, run_sequential

    text = STUDY.replace("seeds: 2\npack_seeds: 2\n", "seeds: {interim: 2, max: 4}\npack_seeds: 2\n") + (
        "compare: {axis: lam, baseline: 0.0}\nclaims:\n  - id: S\n    statement: lambda lowers collapse\n"
        "    primary: {endpoint: collapse_late, expect: lower}\n")
    study = load_study_text(text, "seq.yaml")
    asked = []

    class Refused:
        exit_code = 1

    outcome, chosen = run_sequential(study, str(tmp_path / "r"), lambda only: asked.append(only) or Refused())
    assert chosen == {t.trial_id for t in study.trials if t.config.seed < 2} and len(chosen) == 4
    assert asked == [chosen] and outcome.exit_code == 1  # a round that fails ends the design
    assert progress_line([], study.spec.seeds) == "claims 0/0 decided · interim 0 of 2"
