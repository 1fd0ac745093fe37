"""Results go through pyarrow filesystems (a folder or a URI), and writes are atomic: a file
caught half-written is never read as a result."""

from analysis import schema
from vi_sweeps.results import consolidate, finished_ids, trial_table, write_trial
from vi_sweeps.storage import Store


def rows(steps, status):
    config = {"trial_id": "abc", "model": "gan", "dataset": "ring8", "seed": 0, "lam": 0.0,
              "collapse_rule": "modes_frac<0.5"}
    data = [{"step": s, "collapsed": False, "diverged": False} for s in steps]
    return trial_table(config, data, status)


def test_a_uri_store_writes_atomically_and_lists_only_whole_files(tmp_path):
    store = Store.open(f"file://{tmp_path}/results")
    write_trial(store, rows([10], "running"))
    assert finished_ids(store) == set()
    write_trial(store, rows([10, 20], "finished"))
    assert finished_ids(store) == {"abc"}
    # a writer killed mid-way leaves only its temporary name, which nobody reads
    (tmp_path / "results" / "trials" / "dead.parquet.tmp-1234abcd").write_bytes(b"PAR1 half")
    assert store.listdir("trials") == ["abc.parquet"]
    trials, metrics = consolidate(store)
    assert list(trials["trial_id"]) == ["abc"] and list(metrics["step"]) == [10, 20]
    assert trials.loc[0, "iterations"] == 20 and trials.loc[0, "status"] == "finished"
    meta = store.read_table(schema.TRIALS_FILE).schema.metadata
    assert meta[schema.SCHEMA_KEY] == schema.SCHEMA_VERSION.encode()
    assert not [p for p in (tmp_path / "results").rglob("*.tmp-*") if "dead" not in p.name]


def test_bytes_round_trip(tmp_path):
    store = Store.open(str(tmp_path / "r"))
    store.write_bytes("checkpoints/x.pt", b"\x00\x01")
    assert store.read_bytes("checkpoints/x.pt") == b"\x00\x01"
    store.delete("checkpoints/x.pt")
    assert not store.exists("checkpoints/x.pt")
