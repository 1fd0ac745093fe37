"""What the evaluators declare, without torch: the registry, the spec of each built-in
evaluator (its metric keys and collapse rule; its builder a "module:class" reference into
vi_sweeps.metrics.evaluators, imported at its first use) and the config keys they read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from vi_contract.rules import collapse_rule
from vi_sweeps.core.keys import Key
from vi_sweeps.core.registry import Lazy, Registry
from vi_sweeps.core.settings import Setting, declare
from vi_sweeps.metrics.keys import FD_2D, FD_DIGITS, IMAGE_KEYS, MANIFOLD_KEYS, MODE_KEYS

if TYPE_CHECKING:
    import torch


@runtime_checkable
class Evaluator(Protocol):
    """What an evaluator is, the one contract of every data set's metrics: built as
    `Builder(cfg, data, device, store)` (the trial's config, its DataSource, the device, and the
    results store where reference statistics are shared, or None), then called on one member's
    samples, returning exactly its declared `eval/*` keys. It may say how many samples it needs
    (`n_samples`, at least eval_samples are drawn)."""

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        """One member's (n, *shape) samples -> each declared eval key's value."""
        ...


@dataclass(frozen=True)
class EvaluatorSpec:
    """What an evaluator declares: the metric keys it reports (a row may carry no other) and
    the collapse rule `collapse_rule: auto` means for its data sets (a rule on one of them)."""

    metrics: tuple[Key, ...]
    collapse_rule: str
    prepare: Callable | None = None  # once per sweep in the driver, e.g. that FID's weights are there

    def __post_init__(self):
        if not self.metrics or not all(isinstance(k, Key) and k.startswith("eval/") for k in self.metrics):
            raise TypeError("metrics: a tuple of vi_sweeps.core.keys.Key named eval/...")
        collapse_rule(self.collapse_rule, self.metrics)


EVALUATORS = Registry("evaluator", spec=EvaluatorSpec)
_EVALUATORS = "vi_sweeps.metrics.evaluators"
EVALUATORS.declare("mixture", EvaluatorSpec((*MODE_KEYS, FD_2D), "modes_frac<0.5"), f"{_EVALUATORS}:MixtureEvaluator")
EVALUATORS.declare("digits", EvaluatorSpec((*MODE_KEYS, FD_DIGITS, *MANIFOLD_KEYS), "modes_frac<0.5"),
                   f"{_EVALUATORS}:DigitsEvaluator")
# coverage, not an FID threshold: FID mixes quality and diversity into one number
EVALUATORS.declare("inception", EvaluatorSpec(IMAGE_KEYS, "coverage<0.5", prepare=Lazy(f"{_EVALUATORS}:inception_weights")),
                   f"{_EVALUATORS}:InceptionEvaluator")

# the config keys of the evaluators (their order in TrialConfig: vi_sweeps.study.config)
declare("evaluators",
        Setting("eval_samples", int, 2500, "samples drawn per evaluation (the literature scores 2,500)",
                bounds={"ge": 100, "le": 10**6}),
        Setting("mode_min_share", float, 0.1, "a mode is captured when it holds this share of n/n_modes good samples",
                bounds={"gt": 0}),
        Setting("collapse_rule", str, "auto", "METRIC<VALUE or METRIC>VALUE on eval metrics; auto = the data set's "
                "rule (modes_frac<0.5 where modes are counted, coverage<0.5 on image folders)"),
        Setting("fid_samples", int, 10_000, "samples for FID (image folders): generated ones, and real ones drawn "
                "without replacement for the reference (FID-10k; 50,000 for FID-50k)", kind="added",
                bounds={"ge": 16, "le": 10**6}),
        Setting("prdc_samples", int, 10_000, "samples for precision, recall, density and coverage: generated ones and "
                "as many real ones (Naeem et al.: 10,000), at most the real set, the samples drawn and (image folders) "
                "fid_samples", kind="added", bounds={"ge": 16, "le": 10**6}),
        Setting("pr_k", int, 3, "k of the k-NN balls of precision and recall (Kynkaanniemi et al.: 3)", kind="added",
                bounds={"ge": 1, "le": 100}),
        Setting("dc_k", int, 5, "k of the k-NN balls of density and coverage (Naeem et al.: 5)", kind="added",
                bounds={"ge": 1, "le": 100}),
        Setting("kid_subsets", int, 100, "image folders: random subsets KID averages over (torch-fidelity: 100)",
                kind="added", bounds={"ge": 1, "le": 10_000}),
        Setting("kid_subset_size", int, 1000, "image folders: samples per KID subset (Binkowski et al.: 1,000; at "
                "most fid_samples)", kind="added", bounds={"ge": 2, "le": 10**6}),
        Setting("fid_weights", str, "", "Inception weights file for FID on image folders", kind="execution"))
