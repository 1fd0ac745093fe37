"""A results folder broken in every way a hostile tester found: readers (status, report,
export, claims) exit 2 with one line naming the file and write nothing, or go on with a note
where the broken file is informative only. Each case ended in a traceback before."""

import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analysis.synthetic import synthetic_results
from tests.conftest import ROOT
from vi_contract import schema
from vi_sweeps.cli.commands import main


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pristine") / "r"
    synthetic_results(folder, {(True, 1, 0.0): 0.5, (True, 1, 5.0): 0.5}, seeds=4, per_trial_files=True, snapshots=True)
    return folder


def wrong_types(r):
    path = sorted((r / schema.TRIALS_DIR).iterdir())[0]
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index("step"), "step",
                                    pa.array([str(v) for v in table["step"].to_pylist()])), path)


def no_columns(r):
    pq.write_table(pa.table({"x": [1, 2]}), sorted((r / schema.TRIALS_DIR).iterdir())[1])


def bad_snapshots(r):
    for p in list((r / schema.SAMPLES_DIR).rglob("*.npy"))[:20]:
        p.write_bytes(b"not a numpy file")


# case -> (how to break a copy, what the one line says; None: the readers go on, with a note)
CASES = {
    "contract not JSON": (lambda r: (r / schema.CONTRACT_FILE).write_text("{not json"), "contract.json: not JSON"),
    "contract a list": (lambda r: (r / schema.CONTRACT_FILE).write_text("[1, 2]"), "contract.json: expected a JSON object"),
    # before: report ended in an IndexError traceback (no geometry to draw the samples over), export wrote a copy
    # without one, exit 0
    "contract missing": (lambda r: (r / schema.CONTRACT_FILE).unlink(), "contract.json: missing, and the tables carry none"),
    "study not UTF-8": (lambda r: (r / schema.STUDY_FILE).write_bytes(b"\xff\xfe"), "study.yaml: not UTF-8 text"),
    "study a folder": (lambda r: ((r / schema.STUDY_FILE).unlink(), (r / schema.STUDY_FILE).mkdir()), "study.yaml: cannot be read"),
    "versions garbage": (lambda r: (r / schema.VERSIONS_FILE).write_text("xx"), None),
    "error record empty": (lambda r: ((r / schema.ERRORS_DIR).mkdir(), (r / schema.ERRORS_DIR / "a.json").write_text("{}")), None),
    "error record a list": (lambda r: ((r / schema.ERRORS_DIR).mkdir(), (r / schema.ERRORS_DIR / "a.json").write_text("[1]")), None),
    "lease a list": (lambda r: (r / "lease.json").write_text("[1]"), None),
    "lease pid text": (lambda r: (r / "lease.json").write_text('{"pid": "abc", "host": "x"}'), None),
    "trial file of wrong types": (wrong_types, None),
    "trial file without its columns": (no_columns, None),
    "corrupt snapshots": (bad_snapshots, None),
}
COMMANDS = {"status": lambda r, out: ["status", str(r)], "report": lambda r, out: ["report", str(r), "--out", str(out)],
            "export": lambda r, out: ["export", str(r), "--to", str(out)]}


# a report draws its figures (3-5 s each): those cases are slow
@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.slow) if c == "report" else c for c in COMMANDS])
@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_results_folder_is_one_line_or_a_note_never_a_traceback(pristine, tmp_path, case, command):
    r = tmp_path / "r"
    shutil.copytree(pristine, r)
    breaks, expected = CASES[case]
    breaks(r)
    out = tmp_path / "out"
    run = CliRunner().invoke(main, COMMANDS[command](r, out))  # in this process: an exception is a traceback
    assert run.exception is None or isinstance(run.exception, SystemExit), repr(run.exception)
    if expected is None or (command == "status" and case in ("corrupt snapshots",)):
        assert run.exit_code == 0, run.stderr[-2000:]
        return
    assert run.exit_code == 2 and expected in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_reader_says_which_broken_files_it_left_out(pristine, tmp_path):
    from analysis.load import load_results

    r = tmp_path / "r"
    shutil.copytree(pristine, r)
    wrong_types(r)
    (r / schema.ERRORS_DIR).mkdir()
    (r / schema.ERRORS_DIR / "a.json").write_text("{}")
    (r / schema.VERSIONS_FILE).write_text("xx")
    res = load_results([str(r)], warn=False)
    assert len(res.trials) == 7  # the one trial file of wrong types is left out, and said so
    notes = " ".join(res.notes)
    assert "skipped unreadable trial file(s)" in notes and "a.json" in notes and "versions.json: not JSON" in notes


@pytest.mark.slow
def test_a_report_that_fails_midway_leaves_the_previous_report_whole(pristine, tmp_path):
    from analysis.report import build_report

    r = tmp_path / "r"
    shutil.copytree(pristine, r)
    first = build_report([str(r)], str(tmp_path / "report"))
    before = sorted(p.name for p in (tmp_path / "report").iterdir())
    (r / schema.CONTRACT_FILE).write_text("{not json")
    with pytest.raises(Exception, match="contract.json: not JSON"):
        build_report([str(r)], str(tmp_path / "report"))
    assert first.exists() and sorted(p.name for p in (tmp_path / "report").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


EXPORTS = {"into itself": lambda r, t: str(r), "inside it": lambda r, t: str(r / "copy"), "empty": lambda r, t: "",
           "a folder not empty": lambda r, t: (t.mkdir(), (t / "x").write_text("x"), str(t))[-1]}


@pytest.mark.parametrize("case", list(EXPORTS))
def test_an_export_never_writes_over_its_source_or_into_a_full_folder(pristine, tmp_path, case):
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main

    r = tmp_path / "r"
    shutil.copytree(pristine, r)
    stamp = (r / schema.STUDY_FILE).stat().st_mtime_ns
    dest = EXPORTS[case](r, tmp_path / "dest")
    out = CliRunner().invoke(main, ["export", str(r), "--to", dest])
    assert out.exit_code == 2 and "--to" in out.output and len(out.output.strip().splitlines()) == 1, out.output
    assert (r / schema.STUDY_FILE).stat().st_mtime_ns == stamp and not (r / "copy").exists()
    assert not (r / schema.TRIALS_FILE).exists()  # the source had per-trial files only: nothing was written into it


@pytest.mark.slow
def test_a_report_never_replaces_a_results_folder_or_a_folder_of_other_files(pristine, tmp_path):
    """--out is replaced whole: pointed at the results folder it deleted them, pointed at a
    folder of one's own files it deleted those."""
    from analysis.report import build_report
    from vi_contract.read import ResultsError

    r = tmp_path / "r"
    shutil.copytree(pristine, r)
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.tex").write_text("months of work")
    for out, why in ((r, "is or holds the results folder"), (tmp_path, "is or holds the results folder"),
                     (tmp_path / "thesis", "holds thesis.tex, which no report wrote")):
        with pytest.raises(ResultsError, match=why):
            build_report([str(r)], str(out))
    assert (tmp_path / "thesis" / "thesis.tex").read_text() == "months of work" and (r / schema.STUDY_FILE).exists()
    report = build_report([str(r)], str(tmp_path / "report")).parent
    assert oct(report.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700
    build_report([str(r)], str(report))  # a previous report is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "report", "thesis"]


@pytest.mark.slow
def test_a_report_or_export_killed_mid_write_leaves_nothing_behind_the_next_one(pristine, tmp_path):
    """SIGKILL runs no `finally`: a report killed while writing left its building folder
    (.report.tattulya) beside --out for good; the next report (or export) removes such folders
    of processes that are gone, and leaves alone one a live process is writing."""
    import os
    import signal
    import socket
    import time

    from analysis.export import export_results
    from analysis.publish import remove_stale_beside
    from analysis.report import build_report

    r = tmp_path / "r"
    shutil.copytree(pristine, r)
    child = subprocess.Popen([sys.executable, "-c", "import sys; from analysis.report import build_report; "
                              f"build_report([{str(r)!r}], {str(tmp_path / 'report')!r})"], cwd=ROOT)
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob(".report.*")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = sorted(p.name for p in tmp_path.glob(".report.*"))
    assert left and not (tmp_path / "report").exists(), left  # killed while building
    live = tmp_path / f".report.building-{socket.gethostname()}-{os.getpid()}-live"
    live.mkdir()
    build_report([str(r)], str(tmp_path / "report"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "r", "report"])
    # killed between moving the old report aside and moving the new one in: the old one comes back
    os.replace(tmp_path / "report", tmp_path / f".report.old-{socket.gethostname()}-{child.pid}")
    assert remove_stale_beside(tmp_path / "report") == []  # put back, not removed
    assert (tmp_path / "report" / "REPORT.md").exists()
    export = tmp_path / f".copy.building-{socket.gethostname()}-{child.pid}-x1"
    export.mkdir()
    export_results(str(r), tmp_path / "copy")
    assert not export.exists() and (tmp_path / "copy" / schema.TRIALS_FILE).exists()
    # an export into a name whose previous report a kill left aside: the report is put back
    # first and the export refused by the usual check (it built the whole export, then failed
    # with OSError 39, Directory not empty)
    from vi_contract.read import ResultsError
    os.replace(tmp_path / "report", tmp_path / f".out.old-{socket.gethostname()}-{child.pid}")
    with pytest.raises(ResultsError, match="not an empty folder"):
        export_results(str(r), tmp_path / "out")
    assert (tmp_path / "out" / "REPORT.md").exists()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
