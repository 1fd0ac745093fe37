"""Registries of typed specs (issue 19, item 1): a misspelt or missing field fails at
registration, naming it; a name registers once; the cross-checks live on the specs."""

import pytest

from vi_sweeps.data.datasets import DATASETS, DatasetSpec
from vi_sweeps.gan.architectures import ARCHITECTURES, ArchSpec
from vi_sweeps.gan.families import OBJECTIVES, ObjectiveSpec
from vi_sweeps.gan.stabilisers import STABILISERS, Stabiliser
from vi_sweeps.study.config import ConfigError, make_config


@pytest.mark.parametrize("make, says", [
    (lambda: DatasetSpec("vectr", "mixture"), "kind: 'vector' or 'image', not 'vectr'"),
    (lambda: DatasetSpec("vector", "mixture", descrbe=len), "unexpected keyword argument 'descrbe'"),
    (lambda: DatasetSpec("vector"), "missing 1 required positional argument: 'evaluator'"),
    (lambda: ArchSpec("img"), "kind: 'vector' or 'image', not 'img'"),
    (lambda: ObjectiveSpec(("d",)), "losses: a tuple of vi_sweeps.core.keys.Key named loss/"),
    (lambda: Stabiliser((), "no keys"), "a stabiliser names its config keys"),
    (lambda: DATASETS.register("new-set", kind="vector", evaluator="mixture"),
     "dataset 'new-set': register it with spec=DatasetSpec(...), not evaluator, kind"),
    (lambda: OBJECTIVES.register("gan", spec=ObjectiveSpec(())), "model 'gan' is registered twice"),
    (lambda: STABILISERS.register("r1", spec=Stabiliser(("r1",), "again")), "stabiliser 'r1' is registered twice"),
])
def test_a_bad_registration_fails_at_once_naming_the_field(make, says):
    with pytest.raises((TypeError, ValueError), match=says.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        make()


def test_the_cross_checks_read_the_specs():
    assert ARCHITECTURES.meta("paper-64").image_size == 64 and DATASETS.meta("image-folder").requires == ("data_root",)
    for values, says in [({"dataset": "digits", "arch": "mlp"}, "arch: mlp needs a vector data set, digits is image"),
                         ({"dataset": "image-folder", "arch": "paper-64", "image_size": 32, "data_root": "/x"},
                          "arch: paper-64 needs image_size 64"),
                         ({"model": "em", "dataset": "digits"}, "model: em runs on the 2-D mixtures only, not digits"),
                         ({"dataset": "image-folder"}, "data_root: image-folder needs it set")]:
        with pytest.raises(ConfigError, match=says):
            make_config(values)
