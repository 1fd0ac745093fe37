"""The eval keys the built-in evaluators (vi_sweeps.metrics.evaluators) report, each declared once: its
label, format, better direction, role, note and scale (vi_sweeps.core.keys)."""

from __future__ import annotations

from vi_sweeps.core.keys import Key

MODES = Key("eval/modes", "modes captured (>= mode_min_share of a uniform share)", "{:.0f}", "higher", role="modes",
            note="modes (this project's count): a mode is captured when it holds at least mode_min_share (default "
                 "0.1) of its uniform share of the high-quality samples; robust to a few stray samples.")
MODES_FRAC = Key("eval/modes_frac", "share of modes captured", "{:.2f}", "higher")
MODES_LIT = Key("eval/modes_lit", "modes with >= 1 high-quality sample (VEEGAN/PacGAN count)", "{:.0f}", "higher",
                role="modes",
                note="modes_lit (the literature's count, VEEGAN's code as reused by PacGAN): a mode is captured when at "
                     "least one high-quality sample (within 3 standard deviations) among the first 2,500 samples is "
                     "nearest to it. Use it to set numbers beside published tables.")
MODES_LIT_FRAC = Key("eval/modes_lit_frac", "share of modes with >= 1 high-quality sample", "{:.2f}", "higher")
HQ_FRAC = Key("eval/hq_frac", "share of high-quality samples", "{:.2f}", "higher")
KL_UNIFORM = Key("eval/kl_uniform", "KL(mode histogram || uniform), nats", "{:.3f}", "lower")
FD_2D = Key("eval/fd_2d", "Frechet distance to the mixture's first two moments (fd_2d)", "{:.3f}", "lower",
            role="quality", scale="log", blind_to="modes",
            note="fd_2d is the Frechet distance between the samples' and the mixture's first two moments (mean and "
                 "covariance) in data space. It does not see modes: a blurred ring around the true one, or a few modes "
                 "placed symmetrically, can score well while covering few modes. Read it beside the mode counts.")
FD_DIGITS = Key("eval/fd_digits", "Frechet distance, digits-CNN features (fd_digits)", "{:.2f}", "lower",
                role="quality", scale="log",
                note="fd_digits is a Frechet distance in the features of a small digits classifier trained here; it is "
                     "not FID and not comparable with published FIDs.")
FID_INCEPTION = Key("eval/fid_inception", "FID, Inception-v3 (fid_inception)", "{:.2f}", "lower",
                    role="quality", scale="log",
                    note="fid_inception is FID with torch-fidelity's Inception-v3; FID from fewer than 10,000 samples "
                         "is biased upwards and not comparable with FID-10k/50k tables.")
PRECISION = Key("eval/precision", "precision: share of samples inside the real k-NN manifold (k = pr_k)", "{:.3f}",
                "higher")
RECALL = Key("eval/recall", "recall: share of real data inside the samples' k-NN manifold (k = pr_k)", "{:.3f}", "higher")
DENSITY = Key("eval/density", "density: real k-NN balls holding a sample, per sample / k (k = dc_k)", "{:.3f}", "higher")
COVERAGE = Key("eval/coverage", "coverage: share of real k-NN balls holding a sample (k = dc_k)", "{:.3f}", "higher")
KID = Key("eval/kid", "KID, Inception-v3 (unbiased MMD^2, cubic kernel)", "{:.4f}", "lower")
KID_STD = Key("eval/kid_std", "KID's standard deviation over its subsets", "{:.4f}")
INCEPTION_SCORE = Key("eval/is", "Inception Score (10 splits)", "{:.2f}", "higher")
MANIFOLD_KEYS = (PRECISION, RECALL, DENSITY, COVERAGE)
IMAGE_KEYS = (FID_INCEPTION, *MANIFOLD_KEYS, KID, KID_STD, INCEPTION_SCORE)
MODE_KEYS = (MODES, MODES_FRAC, MODES_LIT, MODES_LIT_FRAC, HQ_FRAC, KL_UNIFORM)
