"""Metrics: the evaluators that turn a member's samples into its declared eval/* keys, their keys,
feature-space metrics, the digits reference classifier, FID's weights, and which evaluator
scores which data set.

The names of the former module vi_sweeps.metrics are still read from here (vi_sweeps.metrics.evaluators),
loaded on first use so that importing one submodule does not load the others."""

from __future__ import annotations

from vi_sweeps._moved import lender

FORMER = (
    "BadWeights",
    "DigitsEvaluator",
    "EVALUATORS",
    "EvaluatorSpec",
    "FD_2D",
    "FD_DIGITS",
    "FID_INCEPTION",
    "HQ_FRAC",
    "IMAGE_KEYS",
    "INCEPTION_FILE",
    "INCEPTION_SCORE",
    "INCEPTION_URL",
    "IS_SPLITS",
    "InceptionEvaluator",
    "KID",
    "KID_STD",
    "KL_UNIFORM",
    "Key",
    "LITERATURE_SAMPLES",
    "MANIFOLD_KEYS",
    "MODES",
    "MODES_FRAC",
    "MODES_LIT",
    "MODES_LIT_FRAC",
    "MODE_KEYS",
    "MixtureEvaluator",
    "REFERENCE_VERSION",
    "Registry",
    "assignments_to_stats",
    "cache_dir",
    "default_weights_path",
    "features_to_kid",
    "features_to_manifold_metrics",
    "features_to_statistics",
    "images_to_uint8",
    "inception_class",
    "inception_network",
    "inception_weights",
    "is_torchscript",
    "log",
    "logits_to_inception_score",
    "manifold_metrics",
    "reference_classifier",
    "reference_statistics",
    "samples_to_assignments",
    "statistics_to_frechet",
)

__getattr__ = lender(__name__, "vi_sweeps.metrics.evaluators", FORMER)
