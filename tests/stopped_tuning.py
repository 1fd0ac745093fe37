"""A tune-then-test protocol stopped while tuning is exported, committed and resumed from the
copy on another machine as it resumes in place (issue 38: a fresh machine lost stabilisers_fair's
252 finished suggestions, because a folder still tuning could not be exported). Called by
tests/test_protocol.py's run of the small protocol, whose in-place resume it is."""

import json
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from click.testing import CliRunner

from vi_contract import schema
from vi_sweeps.cli.commands import main
from vi_sweeps.study.load import load_study
from vi_sweeps.sweep.control import SweepControl
from vi_sweeps.sweep.protocol import tune_arms


@dataclass
class AfterFirstSearch(SweepControl):
    """Stops the tuning once the first search has its two suggestions complete in Optuna: the
    second search never begins (a stop between searches, decided by the storage, not by timing;
    a trial file finished before Optuna records its suggestion)."""

    folder: str = ""

    def should_stop(self) -> bool:
        db = Path(self.folder, schema.TUNE_DIR, "optuna.db")
        if not self.reason and db.exists():
            try:
                with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
                    counts = conn.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE' GROUP BY study_id").fetchall()
            except sqlite3.Error:  # being written: asked again at the next result
                counts = []
            if any(n >= 2 for (n,) in counts):
                self.stop("the first search is done", 130)
        return super().should_stop()


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def searched(folder: Path) -> pd.DataFrame:
    table = pd.read_parquet(folder / schema.TUNE_DIR / schema.SEARCH_FILE)
    return table.sort_values(["search_study", "number"]).reset_index(drop=True)


def stopped_exported_and_resumed(tmp_path, path, live):
    """`path`'s protocol tuned into `live` and stopped between its two searches, exported, resumed
    from a copy elsewhere and in place: the copy equals the folder. Returns the in-place run."""
    record = tune_arms(load_study(path), str(live), None, None, False, False, AfterFirstSearch(folder=str(live)))
    assert len(record["chosen"]) == 1 and list(record["budgets"].values()) == [2]  # one search of two done

    exported = tmp_path / "tuning-export"
    r = run("export", live, "--to", exported)  # before: exit 2, "a tune-then-test protocol whose test trials ..."
    assert r.exit_code == 0 and "still tuning: its 4 tuning trials" in r.output, r.output
    meta = json.loads((exported / schema.TUNE_DIR / schema.SEARCH_META).read_text())
    assert meta["storage"] == schema.JOURNAL_FILE and len(meta["studies"]) == 1
    assert sorted(p.name for p in exported.iterdir()) == [schema.TUNE_DIR]
    first = searched(live)
    assert len(first) == 2 and set(first["state"]) == {"COMPLETE"}

    copy = tmp_path / "elsewhere" / "copy"  # committed, then brought to a fresh machine
    shutil.copytree(exported, copy)
    resumed = run("run", path, "--results", copy, "--no-report")
    assert resumed.exit_code == 0, resumed.output
    assert "took the export's 1 search (2 finished suggestions) from optuna.journal into optuna.db" in resumed.output
    in_place = run("run", path, "--results", live, "--no-report")
    assert in_place.exit_code == 0, in_place.output

    # the copy kept the first search's suggestions as they were run (before: its storage began
    # empty, so the first search was suggested again: new Optuna trials, new start times)
    again = searched(copy)
    assert len(again) == 4 and set(again["state"]) == {"COMPLETE"}
    kept = again[again["search_study"] == first["search_study"][0]].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[first.columns], first)
    timeless = lambda frame: frame.drop(columns=["datetime_start", "datetime_complete"])  # noqa: E731
    pd.testing.assert_frame_equal(timeless(again), timeless(searched(live)), check_like=True)  # the same suggestions
    assert json.loads((copy / schema.PROTOCOL_FILE).read_text()) == json.loads((live / schema.PROTOCOL_FILE).read_text())
    storage = f"sqlite:///{copy / schema.TUNE_DIR / 'optuna.db'}"
    assert sorted(len(optuna.load_study(study_name=n, storage=storage).trials)
                  for n in optuna.get_all_study_names(storage)) == [2, 2]
    # and its test trials are the in-place run's, number for number
    rows = {f: pd.read_parquet(f / schema.METRICS_FILE) for f in (copy, live)}
    cols = [c for c in rows[live].columns if c != "wall_s"]
    assert len(rows[live]) == 8  # 2 arms x 2 test seeds x 2 evaluations (steps 10, 20)
    pd.testing.assert_frame_equal(*(rows[f][cols].sort_values(["trial_id", "step"]).reset_index(drop=True)
                                    for f in (copy, live)), check_like=True)
    return in_place
