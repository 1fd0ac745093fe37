"""One check decides whether an output path may be written (vi_contract.files.write_problem),
for every command that writes one (issue 20)."""

import os
import re

import pytest

from vi_contract.files import report_folder, write_problem


def test_write_problem_names_what_is_in_the_way_and_creates_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    assert write_problem(str(tmp_path / "new" / "deeper" / "rows.parquet")) is None
    assert not (tmp_path / "new").exists()
    assert write_problem(str(tmp_path / "file" / "rows.parquet")) == f"{tmp_path / 'file'} is a file, not a folder"
    assert write_problem(str(tmp_path / "dir")) == f"{tmp_path / 'dir'} is a folder"
    assert write_problem(str(tmp_path / "file"), "folder") == f"{tmp_path / 'file'} is a file, not a folder"
    assert write_problem(str(tmp_path / "dir"), "folder") is None
    assert write_problem("  ") == "an empty path"
    assert write_problem("~nosuchuser-vi/x").startswith("not a usable file path")


def test_a_report_of_results_on_object_storage_defaults_to_a_local_folder_named_after_them():
    # before: "s3://b/sweeps/a?endpoint_override=127.0.0.1:9000&scheme=http/report", a local path
    name = report_folder("s3://b/sweeps/a?endpoint_override=127.0.0.1:9000&scheme=http")
    assert re.fullmatch(r"report-b-sweeps-a-[0-9a-f]{8}", name)
    assert report_folder("gs://b/sweeps/a/").startswith("report-b-sweeps-a-") and report_folder("s3://b")[:9] == "report-b-"
    # no two URIs share a folder: before, "report-a" for the first pair (the last part alone),
    # then "report-b-x-y" for the second (parts joined)
    for one, other in (("s3://b/x/a", "s3://b/y/a"), ("s3://b/x-y", "s3://b/x/y"), ("s3://b/x y", "s3://b/x_y"),
                       ("gs://b/a", "s3://b/a"), ("s3://b/a?endpoint_override=h1", "s3://b/a?endpoint_override=h2")):
        assert report_folder(one) != report_folder(other)
    assert report_folder("s3://b/run #2/a b").startswith("report-b-run__2-a_b-")
    assert len(report_folder("s3://b/" + "x" * 300)) == len("report-") + 80 + 9  # a file name, not ENAMETOOLONG
    assert report_folder("results/quickstart") == "results/quickstart/report"
    assert report_folder("file:///abs/sweep") == "/abs/sweep/report"  # a local folder as a URI stays itself


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere")
def test_write_problem_sees_a_folder_without_write_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert write_problem(str(locked / "x.parquet")) == f"{locked} is not writable"
    finally:
        locked.chmod(0o700)


def test_an_output_is_never_a_device_a_fifo_a_link_or_a_name_ending_in_a_slash(tmp_path):
    """Before: fetch-weights --to /dev/null (or a FIFO, or a link) exited 0 and replaced it with
    a regular file; trial --out trail/ trained and then failed with a traceback."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert write_problem("/dev/null") == "/dev/null is not a regular file"
    assert write_problem(str(fifo)) == f"{fifo} is not a regular file"
    assert write_problem(str(tmp_path / "link")) == f"{tmp_path / 'link'} is a symbolic link; name the file it points to"
    assert write_problem(str(tmp_path / "new") + "/") == f"{tmp_path / 'new'}/ names a folder (it ends with /), not a file"
    assert write_problem(str(tmp_path / "real")) is None  # an existing regular file is replaced


def test_fetch_weights_refuses_a_device_writes_nothing_on_a_wrong_digest_and_leaves_a_readable_file(tmp_path):
    """Before: --to a device exited 0; a refused copy still created the destination's folders;
    the weights were left mode 0600 (unreadable by workers of other users on a shared disk)."""
    import hashlib

    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main

    source = tmp_path / "w.bin"
    source.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()[:16]
    r = CliRunner().invoke(main, ["fetch-weights", "--from", str(source), "--to", "/dev/null", "--sha256", digest])
    assert r.exit_code == 2 and "/dev/null is not a regular file" in r.output
    r = CliRunner().invoke(main, ["fetch-weights", "--from", str(source), "--to", str(tmp_path / "new" / "sub" / "w.pth")])
    assert r.exit_code == 2 and not (tmp_path / "new").exists()
    r = CliRunner().invoke(main, ["fetch-weights", "--from", str(source), "--to", str(tmp_path / "ok" / "w.pth"),
                                  "--sha256", digest])
    assert r.exit_code == 0, r.output
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "ok" / "w.pth").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["w.pth"]  # no .part left


@pytest.mark.parametrize(("args", "message"), [
    (["--out", ""], "--out: '': cannot be written there (an empty path)"),
    (["--out", "x.npy", "--samples", "x.npy"], "--samples: x.npy: the same file as --out"),
    (["--out", "trail/"], "--out: trail/: cannot be written there (trail/ names a folder"),
])
def test_trial_outputs_are_checked_before_training(tmp_path, monkeypatch, args, message):
    """Before: --out "" trained and wrote nothing, exit 0; --out and --samples one file lost the
    rows; --out trail/ failed after training with a traceback."""
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["trial", "--iterations", "2", *args])
    assert r.exit_code == 2 and message in r.output, r.output
    assert list(tmp_path.iterdir()) == []


def test_trial_samples_land_at_the_path_given(tmp_path, monkeypatch):
    """Before: --samples s.txt said it wrote s.txt, and numpy wrote s.txt.npy."""
    import numpy as np
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["trial", "--iterations", "2", "--samples", "s.txt"])
    assert r.exit_code == 0, r.output
    assert [p.name for p in tmp_path.iterdir()] == ["s.txt"] and np.load(tmp_path / "s.txt").shape[1] == 2
