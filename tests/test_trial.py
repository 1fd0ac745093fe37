import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import tiny
from vi_sweeps.datasets import DATASETS, build_dataset
from vi_sweeps.objectives import OBJECTIVES, from_bytes, to_bytes
from vi_sweeps.trial import Trial, evaluations


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.RandomState(0)
    for i in range(6):
        Image.fromarray(rng.randint(0, 255, (100, 120, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return str(root)


def combos():
    for model in OBJECTIVES.names():
        for dataset in DATASETS.names():
            if OBJECTIVES.meta(model).get("vector_only") and DATASETS.meta(dataset)["kind"] != "vector":
                continue
            yield model, dataset


@pytest.mark.parametrize("model, dataset", list(combos()))
def test_every_model_trains_on_every_dataset(model, dataset, image_root):
    extra = {"data_root": image_root} if dataset == "image-folder" else {}
    cfg = tiny(model=model, dataset=dataset, lam=1.0, **extra)
    trial = Trial(cfg)
    rows = list(evaluations(trial))
    assert [r["step"] for r in rows] == [2, 4]
    assert not rows[-1]["diverged"]
    assert trial.samples.shape == (cfg.eval_samples, *trial.data.shape)
    if DATASETS.meta(dataset)["kind"] == "vector" or dataset != "image-folder":
        assert math.isfinite(rows[-1]["eval/modes"])


@pytest.mark.parametrize("ali_loss", ["minimax", "nonsaturating", "vi"])
def test_every_ali_loss_trains(ali_loss):
    rows = list(evaluations(Trial(tiny(model="ali", ali_loss=ali_loss))))
    assert math.isfinite(rows[-1]["loss/g"])


def strip_wall(rows):
    """Rows without wall time, NaN made comparable (nan != nan)."""
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "wall_s"}
            for r in rows]


@pytest.mark.parametrize("overrides", [dict(dataset="ring8", lam=5.0, g_steps=2),
                                       dict(dataset="digits", bn=True)])
def test_same_seed_same_rows_bit_for_bit(overrides):
    cfg = tiny(iterations=6, **overrides)
    a = strip_wall(list(evaluations(Trial(cfg))))
    b = strip_wall(list(evaluations(Trial(cfg))))
    assert a == b
    c = strip_wall(list(evaluations(Trial(cfg.model_copy(update={"seed": 1})))))
    assert a != c


def test_resumed_trial_continues_bit_for_bit():
    cfg = tiny(iterations=8, eval_every=2, lam=5.0)
    straight = Trial(cfg)
    rows = strip_wall(list(evaluations(straight)))
    first = Trial(cfg)
    stream = evaluations(first)
    next(stream), next(stream)
    blob = to_bytes(first.state_dict())
    resumed = Trial(cfg)
    resumed.load_state_dict(from_bytes(blob))
    list(evaluations(resumed))
    assert strip_wall(resumed.rows) == rows
    assert torch.equal(resumed.samples, straight.samples)


def test_a_diverging_trial_stops_cleanly_with_a_diverged_row():
    cfg = tiny(iterations=50, eval_every=10, lr=1e10, bn=False)
    rows = list(evaluations(Trial(cfg)))
    assert rows[-1]["diverged"] and rows[-1]["collapsed"]
    assert rows[-1]["step"] < 50
    assert math.isnan(rows[-1]["eval/modes"])


def test_image_folder_crops_resizes_and_scales(tmp_path):
    img = np.zeros((200, 200, 3), dtype=np.uint8)
    img[:, :100] = 255
    Image.fromarray(img).save(tmp_path / "half.png")
    data = build_dataset(tiny(dataset="image-folder", data_root=str(tmp_path), image_size=8, crop=108))
    x = data.sample(2, torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 8, 8)
    assert torch.all(x[..., :3] == 1.0) and torch.all(x[..., 5:] == -1.0)


def test_digits_are_scaled_to_minus_one_one():
    data = build_dataset(tiny(dataset="stacked-digits", image_size=16))
    x = data.sample(64, torch.Generator().manual_seed(0))
    assert x.shape == (64, 3, 16, 16) and x.min() >= -1.0 and x.max() <= 1.0
    assert data.n_modes == 1000
