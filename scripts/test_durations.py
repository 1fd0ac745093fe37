"""The test files' measured durations, for the order in which `scripts/test.sh` hands them out.

pytest-xdist (`--dist loadfile`) gives each worker whole files, in collection order; by default it
sorts them by how many tests they hold, so files of one or two long end-to-end tests came last
and one worker ran them alone at the end. tests/conftest.py orders the files by these measured
seconds instead, longest first (`--no-loadscope-reorder` keeps that order), the classic
longest-processing-time rule. Refresh after a full run:

    .venv/bin/python -m pytest -n 2 --dist loadfile --junitxml=/tmp/junit.xml
    .venv/bin/python scripts/test_durations.py /tmp/junit.xml          # rewrites tests/durations.json

`--simulate` prints, from the same file, when each order's last worker would finish (xdist's
scheduler replayed: a worker takes the next file while two or fewer of its tests are pending).
"""

from __future__ import annotations

import argparse
import collections
import heapq
import json
import xml.etree.ElementTree as ET
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "durations.json"


def per_test(junit: str) -> dict[str, list[float]]:
    """Each test file's tests' seconds (setup, call and teardown), in the order they ran."""
    files: dict[str, list[float]] = collections.defaultdict(list)
    for case in ET.parse(junit).getroot().iter("testcase"):
        files[case.get("classname").replace(".", "/") + ".py"].append(float(case.get("time") or 0))
    return dict(files)


def makespan(order: list[str], tests: dict[str, list[float]], workers: int = 2) -> float:
    """xdist's LoadScopeScheduling replayed on these durations: each worker starts with one file
    (then a second while two or fewer of its tests are pending), runs its tests in turn, and as
    each test ends takes one more file while two or fewer are pending, the one that starts next
    among them (xdist's _reschedule, on each finished test)."""
    queue = collections.deque(order)
    pending = [collections.deque() for _ in range(workers)]

    def top_up(w):
        if queue and len(pending[w]) <= 2:
            pending[w].extend(tests[queue.popleft()])

    for w in range(workers):  # the initial assignment, then at least two units each where possible
        if queue:
            pending[w].extend(tests[queue.popleft()])
    for w in range(workers):
        top_up(w)
    clock = [(pending[w][0], w) for w in range(workers) if pending[w]]  # when each one's running test ends
    heapq.heapify(clock)
    end = 0.0
    while clock:
        t, w = heapq.heappop(clock)
        pending[w].popleft()  # the test that ended is complete ...
        top_up(w)             # ... then the scheduler looks at what is left
        if pending[w]:
            heapq.heappush(clock, (t + pending[w][0], w))
        end = max(end, t)
    return end


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("junit", help="a junit XML of a whole run (pytest --junitxml)")
    ap.add_argument("--simulate", action="store_true", help="print each order's finish instead of writing")
    args = ap.parse_args()
    tests = per_test(args.junit)
    seconds = {f: round(sum(t), 1) for f, t in sorted(tests.items())}
    if not args.simulate:
        OUT.write_text(json.dumps(seconds, indent=1) + "\n")
        print(f"{OUT}: {len(seconds)} files, {sum(seconds.values()):.0f} s in all")
        return
    by_count = sorted(sorted(tests), key=lambda f: -len(tests[f]))  # xdist's default (stable sort)
    longest = sorted(sorted(tests), key=lambda f: -seconds[f])
    total = sum(seconds.values())
    for name, order in (("xdist's default (most tests first)", by_count), ("longest first", longest)):
        print(f"{name}: the last worker finishes at {makespan(order, tests):.0f} s (half the total: {total / 2:.0f} s)")


if __name__ == "__main__":
    main()
