"""The report's figures label themselves (issue 39): the at-a-glance columns name the axis, its
colour carries a scale and shows only decided differences at full strength, and the sample
panels show which samples the mode metrics count and which lie beyond the axes."""

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from analysis.figures import at_a_glance, plt
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
