"""What a driver inherits from the machine (issue 33): a Ray cluster someone else started, a
current-cluster file it left behind, an address that does not answer, a signal while it waits,
a pack's worker killed from outside. Each against real Ray processes this test starts and
stops itself, in a Ray temp dir of its own (Ray reads its current-cluster file from
$RAY_TMPDIR/ray/, so no other sweep on the machine is seen or touched)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from vi_contract import schema

pytestmark = pytest.mark.ray

TINY = """
name: tiny
datasets: [ring8]
base: {hidden: 16, eval_samples: 200, batch_size: 32}
grid:
  lam: [0.0, 5.0]
seeds: 2
pack_seeds: 2
budget: {iterations: ITERATIONS, eval_every: 200}
resources: {cpu: 1}
"""

FOREIGN = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
print(cluster.address, flush=True)
sys.stdin.read()  # until the test closes it
cluster.shutdown()
"""


@pytest.fixture
def ray_tmp():
    """A Ray temp dir of this test's own (short: Ray's socket paths must fit in 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vr", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def driver_env(ray_tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}


def study(tmp_path: Path, iterations: int = 200) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.replace("ITERATIONS", str(iterations)))
    return path


def run(tmp_path, ray_tmp, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "run", str(study(tmp_path)), *args],
                          env=driver_env(ray_tmp), capture_output=True, text=True, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_live_foreign_cluster_is_never_joined_and_auto_joins_it_explicitly(tmp_path, ray_tmp):
    """Before: `run` without --address joined the cluster the machine's current-cluster file
    names (here one with no CPU: "a trial needs 1 CPU but the Ray cluster has 0", exit 2)."""
    foreign = subprocess.Popen([sys.executable, "-c", FOREIGN], env=driver_env(ray_tmp), text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        address = foreign.stdout.readline().strip()
        assert (ray_tmp / "ray" / "ray_current_cluster").read_text().strip() == address
        r = run(tmp_path, ray_tmp, "--results", str(tmp_path / "r"), "--no-report")
        assert r.returncode == 0, r.stderr[-3000:]
        versions = json.loads((tmp_path / "r" / schema.VERSIONS_FILE).read_text())
        assert versions["ray_session"] == "embedded: a private local Ray this driver started"
        joined = run(tmp_path, ray_tmp, "--results", str(tmp_path / "auto"), "--address", "auto", timeout=120)
        assert joined.returncode == 2, joined.stderr[-3000:]
        assert "a trial needs 1 CPU but the Ray cluster has 0" in joined.stderr  # auto is that cluster
        assert "Traceback" not in joined.stderr and not (tmp_path / "auto").exists()
    finally:
        foreign.stdin.close()
        try:
            foreign.wait(timeout=60)
        except subprocess.TimeoutExpired:
            foreign.kill()
            foreign.wait()


@pytest.mark.slow
def test_a_stale_current_cluster_file_neither_hangs_nor_captures_a_sweep(tmp_path, ray_tmp):
    """Before: with the file of a cluster that was gone, `run` printed nothing for 10.5 minutes
    (here: past the 150 s timeout)."""
    (ray_tmp / "ray").mkdir()
    stale = f"127.0.0.1:{closed_port()}"
    (ray_tmp / "ray" / "ray_current_cluster").write_text(stale)
    r = run(tmp_path, ray_tmp, "--results", str(tmp_path / "r"), "--no-report", timeout=150)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (pd.read_parquet(tmp_path / "r" / schema.TRIALS_FILE)["status"] == "finished").sum() == 4
    auto = run(tmp_path, ray_tmp, "--results", str(tmp_path / "auto"), "--address", "auto", timeout=60)
    assert auto.returncode == 2, auto.stderr[-3000:]  # its time (under 15 s): benchmarks/bounds.py stale-auto
    assert auto.stderr.strip() == f"--address: {stale}: no Ray cluster answered there (Connection refused)"


@pytest.mark.slow
def test_an_address_that_does_not_answer_fails_in_one_line_and_a_signal_stops_the_wait(tmp_path, ray_tmp):
    """A port that accepts and never speaks (not a Ray head). Before: `run` waited there for
    minutes (here: past the 60 s timeout), and SIGTERM did not stop it."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        address = f"127.0.0.1:{mute.getsockname()[1]}"
        r = run(tmp_path, ray_tmp, "--results", str(tmp_path / "r"), "--address", address, timeout=60)
        assert r.returncode == 2, r.stderr[-3000:]  # its time (under 20 s): benchmarks/bounds.py mute-address
        assert r.stderr.strip().splitlines()[-1] == (f"--address: {address}: no Ray cluster answered within 10 s (not a "
                                                     "Ray head's GCS port, or a cluster still starting)")
        err = tmp_path / "err.txt"
        with err.open("w") as sink:
            proc = subprocess.Popen([sys.executable, "-m", "vi_sweeps.cli", "run", str(study(tmp_path)), "--results",
                                     str(tmp_path / "r"), "--address", address], env=driver_env(ray_tmp),
                                    stdout=subprocess.PIPE, stderr=sink, text=True)
            mute.settimeout(60)
            held = [mute.accept()[0] for _ in range(2)]  # the driver's check that the port listens, then Ray's client
            time.sleep(1)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=10)
            for conn in held:
                conn.close()
    text = err.read_text()
    assert proc.returncode == 143, text[-3000:]
    assert "stopped: interrupted (SIGTERM)" in text and "4 trial(s) did not finish" in text and "Traceback" not in text
    assert "results: " in out and not (tmp_path / "r").exists()


def descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process under `root` (the driver's own Ray among them)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            table[int(stat.parent.name)] = (ppid, (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    found, grew = {root: ""}, True
    while grew:
        new = {pid: cmd for pid, (ppid, cmd) in table.items() if ppid in found and pid not in found}
        found.update(new)
        grew = bool(new)
    return {pid: cmd for pid, cmd in found.items() if pid != root}


@pytest.mark.slow
def test_a_pack_whose_worker_is_killed_is_named_retried_recorded_and_a_resume_completes_it(tmp_path, ray_tmp):
    """SIGKILL of a pack's worker, three times (its first run and both retries). Before: Ray's
    "(raylet) A worker died ..." dumps on the terminal, no line naming the pack, no report of
    the two trials that finished."""
    results = tmp_path / "r"
    args = [sys.executable, "-m", "vi_sweeps.cli", "run", str(study(tmp_path, iterations=1000)), "--results",
            str(results), "--max-concurrent", "1"]
    proc = subprocess.Popen(args, env=driver_env(ray_tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = []
    deadline = time.monotonic() + 240
    while len(killed) < 3 and proc.poll() is None and time.monotonic() < deadline:
        workers = [pid for pid, cmd in descendants(proc.pid).items() if cmd.startswith("ray::ImplicitFunc") and pid not in killed]
        if workers:
            time.sleep(2)
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])
        time.sleep(0.2)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1 and len(killed) == 3, err[-3000:]
    died = "its worker process died (a signal such as SIGKILL, the kernel's OOM killer, or a crash)"
    lines = [line for line in err.splitlines() if died in line]
    assert [line.split(":")[0] for line in lines] == ["warning", "warning", "error"], err[-3000:]
    assert "retry 1 of 2" in lines[0] and "retry 2 of 2" in lines[1] and "no retry left" in lines[2]
    pack = lines[2].split(": ")[1]  # "pack 1a2b3c4d (gan/ring8 lam=0.0; seeds 0, 1)"
    assert all(pack in line for line in lines)
    terminal = out + err
    assert "Traceback" not in terminal and "(raylet)" not in terminal and "A worker died" not in terminal
    assert "A worker died or was killed" in (results / "ray.log").read_text()
    assert "2 trial(s) did not finish" in err and "report: " in out
    trials = pd.read_parquet(results / schema.TRIALS_FILE)
    lam = float(pack.split("lam=")[1].split(";")[0])
    assert sorted(trials.loc[trials["config/lam"] == lam, "status"]) == ["error", "error"]
    assert sorted(trials.loc[trials["config/lam"] != lam, "status"]) == ["finished", "finished"]
    assert "4 trials (2 error, 2 finished)" in (results / "report" / "REPORT.md").read_text()  # what finished
    again = subprocess.run(args, env=driver_env(ray_tmp), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (pd.read_parquet(results / schema.TRIALS_FILE)["status"] == "finished").sum() == 4


@pytest.mark.parametrize(("error", "cause"), [
    ("ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n\tpid: 7510\nThe actor is "
     "dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly "
     "exits with a connection error code 2. End of file.",
     "its worker process died (a signal such as SIGKILL, the kernel's OOM killer, or a crash)"),
    ("ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\nThe actor is dead because "
     "its worker process has died. Worker exit type: NODE_OUT_OF_MEMORY Worker exit detail: Task was killed due to the "
     "node running low on memory.\nMemory on the node (IP: 10.0.0.2, ID: ab) was 7.5GB used / 7.6GB limit (0.98)",
     "Ray's memory monitor killed its worker (the node ran low on memory)"),
    ("ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\nThe actor died because its "
     "node has died. Node Id: 3f2a", "the node it ran on left the cluster"),
    ("ray.exceptions.ActorUnavailableError: The actor 958d is unavailable: The actor is temporarily unavailable: "
     "RpcError: RPC error: Socket closed rpc_code: 14.",
     "its worker became unreachable (its node's Ray process died, or the network dropped)"),
    ("Failure # 1 (occurred at 2026-12-07)\nray::ImplicitFunc.train()\nTraceback (most recent call last):\n  File "
     "\"x.py\", line 1\nValueError: a plugin's own error", "ValueError: a plugin's own error"),
])
def test_a_failure_is_named_by_its_cause_in_one_line(error, cause):
    """The texts Ray Tune records for each way a pack is lost (Ray 2.60's messages), as the
    fault line names them."""
    from vi_sweeps.sweep.control import failure_cause

    assert failure_cause(f"Failure # 1 (occurred at 2026-12-07 06:05:38)\n{error}\n") == cause
