"""Which evaluator scores a data set: the one join of the data set registry
(vi_sweeps.data.datasets) and the evaluator registry (vi_sweeps.metrics.evaluators), above both, for
everything that asks (config checks, the trial, the driver's preparation, the contract). It reads
the declarations only (no torch); an evaluator's module is imported when one is built."""

from __future__ import annotations

from vi_sweeps.core.registry import UnknownName
from vi_sweeps.data.declared import DATASETS
from vi_sweeps.metrics.declared import EVALUATORS, Evaluator, EvaluatorSpec


def evaluation(dataset: str) -> EvaluatorSpec:
    """The declarations of the evaluator that scores `dataset` (its metric keys, its collapse
    rule, its preparation)."""
    name = DATASETS.meta(dataset).evaluator
    try:
        return EVALUATORS.meta(name)
    except UnknownName as err:  # a plugin's data set naming an evaluator nobody registered
        raise ValueError(f"dataset: {dataset}'s {err}") from None


def build_evaluator(cfg, data, device=None, store=None) -> Evaluator:
    """The data set's evaluator; `store` (the results store) is where an evaluator that needs
    reference statistics of the real data shares them between nodes."""
    return EVALUATORS.get(DATASETS.meta(cfg.dataset).evaluator)(cfg, data, device, store)


def prepare(cfg) -> None:
    """What a trial of this config needs once, built in the driver before any trial: the data
    set's hook (an image cache), then its evaluator's (FID weights)."""
    for hook in (DATASETS.meta(cfg.dataset).prepare, evaluation(cfg.dataset).prepare):
        if hook is not None:
            hook(cfg)
