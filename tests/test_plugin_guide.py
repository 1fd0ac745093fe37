"""The README's plugin section is enough to write a plugin (issue 39): its DRAGAN penalty and
12-mode ring, copied from the README as they stand, validate with their study, and a trial that
`vi-sweep trial` runs alone at its place in a pack equals that member of the packed run bit for
bit (the penalty draws from the members' generators, as the README says to)."""

import re
import subprocess
import sys

import pandas as pd
from click.testing import CliRunner

from tests.conftest import ROOT
from vi_sweeps.cli.commands import main


def blocks() -> dict[str, str]:
    """The README's code blocks of the plugin section, by the file name on their first line."""
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"```(?:python|yaml)\n# (\S+)[^\n]*\n(.*?)```", text, flags=re.S)
    return {name.rstrip(","): body for name, body in found}


def test_the_readme_plugin_validates_and_a_trial_alone_reproduces_its_place_in_a_pack(tmp_path):
    guide = blocks()
    (tmp_path / "dragan_ring12.py").write_text(guide["dragan_ring12.py"])
    (tmp_path / "study.yaml").write_text(guide["study.yaml"])
    r = CliRunner().invoke(main, ["validate", str(tmp_path / "study.yaml")])
    assert r.exit_code == 0 and "valid, 8 trials" in r.output and "warning" not in r.output, r.output

    from vi_sweeps.engine.trial import Trial, evaluations
    from vi_sweeps.study.config import TrialConfig

    common = dict(dataset="ring12", dragan=1.0, bn=False, lr=1e-3, hidden=16, iterations=20, eval_every=10,
                  eval_samples=200, batch_size=16, pack_size=3)
    pack = Trial([TrialConfig(**common, seed=s, pack_index=i) for i, s in enumerate((7, 8, 9))])
    list(evaluations(pack))
    for place, seed in ((0, 7), (2, 9)):
        out = tmp_path / f"alone{place}.parquet"
        cmd = [sys.executable, "-m", "vi_sweeps.cli", "trial", "--plugin", "dragan_ring12.py", "--dataset", "ring12",
               "--seed", str(seed), "--iterations", "20", "--out", str(out),
               *[f"--set={k}={v}" for k, v in common.items() if k not in ("dataset", "iterations")],
               f"--set=pack_index={place}"]
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        alone = pd.read_parquet(out)
        packed = pd.DataFrame(pack.rows[place])
        for key in ("loss/d", "loss/g", "eval/fd_2d"):
            assert alone[key].tolist() == packed[key].tolist(), (place, key)
