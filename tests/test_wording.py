"""One wording of every verdict (analysis.wording), at its boundaries."""

import math

from analysis import wording


def test_supports_and_contradicts_only_where_the_corrected_test_decides():
    assert wording.verdict(True, True, -0.5, -0.1) == "supports"
    assert wording.verdict(True, False, 0.1, 0.5) == "contradicts"
    # not decided, even where the (unadjusted) interval excludes 0: never 'does not' or 'no effect'
    assert wording.verdict(False, True, -0.5, -0.01) == ("not decided: the data exclude a decrease larger than 0.50 and any "
                                                          "increase (95%)")


def test_not_decided_says_what_the_interval_excludes_on_each_side():
    assert wording.verdict(False, True, -0.25, 0.10) == ("not decided: the data exclude a decrease larger than 0.25 and an "
                                                          "increase larger than 0.10 (95%)")
    assert wording.verdict(False, False, 0.0, 0.3) == "not decided: the data exclude any decrease and an increase larger than 0.30 (95%)"
    assert wording.verdict(False, True, -math.inf, 0.2) == "not decided: the data exclude an increase larger than 0.20 (95%)"
    assert wording.verdict(False, True, -math.inf, math.inf) == "not decided: the data exclude no change of any size"
    assert wording.verdict(False, True) == "not decided"  # no interval: no clause
    assert wording.verdict(False, True, -1.0, 2.0, fmt="{:.3g}", level="99.4% simultaneous over 9") == (
        "not decided: the data exclude a decrease larger than 1 and an increase larger than 2 (99.4% simultaneous over 9)")


def test_decided_words_are_recognised():
    assert wording.is_decided("supports") and wording.is_decided("contradicts")
    assert not wording.is_decided("not decided: the data exclude no change of any size")
