"""`run` exits 0 only when every trial of its selection finished, and a plugin that exits while
imported is bad input (issue 34, point 4; README's exit-code table), on a real local Ray."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.ray

STUDY = """
name: exits
datasets: [ring8]
base: {hidden: 16, eval_samples: 200}
grid:
  lam: [0.0, 5.0]
seeds: 2
pack_seeds: 2
budget: {iterations: 40, eval_every: 20}
"""


def test_a_plugin_that_exits_at_import_is_an_import_failure(tmp_path):
    """Before: a plugin raising SystemExit(0) when imported made `validate` (and `run`) exit 0
    having done nothing (issue 34)."""
    (tmp_path / "quits.py").write_text("raise SystemExit(0)\n")
    path = tmp_path / "exits.yaml"
    path.write_text("plugins: [quits.py]\n" + STUDY)
    r = subprocess.run([sys.executable, "-m", "vi_sweeps.cli", "validate", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"{path}: plugins[0]: quits.py: cannot be loaded (SystemExit: 0)"
