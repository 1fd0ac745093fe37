import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from vi_sweeps.cli.commands import main


def test_trial_command_writes_rows_and_samples(tmp_path):
    out, samples = tmp_path / "rows.parquet", tmp_path / "s.npy"
    result = CliRunner().invoke(main, ["trial", "--iterations", "20", "--seed", "3", "--set", "eval_every=10",
                                       "--set", "hidden=16", "--set", "lam=5", "--out", str(out), "--samples", str(samples)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pandas()
    assert list(table["step"]) == [10, 20]
    assert (table["config/seed"] == 3).all() and (table["config/lam"] == 5.0).all()
    assert table["search_trial"].isna().all() and table["pack_id"].isna().all()  # not a search, no pack: nulls
    assert {"loss/d", "loss/g", "loss/reg", "eval/modes", "eval/modes_lit", "collapsed", "diverged", "wall_s",
            "trial_id"} <= set(table.columns)
    assert not {"loss/rec", "loss/nll", "eval/fd_digits"} & set(table.columns)  # only what gan on ring8 declares
    assert np.load(samples).shape == (2500, 2)
    # one progress line per evaluation, with every declared key
    lines = [line for line in result.output.splitlines() if line.startswith("step")]
    assert len(lines) == 2 and all("reg " in line and "modes_lit " in line and "fd_2d " in line for line in lines)


def test_bad_config_value_exits_2_naming_key_and_choices(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["trial", "--set", "penalty=median", "--out", str(tmp_path / "x.parquet")])
    assert r.exit_code == 2
    assert "penalty" in r.output and "'mean' or 'sum'" in r.output
    r = runner.invoke(main, ["trial", "--model", "wgan"])
    assert r.exit_code == 2 and "valid choices: aae, ali, em, gan, vae" in r.output
    r = runner.invoke(main, ["trial", "--set", "lamda=1"])
    assert r.exit_code == 2 and "lamda: unknown key" in r.output
    assert not (tmp_path / "x.parquet").exists()


def test_list_keys_marks_exactly_the_execution_keys_and_the_unvectorised_models():
    from vi_sweeps.study.config import EXECUTION_KEYS, TrialConfig

    out = CliRunner().invoke(main, ["trial", "--list-keys"]).output
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line and line.split()[0] in TrialConfig.model_fields}
    assert set(rows) == set(TrialConfig.model_fields)
    marked = {key for key, line in rows.items() if line.split()[1] == "*"}
    assert marked == set(EXECUTION_KEYS) == {"data_root", "device", "threads", "fid_weights"}
    assert out.strip().endswith("(not vectorised): em")


BAD_COMMANDS = {  # a hostile tester's finds: tracebacks or click's usage block before
    "a seed past int64": (["trial", "--seed", "9223372036854775808"], "Invalid value for '--seed'"),
    "a seed that is not a number": (["trial", "--seed", "x"], "'x' is not a valid integer"),
    "a missing option": (["export", "somewhere"], "Missing option '--to'"),
    "an image folder that is not there": (["trial", "--dataset", "image-folder", "--set", "data_root=/nonexistent"],
                                          "data_root: '/nonexistent' is not a readable folder"),
    "an output under a file": (["trial", "--iterations", "2", "--out", "FILE/x.parquet"], "--out: FILE/x.parquet: cannot"),
    "a --set that is not YAML": (["trial", "--set", "lr=["], "--set: 'lr=[': not a YAML value"),
    "a --set given twice": (["trial", "--set", "lr=0.1", "--set", "lr=0.2"], "--set: lr: set twice"),
    "a --set that is a list": (["trial", "--set", "hidden=[1, 2]"], "a single value"),
    "an infinite learning rate": (["trial", "--set", "lr=.inf"], "lr: Input should be a finite number"),
    "a network too wide to build": (["trial", "--set", "hidden=100000000000"], "hidden: Input should be less than"),
    "no command": (["nosuch"], "No such command 'nosuch'"),
}


@pytest.mark.parametrize("case", list(BAD_COMMANDS))
def test_a_bad_command_line_is_one_line_and_exit_2(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("a file")
    args, expected = BAD_COMMANDS[case]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and expected in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and r.exception is None or isinstance(r.exception, SystemExit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]
