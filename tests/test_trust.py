"""A trial id names one sequence of numbers, and nothing read from a results folder runs code.

Every recovery path (a checkpoint quarantined, truncated, or members left at different steps
by a full disk) gives the rows of a clean run bit for bit, because each trial trains at its
own place of a pack of its own size whatever else runs; another pack layout is another id."""

import os
import shutil

import pytest
import torch

from tests.conftest import tiny
from tests.helpers import as_pack, rows_without_wall
from vi_contract import schema
from vi_contract.store import Store
from vi_sweeps.engine.runner import Member, PackRunner, PackSpec
from vi_sweeps.study.expansion import condition_key, pack_layout
from vi_sweeps.study.load import load_study_text
from vi_sweeps.sweep.driver import make_packs

K = 3


@pytest.fixture
def pack(tmp_path):
    """A pack of three trials, its clean run's rows, and a second folder to break."""
    cfgs = as_pack([tiny(iterations=6, eval_every=2, lam=5.0, seed=s) for s in range(K)])
    spec = PackSpec(str(tmp_path / "clean"), "s", tuple(Member(c.model_dump(), {}) for c in cfgs))
    clean = Store.open(str(tmp_path / "clean"))
    list(PackRunner(clean, spec).run())
    return spec, clean, Store.open(str(tmp_path / "broken"))


def rows(store, tid):
    return rows_without_wall(store.read_table(schema.trial_file(tid)).to_pylist())


def checkpoint(store, tid):
    return store.root + f"/{schema.CHECKPOINTS_DIR}/{tid}.pt"


def run_to(store, spec, rounds):
    run = PackRunner(store, spec).run()
    for _ in range(rounds):
        next(run)
    run.close()


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_quarantined_and_runs_nothing(pack, tmp_path):
    """Before: torch.load(weights_only=False) ran the payload's shell command on the worker."""
    spec, clean, store = pack
    ids = spec.trial_ids
    run_to(store, spec, 1)  # every member checkpointed at step 2
    marker = tmp_path / "pwned"
    buf = open(checkpoint(store, ids[1]), "wb")
    torch.save({"step": 2, "payload": Payload(marker)}, buf)
    buf.close()
    runner = PackRunner(store, spec)
    list(runner.run())
    assert not marker.exists()
    assert list((tmp_path / "broken" / schema.QUARANTINE_DIR / schema.CHECKPOINTS_DIR).iterdir())
    for tid in ids:  # the quarantined member started over, alone at its place: the clean numbers
        assert rows(store, tid) == rows(clean, tid), tid


def test_a_truncated_checkpoint_restarts_its_trial_to_the_clean_numbers(pack):
    """Before: the restarted member trained as a pack of one (fd_2d 0.133 instead of 12.56 in
    a longer run); now at its place of a pack of three."""
    spec, clean, store = pack
    ids = spec.trial_ids
    run_to(store, spec, 2)  # step 4
    path = checkpoint(store, ids[2])
    with open(path, "r+b") as f:
        f.truncate(100)
    list(PackRunner(store, spec).run())
    for tid in ids:
        assert rows(store, tid) == rows(clean, tid), tid


def test_members_left_at_different_steps_resume_to_the_clean_numbers(pack):
    """A full disk (or a kill) between two members' checkpoints: member 0 stands at step 2,
    the others at step 4; they resume as two groups, each at its places of a pack of three."""
    spec, clean, store = pack
    ids = spec.trial_ids
    run_to(store, spec, 1)
    kept = open(checkpoint(store, ids[0]), "rb").read()
    run_to(store, spec, 1)  # on to step 4
    with open(checkpoint(store, ids[0]), "wb") as f:
        f.write(kept)
    list(PackRunner(store, spec).run())
    for tid in ids:
        assert rows(store, tid) == rows(clean, tid), tid


def test_a_finished_member_is_not_rerun_and_the_rest_keep_their_numbers(pack, tmp_path):
    spec, clean, store = pack
    ids = spec.trial_ids
    run_to(store, spec, 1)
    shutil.copy(clean.root + "/" + schema.trial_file(ids[1]), store.root + "/" + schema.trial_file(ids[1]))
    stamp = os.stat(store.root + "/" + schema.trial_file(ids[1])).st_mtime_ns
    list(PackRunner(store, spec).run())
    assert os.stat(store.root + "/" + schema.trial_file(ids[1])).st_mtime_ns == stamp
    for tid in ids:
        assert rows(store, tid) == rows(clean, tid), tid


STUDY = """
name: layout
datasets: [ring8]
grid: {{lam: [0.0, 5.0]}}
seeds: 5
pack_seeds: {k}
budget: {{iterations: 4, eval_every: 2}}
"""


def test_another_pack_seeds_gives_other_trial_ids_for_the_same_conditions():
    """Before: pack_seeds was not in the id, so a study resumed with another one mixed rows of
    two arithmetics under the same ids."""
    two, five = (load_study_text(STUDY.format(k=k), "layout.yaml") for k in (2, 5))
    assert {t.trial_id for t in two.trials}.isdisjoint(t.trial_id for t in five.trials)
    assert {condition_key(t.config, t.labels) for t in two.trials} == {condition_key(t.config, t.labels) for t in five.trials}
    assert [(t.config.seed, t.config.pack_size, t.config.pack_index) for t in two.trials[:5]] == [
        (0, 1, 0), (1, 2, 0), (2, 2, 1), (3, 2, 0), (4, 2, 1)]  # 5 seeds at 2 a pack: 1, 2 and 2


def test_the_layout_is_the_studys_not_what_is_left_to_run():
    """Before: make_packs packed the unfinished seeds afresh (3 left of 5 made one pack of 3)."""
    study = load_study_text(STUDY.format(k=5), "layout.yaml")
    todo = {t.trial_id for t in study.trials if t.config.seed in (1, 3, 4)}
    packs = make_packs(study, "/nowhere", todo)
    assert [[(m.config["seed"], m.config["pack_size"], m.config["pack_index"]) for m in p.members] for p in packs] == [
        [(1, 5, 1), (3, 5, 3), (4, 5, 4)]] * 2


@pytest.mark.parametrize("n, k, sizes", [(9, 8, [4, 5]), (20, 20, [20]), (1, 8, [1]), (7, 1, [1] * 7), (10, 3, [2, 3, 2, 3])])
def test_pack_layout_divides_seeds_as_evenly_as_they_go(n, k, sizes):
    layout = pack_layout(n, k)
    assert [len(r) for r in layout] == sizes and [i for r in layout for i in r] == list(range(n))


def _live_folder(tmp_path):
    from analysis.synthetic import synthetic_results

    folder = tmp_path / "live"
    synthetic_results(folder, {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5}, 2, per_trial_files=True)
    return folder


@pytest.mark.parametrize("where", ["contract", "trial file"])
def test_a_live_folder_of_schema_99_is_refused_in_one_line(where, tmp_path):
    """Before: a contract.json or trial files saying version 99 were read silently (exit 0)."""
    import json

    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main

    folder = _live_folder(tmp_path)
    if where == "contract":
        contract = json.loads((folder / "contract.json").read_text())
        (folder / "contract.json").write_text(json.dumps({**contract, "schema": "99"}))
    else:
        path = sorted((folder / "trials").iterdir())[0]
        table = pq.read_table(path)
        pq.write_table(table.replace_schema_metadata({schema.SCHEMA_KEY: b"99"}), path)
    r = CliRunner().invoke(main, ["report", str(folder), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and "schema version '99'" in r.output, r.output
    assert not (tmp_path / "rep").exists()


def test_a_run_on_a_folder_of_another_schema_is_refused_before_writing(tmp_path):
    import json

    from vi_sweeps.study.config import ConfigError
    from vi_sweeps.sweep.driver import run_sweep

    folder = _live_folder(tmp_path)
    contract = json.loads((folder / "contract.json").read_text())
    (folder / "contract.json").write_text(json.dumps({**contract, "schema": "99"}))
    before = sorted(p.name for p in folder.rglob("*"))
    with pytest.raises(ConfigError, match="schema version '99'"):
        run_sweep(load_study_text(STUDY.format(k=2), "layout.yaml"), str(folder), show_progress=False)
    assert sorted(p.name for p in folder.rglob("*")) == before


def test_status_after_a_killed_driver_names_no_trial_running(tmp_path):
    """Before: the per-condition table counted trials under "running" beside "no driver"."""
    import json
    import socket

    from vi_sweeps.sweep.driver import prepare_store
    from vi_sweeps.sweep.status import sweep_status

    study = load_study_text(STUDY.format(k=5), "layout.yaml")
    store = prepare_store(study, str(tmp_path / "r"))
    run_to(store, make_packs(study, store.uri, {t.trial_id for t in study.trials})[0], 1)  # 5 trials at step 2
    (tmp_path / "r" / "lease.json").write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345}))
    text = sweep_status(str(tmp_path / "r"))
    assert "no driver (stopped or finished)" in text and "5 interrupted" in text, text
    header = text.split("per condition:\n")[1].splitlines()[0].split()
    assert "interrupted" in header and "running" not in header, text


def test_status_of_a_folder_of_an_earlier_identity_counts_what_it_records():
    """docs/measurements/bn_ablation_ring8_5seeds (schema 1, ids of an earlier identity) read
    '0/40 done (0 finished, 0 diverged, 12 collapsed) ... 40 not started': this version's
    expansion names other trial ids, so none of the 40 recorded trials was matched."""
    from tests.conftest import ROOT
    from vi_sweeps.sweep.status import sweep_status

    text = sweep_status(str(ROOT / "docs" / "measurements" / "bn_ablation_ring8_5seeds"))
    assert "trials: 40/40 done (40 finished, 0 diverged, 12 collapsed)" in text and "0 not started" in text
    assert "40 of the 40 recorded trials are not trials of the study as this version expands it" in text
