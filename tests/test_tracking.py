"""Experiment tracking through Ray Tune's MLflow and W&B callbacks, on a real local Ray: MLflow
read back with its own client from a real tracking server this test starts on 127.0.0.1 (and
from the offline SQLite store), W&B in offline mode with its run files parsed back."""

import glob
import json
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from vi_contract import schema
from vi_contract.columns import name_of
from vi_sweeps.cli.commands import main
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.driver import run_sweep
from vi_sweeps.track import spec as tracking

pytestmark = pytest.mark.ray

STUDY = """
name: tracked
datasets: [ring8]
base: {hidden: 16, eval_samples: 300}
grid:
  lam: [0.0, 5.0]
seeds: 2
pack_seeds: 2
budget: {iterations: 40, eval_every: 20}
"""
LOGGED = ("wall_s", "collapsed", "diverged")  # beside every loss/* and eval/* key


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    if not tracking.installed("mlflow"):
        pytest.skip("mlflow is not installed (pip install 'vi-sweeps[track]')")
    root = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                             str(port), "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def study_at(tmp_path, text=STUDY):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return load_study(path)


def expected_runs(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """trials.parquet with its config columns under their key names (config/lam -> lam), and metrics.parquet."""
    trials = pd.read_parquet(results / schema.TRIALS_FILE)
    return trials.rename(columns=name_of), pd.read_parquet(results / schema.METRICS_FILE)


def check_mlflow(uri: str, results: Path, experiment: str = "tracked") -> None:
    """One FINISHED run per trial, named by condition and seed; its parameters are the trial's
    config; each logged key's history equals metrics.parquet; a sample image per evaluation."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    trials, metrics = expected_runs(results)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == len(trials) == 4
    by_tid = {r.data.tags[tracking.TAG]: r for r in runs}
    assert set(by_tid) == set(trials["trial_id"])
    for t in trials.itertuples(index=False):
        run = by_tid[t.trial_id]
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{experiment}/model=gan,dataset=ring8,lam={t.lam}/seed{t.seed}"
        params = run.data.params
        for key in ("lam", "seed", "hidden", "iterations", "eval_every", "bn", "pack_size", "pack_index", "lr"):
            assert params[key] == str(getattr(t, key)), key
        assert params["trial_id"] == t.trial_id and params["study"] == experiment
        rows = metrics[metrics["trial_id"] == t.trial_id].sort_values("step")
        keys = [c for c in rows if schema.is_result_key(c) or c in LOGGED]
        assert set(run.data.metrics) == {k for k in keys if rows[k].notna().any()}
        for key in keys:
            history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            want = [(int(s), float(v)) for s, v in zip(rows["step"], rows[key], strict=True) if v == v]
            assert history == want, key
        images = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
        assert sorted(int(p.split("+step+")[1].split("+")[0]) for p in images) == [20, 40]


@pytest.mark.slow
def test_mlflow_runs_on_a_real_tracking_server_equal_the_parquet(local_ray, mlflow_server, tmp_path):
    study = study_at(tmp_path)
    results = tmp_path / "results"
    target = tracking.resolve(f"mlflow={mlflow_server}", None, study.name, str(results))
    outcome = run_sweep(study, str(results), show_progress=False, tracking=target)
    assert outcome.exit_code == 0
    check_mlflow(mlflow_server, results)
    assert not (results / tracking.FOLDER).exists()  # a server's runs are on the server


@pytest.mark.slow
def test_mlflow_offline_by_default_in_sqlite_under_the_results(local_ray, tmp_path):
    if not tracking.installed("mlflow"):
        pytest.skip("mlflow is not installed")
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(results), "--track", "mlflow", "--no-report"])
    assert r.exit_code == 0, r.output
    db = results / tracking.FOLDER / "mlflow.db"
    assert db.exists() and (results / tracking.FOLDER / "mlflow-artifacts").is_dir()
    check_mlflow(f"sqlite:///{db}", results)


def wandb_records(path: Path) -> list:
    """Every record of a W&B run file: its 7-byte header, then LevelDB's log format (32 KiB
    blocks of checksum, length, type and data; a record may span blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out, buf, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
    return out


@pytest.mark.slow
def test_wandb_offline_from_the_study_file_one_run_per_trial(local_ray, tmp_path):
    if not tracking.installed("wandb"):
        pytest.skip("wandb is not installed")
    study = tmp_path / "study.yaml"
    study.write_text(STUDY + "tracking: {kind: wandb}\n")
    results = tmp_path / "results"
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(results), "--no-report"])
    assert r.exit_code == 0, r.output
    trials, metrics = expected_runs(results)
    files = glob.glob(str(results / tracking.FOLDER / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(files) == 4
    seen = set()
    for path in map(Path, files):
        records = wandb_records(path)
        runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert len(runs) == 1, (path, path.stat().st_size, [r.WhichOneof("record_type") for r in records])
        run = runs[0]
        t = trials.set_index("trial_id").loc[run.run_id]
        seen.add(run.run_id)
        assert run.display_name == f"tracked/model=gan,dataset=ring8,lam={t['lam']}/seed{t['seed']}"
        assert run.run_group == f"tracked/model=gan,dataset=ring8,lam={t['lam']}" and run.project == "tracked"
        config = {i.key: json.loads(i.value_json) for i in run.config.update}
        assert config["lam"] == t["lam"] and config["seed"] == t["seed"] and config["pack_index"] == t["pack_index"]
        assert config["trial_id"] == run.run_id and config["hidden"] == 16 and config["study"] == "tracked"
        history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                   for r in records if r.WhichOneof("record_type") == "history"]
        rows = metrics[metrics["trial_id"] == run.run_id].sort_values("step")
        assert [h["_step"] for h in history] == rows["step"].tolist() == [20, 40]
        for h, (_, row) in zip(history, rows.iterrows(), strict=True):
            for key in [c for c in rows if schema.is_result_key(c) or c in LOGGED]:
                if row[key] == row[key]:
                    assert h[key] == pytest.approx(float(row[key]), rel=1e-12), key
            assert h["samples/_type"] == "image-file" and h["samples/width"] == 256
            assert (path.parent / "files" / h["samples/path"]).stat().st_size > 500
    assert seen == set(trials["trial_id"])


def test_a_tracker_that_is_not_installed_is_exit_2_in_one_line_naming_the_extra(tmp_path, monkeypatch):
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    results = tmp_path / "results"
    monkeypatch.setattr(tracking, "installed", lambda kind: False)
    for option in ("mlflow", "wandb=someproject"):
        r = CliRunner().invoke(main, ["run", str(study), "--results", str(results), "--track", option])
        assert r.exit_code == 2
        assert r.output.strip().count("\n") == 0 and 'pip install "vi-sweeps[track]"' in r.output
        assert option.partition("=")[0] + " is not installed" in r.output
    assert not results.exists()


BAD = {
    "unknown tracker": (["--track", "neptune"], "--track: 'neptune': valid forms: mlflow, mlflow=URI, wandb, wandb=PROJECT"),
    "empty uri": (["--track", "mlflow="], "--track: 'mlflow=': an empty URI after '='"),
    "remote results": (["--track", "mlflow", "--results", "s3://bucket/x"],
                       "results on object storage: name the tracking server, --track mlflow=URI"),
    # before: a traceback (UnsupportedModelRegistryStoreURIException) after study.yaml, contract.json,
    # versions.json and ray.log were written, exit 0
    "unknown scheme": (["--track", "mlflow=bad://x"], "--track: mlflow=bad://x: unknown scheme 'bad'; valid choices: "
                       "http://, https://, file://, sqlite://"),
    "no host": (["--track", "mlflow=http://"], "--track: mlflow=http://: no host"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tracking_is_exit_2_naming_it(case, tmp_path):
    args, expected = BAD[case]
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    if "--results" not in args:
        args = [*args, "--results", str(tmp_path / "r")]
    r = CliRunner().invoke(main, ["run", str(study), *args])
    assert r.exit_code == 2 and expected in r.output, r.output
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not tracking.installed("mlflow"), reason="the [track] extra is not installed")
def test_a_tracking_server_that_does_not_answer_is_refused(tmp_path):
    """Before: `--track mlflow=http://127.0.0.1:CLOSED` hung for 259 s (MLflow's retries), then a
    traceback, after files were written. Its time (under 10 s): benchmarks/bounds.py mlflow-closed."""
    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    study = tmp_path / "study.yaml"
    study.write_text(STUDY + f"tracking: {{kind: mlflow, target: 'http://127.0.0.1:{port}'}}\n")
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(tmp_path / "r")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert f"tracking: mlflow=http://127.0.0.1:{port}: cannot reach 127.0.0.1:{port}" in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_a_bad_tracking_block_in_the_study_file_is_exit_2(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(STUDY + "tracking: {kind: tensorboardx}\n")
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 2 and "tracking.kind" in r.output and "'mlflow' or 'wandb'" in r.output, r.output


def test_tracking_is_not_part_of_the_experiment(tmp_path):
    """A sweep resumes with tracking added: the study as run differs only in how it runs."""
    from vi_sweeps.study.load import definition_differences

    plain = study_at(tmp_path)
    (tmp_path / "t").mkdir()
    tracked = study_at(tmp_path / "t", STUDY + "tracking: {kind: mlflow, target: 'http://127.0.0.1:5000'}\n")
    assert tracked.spec.tracking.kind == "mlflow" and definition_differences(plain, tracked) == []
    assert [t.trial_id for t in plain.trials] == [t.trial_id for t in tracked.trials]
