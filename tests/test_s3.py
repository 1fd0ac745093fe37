"""Results on object storage, for real: an S3-compatible server (moto's standalone server)
started by the test on 127.0.0.1, reached through pyarrow's S3 filesystem as a cluster would
reach S3. Credentials come from the environment, as on a cluster node."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from analysis.load import load_results
from tests.conftest import ROOT
from tests.helpers import SMALL_PROTOCOL, session_gone, wait_for
from vi_contract import schema
from vi_contract.files import report_folder
from vi_contract.store import Store
from vi_contract.tables import finished_ids

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STUDY = """
name: on-s3
datasets: [ring8]
base: {hidden: 64, eval_samples: 500}
grid:
  lam: [0.0, 5.0]
seeds: 4
pack_seeds: 2
budget: {iterations: 1000, eval_every: 200}
resources: {cpu: 1}
"""


@pytest.fixture(scope="module")
def s3_server():
    server = Path(sys.executable).parent / "moto_server"
    if not server.exists():
        pytest.skip("moto[server] is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    yield port, env
    proc.terminate()
    proc.wait(timeout=10)


def uri(port, prefix):
    return f"s3://vi-sweeps-test/{prefix}?endpoint_override=127.0.0.1:{port}&scheme=http&allow_bucket_creation=true"


def test_a_sweep_on_s3_is_killed_resumes_with_every_trial_once_and_reports(s3_server, tmp_path, monkeypatch):
    port, creds = s3_server
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    results = uri(port, "sweeps/a")
    study = tmp_path / "s3.yaml"
    study.write_text(STUDY)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "vi_sweeps.cli", "run", str(study), "--results", results, "--no-report"]
    # One pack at a time, so the kill lands while a pack runs with its checkpoints on the server
    # (two packs at once could both finish, taking their checkpoints with them, between two polls:
    # a fast machine then never saw the moment to kill and the wait timed out).
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*cmd, "--max-concurrent", "1"], env=env, start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT)
    store = Store.open(results)
    assert wait_for(lambda: len(finished_ids(store)) >= 2 and len(store.listdir("checkpoints")) >= 2), log.read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_for(lambda: session_gone(proc.pid), timeout=30)
    done_before = finished_ids(store)
    assert 2 <= len(done_before) < 8
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    res = load_results([results], warn=False)
    assert len(res.trials) == 8 and res.trials["trial_id"].is_unique and (res.trials["status"] == "finished").all()
    assert (res.metrics.groupby("trial_id")["step"].apply(list) == [list(range(200, 1001, 200))] * 8).all()
    fs, root = pafs.FileSystem.from_uri(results)
    files = [i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=True)) if i.type == pafs.FileType.File]
    assert not [f for f in files if ".tmp-" in f] and not [f for f in files if f.endswith("lease.json")]
    for tid, step in res.metrics[["trial_id", "step"]].itertuples(index=False):
        assert f"{root}/{schema.sample_file(tid, step, '.npy')}" in files
    assert {f"{root}/{schema.TRIALS_FILE}", f"{root}/{schema.METRICS_FILE}", f"{root}/{schema.CONTRACT_FILE}"} <= set(files)
    status = subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "status", results], env=env, capture_output=True,
                            text=True, timeout=120)
    assert status.returncode == 0 and "trials: 8/8 done" in status.stdout, status.stdout + status.stderr
    # with no --out, the report goes to a local folder named after the results (before: a local
    # path made of the URI, tmp_path/"s3:"/bucket/sweeps/"a?endpoint_override=...&scheme=http"/report)
    report = subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "report", results], cwd=tmp_path,
                            env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert f"report: {tmp_path / report_folder(results) / 'report.html'}" in report.stdout and not (tmp_path / "s3:").exists()
    text = (tmp_path / report_folder(results) / "REPORT.md").read_text()
    assert "8 trials (8 finished)" in text and (tmp_path / report_folder(results) / "samples-gan-ring8.png").stat().st_size > 5000


def test_a_reader_of_a_missing_s3_prefix_exits_2_and_creates_nothing(s3_server, monkeypatch):
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main

    port, creds = s3_server
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    missing = uri(port, "no/such/sweep").replace("&allow_bucket_creation=true", "")
    r = CliRunner().invoke(main, ["status", missing])
    assert r.exit_code == 2 and "no such results folder" in r.output
    fs, root = pafs.FileSystem.from_uri(missing)
    assert fs.get_file_info(root).type == pafs.FileType.NotFound


def test_a_trial_file_replaced_while_it_is_read_is_never_taken_for_corrupt(s3_server, monkeypatch):
    # Before reads fetched whole objects, pyarrow read a file's footer and columns in separate
    # ranged requests; a file replaced in between read as corrupt, and the driver quarantined a
    # good (even a just-finished) trial file. A writer and a reader race here.
    import threading

    from vi_contract.tables import TrialFiles, trial_table

    port, creds = s3_server
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    store = Store.open(uri(port, "race"))
    config = {"trial_id": "racer", "model": "gan", "dataset": "ring8", "seed": 0, "iterations": 10**6}
    stop, seen_corrupt, reads = threading.Event(), [], [0]

    def write():
        rows = []
        for step in range(1, 200):
            rows.append({"step": step, "wall_s": 0.1, "loss/d": float(step), "collapsed": False, "diverged": False})
            store.write_table(schema.trial_file("racer"), trial_table(config, {}, rows, "running"))
        stop.set()

    def read():
        files = TrialFiles(store.fs, store.root)
        while not stop.is_set():
            files.read()
            seen_corrupt.extend(files.corrupt)
            reads[0] += 1

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert reads[0] > 20 and seen_corrupt == []


PROTOCOL = SMALL_PROTOCOL.replace("name: fair_small", "name: fair_on_s3").replace(
    "  test: {seeds: 2}", "    STORAGE\n  test: {seeds: 2}")


def test_a_protocol_on_s3_tunes_into_its_tune_folder_and_reads_back(s3_server, tmp_path, monkeypatch):
    """Before, RESULTS/tune of an S3 URI was joined after its query string (...&allow_bucket_creation=
    true/tune: 'not a valid boolean'), and the searches' default SQLite storage would have landed
    where the driver stood: now it is named (protocol.tune.storage) or refused in one line."""
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main

    port, creds = s3_server
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    results, path = uri(port, "protocols/a"), tmp_path / "fair.yaml"
    path.write_text(PROTOCOL.replace("STORAGE", ""))
    r = CliRunner().invoke(main, ["run", str(path), "--results", results, "--no-report", "--address", "local"])
    assert r.exit_code == 2 and "protocol.tune.storage: results on remote storage need an Optuna storage URL" in r.output
    fs, root = pafs.FileSystem.from_uri(results)
    assert fs.get_file_info(root).type == pafs.FileType.NotFound  # nothing written
    path.write_text(PROTOCOL.replace("STORAGE", f"storage: sqlite:///{tmp_path / 'optuna.db'}"))
    r = CliRunner().invoke(main, ["run", str(path), "--results", results, "--no-report", "--address", "local"])
    assert r.exit_code == 0, r.output
    assert fs.get_file_info(f"{root}/tune/search.parquet").type == pafs.FileType.File
    assert "trials: 4/4 done" in CliRunner().invoke(main, ["status", results]).output
    out = tmp_path / "exported"
    assert CliRunner().invoke(main, ["export", results, "--to", str(out)]).exit_code == 0
    assert len(load_results([str(out / "tune")], warn=False).trials) == 8  # 2 arms x 2 suggestions x 2 seeds
