"""The at-a-glance verdict (analysis.glance, issue 39): a quality metric that declares itself blind
to modes (fd_2d, `blind_to: modes` in its Key) is shown, labelled, but never makes a row or a
cell read better or worse; results written before keys declared it get it through the reader's
shim (vi_contract.read.BLIND_BEFORE_DECLARED)."""

import json

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from analysis import glance
from analysis.figures import at_a_glance, plt
from analysis.load import load_results
from analysis.report import analyse, convergence_rule
from analysis.synthetic import synthetic_results
from vi_contract import schema
from vi_sweeps.metrics import keys as eval_keys

# no planted collapse effect (no trial collapses), one planted fd_2d shift in the treated arm
RATES = {(True, 1, 0.0): 0.0, (True, 1, 5.0): 0.0}
SHIFT = {(True, 1, 5.0): -1.0}


def _glance(folder):
    res = load_results([str(folder)], warn=False)
    return res, analyse(res, convergence_rule(None, res)).at_glance


def test_fd_2d_alone_does_not_make_a_row_read_better(tmp_path):
    """Before: the row read "better" on fd_2d alone (its Holm p ~1e-5, nothing else differed),
    and the answer said "better fd_2d"; fd_2d is blind to modes (the report's own note)."""
    synthetic_results(tmp_path, RATES, seeds=10, metric_shift=SHIFT)
    res, rows = _glance(tmp_path)
    assert res.contract["keys"]["eval/fd_2d"]["blind_to"] == "modes"  # the synthetic contract predates it: the shim
    row = rows.iloc[0]
    assert row["quality_metric"] == "fd_2d" and row["quality_diff"] < -0.9 and row["quality_p_holm"] < 1e-3
    assert row["collapse_sign"] == 0 and row["convergence_sign"] == 0  # nothing else differs
    assert row["quality_sign"] == 0 and row["verdict"] == "n.s."  # before: 1 and "better"
    cell = glance.glance_table(rows).iloc[0]
    assert cell["verdict"] == "n.s."
    assert cell["quality diff [95% CI]"].startswith("fd_2d: -")
    assert cell["quality diff [95% CI]"].endswith("(blind to modes: not in the verdict)")
    answer = glance.answer_sentences(rows, "lam", [10])
    assert len(answer) == 1 and "better" not in answer[0]
    assert ": lower fd_2d (-" in answer[0] and "; blind to modes: not in the verdict)" in answer[0]
    assert "fd_2d (blind to modes) is shown (grey in the figure) but counts in no verdict" in glance.glance_note(rows)


def test_a_contract_that_declares_the_quality_metric_not_blind_lets_it_decide(tmp_path):
    """The verdict follows the declaration, not the name: the same planted shift under a contract
    whose fd_2d declares blind_to "" reads better (and one of fd_digits' kind always did)."""
    synthetic_results(tmp_path, RATES, seeds=10, metric_shift=SHIFT)
    contract = json.loads((tmp_path / schema.CONTRACT_FILE).read_text())
    contract["keys"]["eval/fd_2d"] = {**contract["keys"]["eval/fd_2d"], "role": "quality", "blind_to": ""}
    (tmp_path / schema.CONTRACT_FILE).write_text(json.dumps(contract))
    import pyarrow.parquet as pq

    for name in (schema.TRIALS_FILE, schema.METRICS_FILE):
        table = pq.read_table(tmp_path / name)
        pq.write_table(table.replace_schema_metadata({**table.schema.metadata, schema.CONTRACT_KEY: json.dumps(contract)}),
                       tmp_path / name)
    _, rows = _glance(tmp_path)
    assert rows.iloc[0]["quality_sign"] == 1 and rows.iloc[0]["verdict"] == "better"
    assert eval_keys.FD_2D.blind_to == "modes" and eval_keys.FD_DIGITS.blind_to == ""
    assert eval_keys.FD_2D.describe()["blind_to"] == "modes" and "blind_to" not in eval_keys.FD_DIGITS.describe()


def test_the_glance_figure_draws_a_blind_metric_grey_whatever_its_difference():
    """Before: a decided fd_2d difference was a saturated blue cell (better)."""
    base = {"model": "gan", "dataset": "ring8", "regime": "all", "baseline": 0, "n": 10, "n_base": 10,
            "collapse_diff": 0.0, "collapse_p_holm": 1.0, "quality_metric": "fd_2d", "quality_diff": -1.0,
            "quality_lo": -1.1, "quality_hi": -0.9, "quality_p_holm": 1e-4, "quality_lower_better": True}
    rows = pd.DataFrame([{**base, "treatment": 5, "quality_blind_to": "modes"}])
    fig = at_a_glance(rows, ["5"], compare="lam")
    quality = fig.axes[1]
    cell = next(p for p in quality.patches if isinstance(p, Rectangle) and p.get_width() == 1)
    assert np.ptp(to_rgb(cell.get_facecolor()[:3])) == 0.0  # grey: no hue of better or worse
    assert quality.get_title().replace("\n", " ") == "fd_2d difference vs lam = 0 (blind to modes: grey, not in the verdict)"
    assert [t.get_text() for t in quality.texts] == ["-1*"]  # still shown, and decided
    plt.close(fig)
    fig = at_a_glance(rows.assign(quality_blind_to=""), ["5"], compare="lam")
    cell = next(p for p in fig.axes[1].patches if isinstance(p, Rectangle) and p.get_width() == 1)
    red, _, blue = to_rgb(cell.get_facecolor()[:3])
    assert blue - red > 0.3  # a metric that sees modes: blue (better)
    plt.close(fig)
