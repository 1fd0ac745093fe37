"""The order scripts/test.sh hands test files to its two workers (tests/conftest.py,
scripts/test_durations.py): xdist's scheduler replayed, and the suite collected longest first."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("test_durations", ROOT / "scripts" / "test_durations.py")
durations = importlib.util.module_from_spec(spec)
spec.loader.exec_module(durations)


def test_the_replayed_scheduler_takes_a_file_while_two_or_fewer_tests_are_pending():
    tests = {"A": [10.0], "B": [1.0] * 4, "C": [5.0]}
    # A on one worker, B on the other; A has one pending test, so its worker takes C too: 10 + 5
    assert durations.makespan(["A", "B", "C"], tests) == 15.0
    assert durations.makespan(["A", "C", "B"], tests) == 14.0  # C alone; B's four behind A: 10 + 4
    assert durations.makespan(["A", "B", "C"], tests, workers=3) == 10.0
    # a file is taken when a test ends, the next test still pending: A's worker holds A and C,
    # B's takes D as its fourth test ends (two pending): 15. Before, the replay took a file as each
    # test began, the running test not counted, so A's worker took C and then D: 20
    tests = {"A": [10.0], "B": [1.0] * 6, "C": [5.0], "D": [5.0]}
    assert durations.makespan(list("ABCD"), tests) == 15.0


@pytest.mark.slow  # a collection of the whole suite, 10 s
def test_the_suite_is_collected_longest_file_first_and_unmeasured_files_before_all():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300).stdout
    files = list(dict.fromkeys(line.split("::")[0] for line in out.splitlines() if "::" in line))
    seconds = json.loads((ROOT / "tests" / "durations.json").read_text())
    weights = [seconds.get(f, float("inf")) for f in files]
    assert weights == sorted(weights, reverse=True) and len(files) > 60
    measured = [f for f in files if f in seconds]
    assert measured[0] == max(seconds, key=seconds.get) and set(files[:len(files) - len(measured)]).isdisjoint(seconds)
