import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import tiny
from vi_sweeps.data.datasets import DATASETS, build_dataset
from vi_sweeps.engine.trial import Trial, declared_keys, evaluations
from vi_sweeps.gan.families import OBJECTIVES, from_bytes, to_bytes


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
            if OBJECTIVES.meta(model).vector_only and DATASETS.meta(dataset).kind != "vector":
                continue
            yield model, dataset


@pytest.mark.parametrize("model, dataset", list(combos()))
def test_every_model_trains_on_every_dataset_and_reports_its_declared_keys(model, dataset, image_root):
    extra = {"data_root": image_root, "fid_weights": "none"} if dataset == "image-folder" else {}
    cfg = tiny(model=model, dataset=dataset, lam=1.0, **extra)
    trial = Trial(cfg, keep_samples=True)
    rows = [e.row for evals in evaluations(trial) for e in evals]
    assert [r["step"] for r in rows] == [2, 4]
    assert not rows[-1]["diverged"]
    assert trial.samples.shape == (1, cfg.eval_samples, *trial.data.shape)
    loss_keys, metric_keys = declared_keys(cfg)
    assert set(rows[-1]) == {"step", "wall_s", "collapsed", "diverged", "device_resolved", "device_name", *loss_keys, *metric_keys}
    assert all(math.isfinite(rows[-1][k]) for k in loss_keys)
    if dataset != "image-folder":
        assert math.isfinite(rows[-1]["eval/modes"]) and math.isfinite(rows[-1]["eval/modes_lit"])


def test_an_undeclared_key_is_an_error_naming_it():
    trial = Trial(tiny())
    real = trial.model.train_iteration
    trial.model.train_iteration = lambda: {**real(), "loss/surprise": torch.zeros(1)}
    with pytest.raises(KeyError, match="undeclared key.*loss/surprise"):
        list(evaluations(trial))


@pytest.mark.parametrize("ali_loss", ["minimax", "nonsaturating", "vi"])
def test_every_ali_loss_trains(ali_loss):
    trial = Trial(tiny(model="ali", ali_loss=ali_loss))
    list(evaluations(trial))
    assert math.isfinite(trial.rows[0][-1]["loss/g"])


def strip_wall(rows):
    """Rows without wall time, NaN made comparable (nan != nan)."""
    return [{k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k != "wall_s"}
            for r in rows]


def run_rows(cfg):
    trial = Trial(cfg)
    list(evaluations(trial))
    return strip_wall(trial.rows[0])


@pytest.mark.parametrize("overrides", [dict(dataset="ring8", lam=5.0, g_steps=2),
                                       dict(dataset="digits", bn=True)])
def test_same_seed_same_rows_bit_for_bit(overrides):
    cfg = tiny(iterations=6, **overrides)
    a, b = run_rows(cfg), run_rows(cfg)
    assert a == b
    assert a != run_rows(cfg.model_copy(update={"seed": 1}))


@pytest.mark.parametrize("model", ["gan", "em"])  # em: its mixture checkpointed as arrays, loaded weights_only
def test_resumed_trial_continues_bit_for_bit(model):
    cfg = tiny(model=model, iterations=8, eval_every=2, lam=5.0)
    straight = Trial(cfg, keep_samples=True)
    list(evaluations(straight))
    first = Trial(cfg)
    stream = evaluations(first)
    next(stream), next(stream)
    blob = to_bytes(first.member_state(0))
    resumed = Trial(cfg, keep_samples=True)
    resumed.load_member_states([from_bytes(blob)])
    list(evaluations(resumed))
    assert strip_wall(resumed.rows[0]) == strip_wall(straight.rows[0])
    assert torch.equal(resumed.samples, straight.samples)


def test_a_diverging_trial_stops_cleanly_with_a_diverged_row():
    cfg = tiny(iterations=50, eval_every=10, lr=1e10, bn=False)
    trial = Trial(cfg)
    list(evaluations(trial))
    rows = trial.rows[0]
    assert rows[-1]["diverged"] and rows[-1]["collapsed"]
    assert rows[-1]["step"] < 50
    assert math.isnan(rows[-1]["eval/modes"])


def test_a_pack_refuses_members_that_differ_in_more_than_the_seed():
    with pytest.raises(ValueError, match="differ in their seed only"):
        Trial([tiny(seed=0), tiny(seed=1, lam=5.0)])


def test_digits_are_scaled_to_minus_one_one():
    data = build_dataset(tiny(dataset="stacked-digits", image_size=16))
    x = data.sample(64, torch.Generator().manual_seed(0))
    assert x.shape == (64, 3, 16, 16) and x.min() >= -1.0 and x.max() <= 1.0
    assert data.n_modes == 1000


def test_identity_ignores_execution_keys_and_paths_but_sees_folder_content(tmp_path, image_root):
    base = tiny()
    assert base.trial_id == tiny(device="cpu", threads=4).trial_id
    assert base.trial_id != tiny(lam=5.0).trial_id
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in sorted(__import__("pathlib").Path(image_root).iterdir()):
        (copy / p.name).write_bytes(p.read_bytes())
    a = tiny(dataset="image-folder", data_root=image_root, image_size=8)
    b = tiny(dataset="image-folder", data_root=str(copy), image_size=8, fid_weights="/some/where.pth")
    assert a.trial_id == b.trial_id  # same images elsewhere, other weights path: the same experiment
    (copy / "0.png").write_bytes((copy / "0.png").read_bytes() + b"\0")
    from vi_sweeps.data.datasets import _fingerprint

    _fingerprint.cache_clear()
    assert tiny(dataset="image-folder", data_root=str(copy), image_size=8).trial_id != a.trial_id


def test_trial_ids_are_pinned_so_that_results_keep_resuming():
    # Computed when results contract v2 was first used to run studies; a key added since must
    # enter the identity only away from its default (kind="added" in vi_sweeps.core.settings), or every
    # existing results folder would start over.
    from vi_sweeps.study.config import TrialConfig

    assert TrialConfig().trial_id == "af1fdc58b620a378"
    assert TrialConfig(dataset="grid25", lam=5.0, seed=3).trial_id == "59ba86545b46a0d7"
    assert TrialConfig(fid_samples=50_000).trial_id != TrialConfig().trial_id  # away from its default it counts


@pytest.mark.parametrize("model", ["gan", "vae", "aae", "ali"])
def test_precision_is_part_of_the_experiment_and_bf16_autocasts_the_training_step(model):
    fp32, bf16 = tiny(model=model), tiny(model=model, precision="bf16")
    assert fp32.trial_id != bf16.trial_id and fp32.trial_id == tiny(model=model, precision="fp32").trial_id
    exact, autocast = Trial(fp32), Trial(bf16)
    list(evaluations(exact)), list(evaluations(autocast))
    losses = lambda t: [{k: v for k, v in r.items() if k.startswith("loss/")} for r in t.rows[0]]  # noqa: E731
    assert all(math.isfinite(v) for row in losses(autocast) for v in row.values())
    assert losses(exact) != losses(autocast)  # bf16 products round differently: the step really ran under autocast
    assert all(p.dtype == torch.float32 for m in autocast.model.modules.values() for p in m.parameters())  # weights stay fp32


def test_an_image_snapshot_is_an_8x8_grid_of_the_first_64_samples_in_order():
    import io

    from PIL import Image

    from vi_sweeps.engine.trial import snapshot

    values = torch.linspace(-1, 1, 70)  # sample i is a 2 x 3 RGB image of one grey value
    samples = values.view(70, 1, 1, 1).expand(70, 3, 2, 3).clone()
    suffix, blob = snapshot(samples)
    grid = np.asarray(Image.open(io.BytesIO(blob)))
    assert suffix == ".png" and grid.shape == (8 * 2, 8 * 3, 3)
    for i in range(64):
        r, c = divmod(i, 8)
        assert (grid[2 * r:2 * r + 2, 3 * c:3 * c + 3] == round((values[i].item() + 1) * 127.5)).all(), i
    _, blob = snapshot(samples[:10, :1])  # one channel, fewer than 64: greyscale, black cells after
    cells = np.asarray(Image.open(io.BytesIO(blob)))
    assert cells.shape == (16, 24) and (cells[2:4, 3:6] == round((values[9].item() + 1) * 127.5)).all()
    assert (cells[2:4, 6:] == 0).all() and (cells[4:] == 0).all()


@pytest.mark.slow
def test_a_report_of_an_image_study_shows_its_sample_grids(tmp_path):
    from analysis.report import build_report
    from vi_contract.tables import Consolidation
    from vi_sweeps.engine.runner import PackRunner
    from vi_sweeps.study.load import load_study_text
    from vi_sweeps.sweep.driver import make_packs, prepare_store

    study = load_study_text("name: img\ndatasets: [digits]\nbase: {image_size: 8, batch_size: 16, width: 8, "
                            "eval_samples: 200}\ngrid: {lam: [0.0, 5.0]}\nseeds: 2\npack_seeds: 2\n"
                            "budget: {iterations: 4, eval_every: 2}\n", "img.yaml")
    store = prepare_store(study, str(tmp_path / "r"))
    for pack in make_packs(study, store.uri, {t.trial_id for t in study.trials}):
        list(PackRunner(store, pack).run())
    Consolidation(store).write()
    assert len(list((tmp_path / "r" / "samples").rglob("*.png"))) == 4 * 2  # 4 trials x 2 evaluations
    text = build_report([str(tmp_path / "r")], str(tmp_path / "report")).read_text()
    assert "samples-gan-digits.png" in text and "evolution-gan-digits.png" in text
    assert (tmp_path / "report" / "samples-gan-digits.png").stat().st_size > 10000
