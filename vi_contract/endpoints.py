"""The endpoints a study's `claims:` may name, each declared once: what it measures, the kind of
test that compares two arms on it, the eval key it needs, and which way is better. The study
grammar (vi_sweeps) validates names against this table; the analysis layer computes them.

Mode loss, sample quality and collapse over time are different questions (PAPER.md, "Comparisons
a reviewer accepts"): a rule that needs a share of high-quality samples per mode counts blur as
collapse, and a rule "collapsed at any evaluation" grows with the number of evaluations. The
endpoints below keep them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

RATE, RANK, TIME = "rate", "rank", "time"  # Fisher's exact test; exact Mann-Whitney; log-rank


@dataclass(frozen=True)
class Endpoint:
    name: str
    kind: str
    text: str
    metric: str | None = None  # the eval key it needs; None: what every study has (its collapse rule, its quality role)
    better: str = "lower"  # the direction of an improvement in the endpoint's value (a rate: lower)
    premise: bool = False  # measured over the seeds that got good (the convergence rule held, not collapsed)


ENDPOINTS = {e.name: e for e in (
    Endpoint("mode_loss", RATE, "lost modes by the literature's count: fewer than half the modes hold a high-quality "
             "sample (within 3 standard deviations) at the last evaluation (modes_lit_frac < 0.5), or diverged",
             metric="eval/modes_lit_frac"),
    Endpoint("modes_captured", RANK, "share of modes holding at least one high-quality sample at the last evaluation "
             "(modes_lit_frac, the VEEGAN/PacGAN count; a diverged seed ranks worst)", metric="eval/modes_lit_frac",
             better="higher"),
    Endpoint("hq_share", RANK, "share of high-quality samples at the last evaluation (hq_frac, the mixtures' precision; "
             "a diverged seed ranks worst)", metric="eval/hq_frac", better="higher"),
    Endpoint("quality", RANK, "the study's quality metric at the last evaluation (the key whose role is quality: fd_2d, "
             "fd_digits or fid_inception; a diverged seed ranks worst)"),
    Endpoint("steps_to_converge", RANK, "steps until the convergence rule first holds (a seed that never converged "
             "ranks slower than every seed that did)"),
    Endpoint("collapsed_share", RANK, "share of the evaluations after first getting good that counted collapsed or "
             "diverged (does not grow with the number of evaluations)", premise=True),
    Endpoint("time_to_collapse", TIME, "steps from first getting good to the first collapse after it, censored at the "
             "budget (log-rank test; later is better)", better="higher", premise=True),
    Endpoint("collapse_end", RATE, "the study's collapse rule at the last evaluation, or diverged"),
    Endpoint("collapse_late", RATE, "the study's collapse rule at any evaluation in the last half of training (grows "
             "with the number of evaluations; counts blur as collapse where the rule needs a share per mode)"),
)}

NO_WORSE = "no_worse"  # not worse than the baseline by more than the claim's margin (a one-sided bound)
EXPECT = ("lower", "higher", NO_WORSE)  # what a claim predicts of the treatment's value against the baseline's


def tuned_metric(endpoint: str) -> str:
    """The metric a suggestion is scored on where a protocol tunes on `endpoint` (its mean over
    the tuning seeds): the endpoint's own per-seed metric, without its eval/ prefix."""
    return ENDPOINTS[endpoint].metric.split("/", 1)[1]
