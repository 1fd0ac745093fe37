"""Results go through pyarrow filesystems (a folder or a URI), and writes are atomic: a file
caught half-written is never read as a result, and a failed write leaves no temporary file."""

import errno
import json
import os

import pytest

from tests.conftest import tmpfs
from vi_contract import schema
from vi_contract.store import Store, StoreError
from vi_contract.tables import consolidate, finished_ids, trial_table, write_trial


def rows(steps, status, tid="abc"):
    config = {"trial_id": tid, "model": "gan", "dataset": "ring8", "seed": 0, "lam": 0.0, "iterations": 20,
              "collapse_rule": "modes_frac<0.5"}
    data = [{"step": s, "wall_s": 0.1, "loss/d": 0.5, "collapsed": False, "diverged": False} for s in steps]
    return trial_table(config, {}, data, status)


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
    assert trials.loc[0, "steps_done"] == 20 and trials.loc[0, "config/iterations"] == 20
    assert trials.loc[0, "status"] == "finished"
    meta = store.read_table(schema.TRIALS_FILE).schema.metadata
    assert meta[schema.SCHEMA_KEY] == schema.SCHEMA_VERSION.encode()
    assert not [p for p in (tmp_path / "results").rglob("*.tmp-*") if "dead" not in p.name]


def test_a_finished_trial_file_is_never_rewritten(tmp_path):
    store = Store.open(str(tmp_path / "r"))
    assert write_trial(store, rows([10, 20], "finished"))
    stamp = (tmp_path / "r" / schema.trial_file("abc")).stat().st_mtime_ns
    assert not write_trial(store, rows([10], "running"))  # a second writer's stale state
    assert (tmp_path / "r" / schema.trial_file("abc")).stat().st_mtime_ns == stamp
    assert finished_ids(store) == {"abc"}


def test_bytes_round_trip(tmp_path):
    store = Store.open(str(tmp_path / "r"))
    store.write_bytes("checkpoints/x.pt", b"\x00\x01")
    assert store.read_bytes("checkpoints/x.pt") == b"\x00\x01"
    store.delete("checkpoints/x.pt")
    assert not store.exists("checkpoints/x.pt")


def test_a_reader_never_creates_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        Store.open(str(tmp_path / "nowhere"), create=False)
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        Store.open(str(tmp_path / "file"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 512 KiB filesystem."""
    with tmpfs(tmp_path / "disk", "512k") as mount:
        yield mount


def test_a_full_disk_is_one_clear_error_and_leaves_no_temporary_file(tiny_disk):
    store = Store.open(str(tiny_disk / "results"))
    store.write_bytes("small.json", json.dumps({"ok": 1}).encode())
    with pytest.raises(StoreError) as err:
        store.write_bytes("checkpoints/big.pt", os.urandom(2 * 2**20))
    assert err.value.errno == errno.ENOSPC
    assert "cannot write" in str(err.value) and "big.pt" in str(err.value) and "no space left" in str(err.value)
    assert "MiB free" in str(err.value)
    leftovers = [p.name for p in tiny_disk.rglob("*") if ".tmp-" in p.name]
    assert leftovers == [] and not store.exists("checkpoints/big.pt")
    assert json.loads(store.read_bytes("small.json")) == {"ok": 1}


def test_consolidation_rereads_only_the_trial_files_that_changed(tmp_path):
    import time

    import pyarrow.fs as pafs

    from analysis.synthetic import synthetic_results
    from vi_contract.tables import TrialFiles

    synthetic_results(tmp_path / "r", {(True, 1, 0.0): 0.5}, seeds=6, per_trial_files=True)
    paths = sorted((tmp_path / "r" / schema.TRIALS_DIR).iterdir())
    hour_ago = time.time() - 3600  # older than the window in which a file is read again to be sure
    for p in paths:
        os.utime(p, (hour_ago, hour_ago))
    files = TrialFiles(pafs.LocalFileSystem(), str(tmp_path / "r"))
    first = files.read()
    os.utime(paths[2], (hour_ago + 60, hour_ago + 60))  # one trial wrote a new evaluation
    second = files.read()
    assert len(first) == len(second) == 6
    assert [a is b for a, b in zip(first, second, strict=True)] == [True, True, False, True, True, True]
    paths[4].unlink()  # and one is gone (quarantined by another reader, say)
    assert len(files.read()) == 5


class Replacing:
    """An object store whose file is replaced between being sized and fetched, every time:
    each fetch returns the first bytes of the next version, stamped a moment ago."""

    def __init__(self, versions, age_s=0.0):
        import time
        self.versions, self.reads, self.age_s, self.born = versions, 0, age_s, time.time()

    def get_file_info(self, path):
        import time

        import pyarrow.fs as pafs
        blob = self.versions[min(self.reads, len(self.versions) - 1)]
        stamp = time.time() if len(self.versions) > 1 else self.born
        return pafs.FileInfo(path, pafs.FileType.File, size=len(blob), mtime=stamp - self.age_s)

    def open_input_stream(self, path):
        import pyarrow as pa
        current, self.reads = self.versions[self.reads % len(self.versions)], self.reads + 1
        following = self.versions[self.reads % len(self.versions)]
        return pa.BufferReader(following[:len(current)])


def test_a_file_replaced_at_every_read_is_not_read_this_time_and_never_taken_for_corrupt():
    # The clean-clone CI of 2026-12-07 saw test_s3's writer/reader race take a trial file being
    # rewritten for corrupt (the driver quarantines corrupt files: a good trial would rerun):
    # four reads, each meeting a newer version, all failed to parse. Before the fix this read
    # gave CORRUPT; a file that never held still while read is now only "not read this time".
    import io

    import pyarrow.parquet as pq

    from vi_contract.files import StillChanging, read_parquet
    from vi_contract.tables import TrialFiles

    versions = []
    for n in (1, 2, 3, 4, 5, 6):
        sink = io.BytesIO()
        pq.write_table(rows(range(10, 10 * n + 1, 10), "running"), sink)
        versions.append(sink.getvalue())
    with pytest.raises(StillChanging):
        read_parquet(Replacing(versions), "trials/abc.parquet")
    files = TrialFiles(Replacing(versions), "")
    assert files._read_one("trials/abc.parquet") is None
    # a file that held still for a minute and does not parse is corrupt, as before
    import pyarrow as pa
    still = Replacing([b"PAR1 not a footer"], age_s=60)
    assert TrialFiles(Replacing([b"PAR1 not a footer"], age_s=60), "")._read_one("x.parquet") is not None
    with pytest.raises(pa.ArrowInvalid):
        read_parquet(still, "trials/abc.parquet")


def test_a_subfolder_of_a_uri_goes_before_its_query_string():
    from vi_contract.files import subfolder

    # before: posixpath.join put it after the query (allow_bucket_creation=true/tune)
    assert subfolder("s3://b/p?endpoint_override=h:1&allow_bucket_creation=true", "tune") == \
        "s3://b/p/tune?endpoint_override=h:1&allow_bucket_creation=true"
    assert subfolder("s3://b/p/", "tune", "study.yaml") == "s3://b/p/tune/study.yaml"
    assert subfolder("/r/", "tune") == "/r/tune" and subfolder("/", "tune") == "/tune"
    assert subfolder("runs/a?b", "tune") == "runs/a?b/tune"  # a local folder's name may hold a '?'
