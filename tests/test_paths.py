"""One check decides whether an output path may be written (vi_contract.files.write_problem),
for every command that writes one (issue 20)."""

import os

import pytest

from vi_contract.files import write_problem


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


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere")
def test_write_problem_sees_a_folder_without_write_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert write_problem(str(locked / "x.parquet")) == f"{locked} is not writable"
    finally:
        locked.chmod(0o700)
