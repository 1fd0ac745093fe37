"""Time bounds that were test assertions (issue 36): a wall-clock bound fails on a loaded machine,
so the tests keep what a command answers and these checks keep how fast it answers.

    python benchmarks/bounds.py [NAME ...]      (default: all; exit 1 if any bound is exceeded)

- refusals:     every bad study of tests/test_study.py (BAD) is refused by `run` under 2.0 s,
                even a billion-trial grid (was tests/test_study.py).
- large-grid:   a 10^5-trial grid validates under 10 s (was tests/test_study.py).
- alias-bomb:   a YAML "billion laughs" is refused by `validate` under 10 s (was tests/test_bounds.py;
                before issue 34: 118 s and a MemoryError).
- shown:        quoting a billion-element value takes under 0.1 s (was tests/test_bounds.py).
- memory-grid:  a grid beyond the machine's memory is refused under 10 s (was tests/test_bounds.py).
- mann-whitney: the exact test of 40 against 40 with ties takes under 0.1 s (was tests/test_ranks.py).
- mlflow-closed: `run` with a tracking server that does not answer is refused under 10 s
                (was tests/test_tracking.py; before: 259 s of MLflow's retries).
- stale-auto:   `run --address auto` beside a stale current-cluster file exits 2 within 15 s,
                start-up included (was tests/test_ray_environment.py).
- mute-address: `run --address` a port that accepts and never speaks exits 2 within 20 s: its
                10 s of waiting and start-up (was tests/test_ray_environment.py).

Each prints its figure, its bound and whether it held. Run it on a quiet machine: on a loaded
one a bound may fail without anything being wrong.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = """
name: tiny
datasets: [ring8]
base: {hidden: 16, eval_samples: 200, batch_size: 32}
grid:
  lam: [0.0, 5.0]
seeds: 2
pack_seeds: 2
budget: {iterations: 200, eval_every: 200}
resources: {cpu: 1}
"""


def cli(args: list[str]):
    from click.testing import CliRunner

    from vi_sweeps.cli.commands import main

    return CliRunner().invoke(main, args)


def timed(fn) -> tuple[float, object]:
    start = time.monotonic()
    out = fn()
    return time.monotonic() - start, out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bound_refusals(tmp: Path) -> float:
    from tests.test_study import BAD

    worst, name = 0.0, ""
    for case, (text, expected) in BAD.items():
        study = tmp / "bad.yaml"
        study.write_text(text)
        wall, r = timed(lambda study=study: cli(["run", str(study), "--results", str(tmp / "results")]))
        assert r.exit_code == 2 and expected in r.output, (case, r.output)
        if wall > worst:
            worst, name = wall, case
    print(f"  slowest of {len(BAD)}: {name!r}")
    return worst


def bound_large_grid(tmp: Path) -> float:
    study = tmp / "big.yaml"
    study.write_text("name: big\ngrid:\n  hidden: [" + ", ".join(str(8 + i) for i in range(100)) + "]\n"
                     "  lam: [" + ", ".join(str(i / 10) for i in range(100)) + "]\nseeds: 10\n")
    wall, r = timed(lambda: cli(["validate", str(study)]))
    assert r.exit_code == 0 and "100000 trials" in r.output, r.output
    return wall


def bound_alias_bomb(tmp: Path) -> float:
    lines = ["name: bomb", "l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    study = tmp / "bomb.yaml"
    study.write_text("\n".join([*lines, "base: {lr: *l8}", ""]))
    wall, r = timed(lambda: cli(["validate", str(study)]))
    assert r.exit_code == 2 and "aliases (*name) repeat more than 10,000 values" in r.output, r.output
    return wall


def bound_shown(tmp: Path) -> float:
    from vi_sweeps.study.config import shown

    value = ["x"] * 10
    for _ in range(9):
        value = [value] * 10
    wall, text = timed(lambda: shown(value))
    assert len(text) == 60
    return wall


def bound_memory_grid(tmp: Path) -> float:
    study = tmp / "huge.yaml"
    study.write_text("name: big\nseeds: 100000000\nmax_trials: 100000000\n")
    wall, r = timed(lambda: cli(["validate", str(study)]))
    assert r.exit_code == 2 and "GB this machine has available" in r.output, r.output
    return wall


def bound_mann_whitney(tmp: Path) -> float:
    import numpy as np

    from analysis import ranks

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 10, 40), rng.integers(0, 10, 40)
    ranks.mann_whitney(x, y)  # warm
    wall, got = timed(lambda: ranks.mann_whitney(x, y))
    assert got["method"] == "exact"
    return wall


def bound_mlflow_closed(tmp: Path) -> float | None:
    from vi_sweeps.track import spec as tracking

    if not tracking.installed("mlflow"):
        print("  skipped: the [track] extra is not installed")
        return None
    port = closed_port()
    study = tmp / "tracked.yaml"
    study.write_text(TINY + f"tracking: {{kind: mlflow, target: 'http://127.0.0.1:{port}'}}\n")
    wall, r = timed(lambda: cli(["run", str(study), "--results", str(tmp / "tracked")]))
    assert r.exit_code == 2 and f"cannot reach 127.0.0.1:{port}" in r.output, r.output
    return wall


def run_cli(tmp: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    """`vi-sweep run` as a process of its own, in a Ray temp dir of its own (whose current-cluster
    file the caller may have written), as tests/test_ray_environment.py runs it."""
    study = tmp / "tiny.yaml"
    study.write_text(TINY)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(tmp / "raytmp"), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return timed(lambda: subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "run", str(study), *args],
                                        env=env, capture_output=True, text=True, timeout=120))


def bound_stale_auto(tmp: Path) -> float:
    (tmp / "raytmp" / "ray").mkdir(parents=True)
    stale = f"127.0.0.1:{closed_port()}"
    (tmp / "raytmp" / "ray" / "ray_current_cluster").write_text(stale)
    wall, r = run_cli(tmp, "--results", str(tmp / "auto"), "--address", "auto")
    expected = f"--address: {stale}: no Ray cluster answered there (Connection refused)"
    assert r.returncode == 2 and r.stderr.strip() == expected, r.stderr[-3000:]
    return wall


def bound_mute_address(tmp: Path) -> float:
    (tmp / "raytmp").mkdir()
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        address = f"127.0.0.1:{mute.getsockname()[1]}"
        wall, r = run_cli(tmp, "--results", str(tmp / "r"), "--address", address)
    assert r.returncode == 2 and "no Ray cluster answered within 10 s" in r.stderr, r.stderr[-3000:]
    return wall


BOUNDS = {"refusals": (bound_refusals, 2.0), "large-grid": (bound_large_grid, 10.0),
          "alias-bomb": (bound_alias_bomb, 10.0), "shown": (bound_shown, 0.1),
          "memory-grid": (bound_memory_grid, 10.0), "mann-whitney": (bound_mann_whitney, 0.1),
          "mlflow-closed": (bound_mlflow_closed, 10.0), "stale-auto": (bound_stale_auto, 15.0),
          "mute-address": (bound_mute_address, 20.0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", choices=[[], *BOUNDS], default=[])
    names = ap.parse_args(argv).names or list(BOUNDS)
    exceeded = []
    for name in names:
        fn, bound = BOUNDS[name]
        tmp = Path(tempfile.mkdtemp(prefix="vb", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
        try:
            wall = fn(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if wall is None:
            continue
        held = wall < bound
        print(f"{name}: {wall:.3f} s (bound {bound} s) {'held' if held else 'EXCEEDED'}", flush=True)
        exceeded += [] if held else [name]
    if exceeded:
        print(f"exceeded: {', '.join(exceeded)}")
    return 1 if exceeded else 0


if __name__ == "__main__":
    sys.exit(main())
