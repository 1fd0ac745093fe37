"""The report's figures label themselves (issue 39): the at-a-glance columns name the axis, its
colour carries a scale and shows only decided differences at full strength, the sample
panels show which samples the mode metrics count and which lie beyond the axes, and each
seed's course (onsets.png) has a one-line title, a legend and axes the size of its seeds."""

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from analysis.figures import at_a_glance, onsets, plt
from analysis.samples import scatter_panel


def _rows():
    base = {"model": "gan", "dataset": "ring8", "baseline": 0, "n": 3, "n_base": 3}
    return pd.DataFrame([{**base, "regime": "bn=False", "treatment": 5, "collapse_diff": -0.7, "collapse_p_holm": 0.001},
                         {**base, "regime": "bn=True", "treatment": 5, "collapse_diff": -0.7, "collapse_p_holm": 0.7}])


def test_the_glance_names_its_columns_by_the_axis_has_a_colour_scale_and_pales_what_is_not_decided():
    fig = at_a_glance(_rows(), ["5"], compare="lam")
    panel, *others = fig.axes
    assert [t.get_text() for t in panel.get_xticklabels()] == ["lam = 5"]
    assert len(others) == 1 and others[0].get_label() == "<colorbar>"  # the scale
    cells = [p for p in panel.patches if isinstance(p, Rectangle) and p.get_width() == 1]
    decided, undecided = (c for c in sorted(cells, key=lambda c: c.get_y()))
    # the same difference (-0.7 in the collapse rate), decided and not: before, both had one colour
    saturation = [np.ptp(to_rgb(c.get_facecolor()[:3])) for c in (decided, undecided)]
    assert saturation[0] > 0.5 and saturation[1] < 0.25 and undecided.get_hatch() and not decided.get_hatch()
    plt.close(fig)


def test_a_sample_panel_colours_the_counted_samples_and_counts_those_beyond_the_axes():
    centres = np.array([[2.0, 0.0], [-2.0, 0.0]])
    points = np.array([[2.01, 0.0], [-1.99, 0.02], [0.0, 0.0], [9.0, 0.0], [0.0, -9.0], [np.nan, 1.0]])
    fig, ax = plt.subplots()
    scatter_panel(ax, points, centres, sigma=0.05, lim=3.0)
    counted, other = ax.collections[-2], ax.collections[-3]
    assert len(counted.get_offsets()) == 2 and len(other.get_offsets()) == 1  # within 3 sigma: 2; the origin: not
    assert [t.get_text() for t in ax.texts] == ["3 off the axes"]  # two beyond the limits, one not finite
    plt.close(fig)


def _seeds(n: int) -> pd.DataFrame:
    """n seeds an arm, lam 0 and lam 5: one of lam 0 collapses after getting good, one never gets good."""
    rows = []
    for lam in (0, 5):
        for s in range(n):
            good = math.inf if (lam, s) == (0, 1) else 400.0 if lam == 0 else 200.0
            rows.append({"model": "gan", "dataset": "ring8", "regime": "all", "treatment": lam, "seed": s, "steps_done": 1000,
                         "good_at": good, "collapse_at": 600.0 if (lam, s) == (0, 0) else math.inf if good < math.inf else math.nan,
                         "ended_collapsed": float((lam, s) == (0, 0)) if good < math.inf else math.nan})
    return pd.DataFrame(rows)


def test_each_seeds_course_has_a_one_line_title_a_legend_and_axes_sized_to_its_seeds():
    """Before, for 2 + 2 seeds: a three-line title explaining the marks, a figure 3.9 in tall with
    a row of nothing above the first seed and one and a half below the last (ylim 5.0 to -1.0)."""
    fig = onsets(_seeds(2), [0, 5], "modes_frac>=0.875", "lam")
    fig.canvas.draw()
    ax = fig.axes[0]
    assert "\n" not in fig.get_suptitle() and len(fig.get_suptitle()) < 70  # before: 3 lines, 192 characters
    assert ax.get_ylim() == (4.25, -0.75)  # rows 0, 1 and 2.5, 3.5: three quarters of a row either side
    assert fig.get_figheight() == pytest.approx(2.3)  # 0.9 in of axes, their title and x axis, title and legend; before 3.9
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["before it got good", "got good (modes_frac>=0.875), not collapsed at its end", "ended collapsed",
                      "first collapse after good"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lam 0", "lam 5"]
    plt.close(fig)
    fig = onsets(_seeds(100), [0, 5], "modes_frac>=0.875", "lam")
    assert fig.get_figheight() == pytest.approx(200 * 0.075 + 0.8 + 0.6)  # 0.075 in a seed
    plt.close(fig)
