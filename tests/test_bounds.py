"""Inputs that could exhaust the machine are refused in one line, before they cost it (issue 34):
YAML aliases that repeat a value a billion times, and grids whose expansion would not fit in
memory. How fast each is refused is benchmarks/bounds.py's to check (a time bound fails on a loaded
machine)."""

import gc
import tracemalloc

import pytest
from click.testing import CliRunner

from vi_sweeps.cli.commands import main
from vi_sweeps.study.config import shown
from vi_sweeps.study.expansion import TRIAL_BYTES, available_memory
from vi_sweeps.study.load import load_study_text


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each level a list of ten aliases of the level below (10^9 values)."""
    lines = ["name: bomb", "l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"base: {{lr: *l{levels - 1}}}", ""])


def test_an_alias_bomb_is_refused_in_one_line_within_seconds(tmp_path):
    """Before: validate ran for 118 s and ended in a MemoryError traceback (under a 3 GB limit;
    unlimited it grows for minutes)."""
    study = tmp_path / "bomb.yaml"
    study.write_text(alias_bomb())
    r = CliRunner().invoke(main, ["validate", str(study)])  # its time: benchmarks/bounds.py alias-bomb
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert f"{study}: not valid YAML: line 5, " in r.output and "aliases (*name) repeat more than 10,000 values" in r.output
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "bomb.yaml"), "--set", "lr=[&a [1, 1], *a, *a]"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output


def test_aliases_within_the_bound_still_read_and_a_self_holding_one_is_refused(tmp_path):
    text = ("name: a\ngrid:\n  lam: [0.0, 5.0]\n"
            "  regime: {x: &b {d_steps: 2}, y: {<<: *b, bn: false}}\nseeds: &n 2\npack_seeds: *n\n")
    assert len(load_study_text(text, "a.yaml").trials) == 8
    study = tmp_path / "loop.yaml"
    study.write_text("name: a\nbase: &b {lr: 0.1, x: [*b]}\n")
    r = CliRunner().invoke(main, ["validate", str(study)])
    assert r.exit_code == 2 and "an alias inside its own anchor" in r.output, r.output


def test_a_value_is_quoted_without_being_written_out_whole():
    """Before: shown() took repr() of the whole value first (a billion-element value: gigabytes)."""
    value = ["x"] * 10
    for _ in range(9):
        value = [value] * 10
    text = shown(value)  # its time: benchmarks/bounds.py shown
    assert len(text) == 60 and text.startswith("[[[[[[[[[['x', 'x'")
    for small in ([1, (2,)], {"a": [1.5, None]}, "x" * 100, (1, 2)):
        assert shown(small) == (repr(small) if len(repr(small)) <= 60 else repr(small)[:57] + "...")


def test_a_grid_beyond_the_machine_s_memory_is_refused_naming_the_figure(tmp_path):
    """Before: max_trials 10^8 let 10^7 trials expand: validate grew to 23.7 GB until the kernel
    killed it (here, under a 4 GB limit: a MemoryError traceback after 14 s)."""
    study = tmp_path / "big.yaml"
    study.write_text("name: big\nseeds: 100000000\nmax_trials: 100000000\n")
    r = CliRunner().invoke(main, ["validate", str(study)])  # its time: benchmarks/bounds.py memory-grid
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert (f"{study}: the grid has 100,000,000 trials: expanding them takes about 409.6 GB (4.1 KB a trial), "
            "more than half of the ") in r.output and "GB this machine has available" in r.output, r.output
    assert available_memory() > 0


def expansion_bytes(seeds: int) -> int:
    text = f"name: m\ngrid:\n  bn: [true, false]\n  lam: [0.0, 5.0]\nseeds: {seeds}\npack_seeds: 8\n"
    gc.collect()
    tracemalloc.start()
    try:
        study = load_study_text(text, "m.yaml")
        ids = [t.trial_id for t in study.trials]
        return tracemalloc.get_traced_memory()[0] if ids else 0
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_expansion_costs_less_than_the_bound_assumes():
    """TRIAL_BYTES, the bound's cost of a trial, stays above what expansion holds per trial
    (measured here: 2.7 KB)."""
    per_trial = (expansion_bytes(1500) - expansion_bytes(500)) / 4000
    assert 1000 < per_trial < TRIAL_BYTES, per_trial
