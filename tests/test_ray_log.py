"""RESULTS/ray.log says where Ray's own logs are and, when a run ends with Ray's error, holds the
ends of the raylet's and GCS's logs (issue 39): through a crash of the embedded Ray it stayed
empty (0 bytes), as the raylet and GCS write to Ray's session directory, not to the driver's
loggers. Tested on a fake session directory, without crashing Ray."""

import logging

import pytest

from vi_sweeps.sweep import ray_session


@pytest.fixture
def ray_log(tmp_path):
    """RESULTS/ray.log as the driver sets it (quiet_ray_logs), put back to nothing after."""
    handler = logging.FileHandler(tmp_path / "ray.log")
    ray_session.quiet_ray_logs(handler)
    yield tmp_path / "ray.log"
    handler.close()
    ray_session.quiet_ray_logs(logging.NullHandler())


@pytest.fixture
def session(tmp_path):
    """A session directory as Ray leaves it: a long raylet.out, a short gcs_server.out, an empty raylet.err."""
    logs = tmp_path / "session_2026-01-01_00-00-00_1" / "logs"
    logs.mkdir(parents=True)
    (logs / "raylet.out").write_text("".join(f"[raylet] line {i}\n" for i in range(1, 51)))
    (logs / "gcs_server.out").write_text("[gcs] started\n[gcs] node 1 registered\n[gcs] node 1 dead\n")
    (logs / "raylet.err").write_text("")
    (logs / "worker-1.out").write_text("not Ray's own\n")
    return logs.parent


def test_ray_log_names_the_session_and_copies_the_ends_of_rays_own_logs(ray_log, session):
    ray_session.note_session(str(session), own_node=True)
    ray_session.log_tails(str(session))
    text = ray_log.read_text()
    first = text.splitlines()[0]
    assert first.endswith(f"INFO ray.vi_sweeps: Ray's session directory: {session}; Ray's own logs: {session / 'logs'}")
    assert f"--- the last 20 lines of {session / 'logs' / 'raylet.out'} ---\n[raylet] line 31\n" in text
    assert "[raylet] line 50\n" in text and "[raylet] line 30\n" not in text  # its end only
    assert f"--- the last 3 lines of {session / 'logs' / 'gcs_server.out'} ---\n[gcs] started" in text
    assert "raylet.err" not in text and "not Ray's own" not in text  # empty, and not the raylet's or GCS's
    assert len(text.splitlines()) == 1 + 1 + (1 + 20) + (1 + 3)


def test_a_session_without_logs_and_a_cluster_say_so(ray_log, tmp_path):
    ray_session.note_session(str(tmp_path), own_node=False)
    ray_session.log_tails(str(tmp_path))
    ray_session.log_tails("")
    lines = ray_log.read_text().splitlines()
    assert lines[0].endswith("(a cluster's raylet and GCS logs are on its head and nodes)")
    assert lines[1].endswith(f"ERROR ray.vi_sweeps: Ray's own logs at the error: none found under {tmp_path}")
    assert lines[2].endswith("ERROR ray.vi_sweeps: Ray's own logs at the error: none found under no session")


def test_the_embedded_raylets_death_copies_its_log_before_ray_ends_the_driver(ray_log, session, monkeypatch, capsys):
    """What Ray publishes when the driver's own raylet dies goes to ray.log, and with it the end
    of raylet.out (Ray's core then ends the driver: nothing after this is written)."""
    monkeypatch.setattr(ray_session, "session_dir", lambda: str(session))
    with ray_session.ray_errors_to_log(own_node=True):
        for _ in range(2):  # Ray publishes a node's death more than once: one copy
            ray_session.ray_worker.print_to_stdstream({"pid": "raylet", "lines": ["Raylet is terminated: ip=1, id=2."]})
    text = ray_log.read_text()
    assert text.count("Raylet is terminated") == 2 and text.count("[raylet] line 50") == 1
    assert "error: this driver's own Ray node process (raylet) died" in capsys.readouterr().err


def test_the_session_directory_is_the_drivers_node_s(monkeypatch):
    class Node:
        def get_session_dir_path(self):
            return "/tmp/ray/session_x"

    monkeypatch.setattr(ray_session.ray_worker, "_global_node", None)
    assert ray_session.session_dir() == ""
    monkeypatch.setattr(ray_session.ray_worker, "_global_node", Node())
    assert ray_session.session_dir() == "/tmp/ray/session_x"


@pytest.mark.slow
@pytest.mark.ray
def test_a_search_whose_ray_tune_run_raises_stops_with_its_report_in_ray_log(tmp_path, monkeypatch):
    """`vi-sweep tune` when Ray Tune's run raises: as a sweep's, exit 1 and one line naming
    RESULTS/ray.log, which holds the traceback and the ends of Ray's own logs. Before, the error
    left the search as a traceback (RuntimeError: lost the GCS) and ray.log had neither."""
    from ray import tune

    from vi_sweeps.study.load import load_study_text
    from vi_sweeps.sweep.search import run_search

    def fit(self):
        raise RuntimeError("lost the GCS\nmore detail")

    monkeypatch.setattr(tune.Tuner, "fit", fit)
    study = load_study_text("""name: search_fails
datasets: [ring8]
base: {hidden: 16, eval_samples: 200}
budget: {iterations: 20, eval_every: 10}
search:
  space: {lam: {type: loguniform, low: 0.1, high: 10}}
  objective: {metric: fd_2d, mode: min, diverged_value: 100.0}
  trials: 1
""", "search.yaml")
    names, control = run_search(study, str(tmp_path / "r"), show_progress=False)
    assert control.exit_code == 1
    assert control.reason == "Ray failed: RuntimeError: lost the GCS (Ray's report: RESULTS/ray.log)"
    text = (tmp_path / "r" / "ray.log").read_text()
    assert "ERROR ray: the search's Ray Tune run failed" in text and "RuntimeError: lost the GCS" in text
    assert "ERROR ray.vi_sweeps: Ray's own logs at the error" in text
