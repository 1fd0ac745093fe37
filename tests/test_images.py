"""Image folders: decoded once into a node cache, sampled from it, scored by FID on the
trial's device with reference statistics computed once (issue: GPU-ready trials)."""

import multiprocessing as mp
import os
import tempfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.conftest import tiny
from vi_sweeps.data.datasets import _fingerprint, build_dataset, image_files
from vi_sweeps.data.imagecache import BadImage, preprocess
from vi_sweeps.study.config import ConfigError


def make_folder(root, n=12, size=(60, 48), seed=0):
    rng = np.random.RandomState(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / f"{i:03d}.jpg", quality=90)
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VI_SWEEPS_CACHE", str(tmp_path / "cache"))
    _fingerprint.cache_clear()
    return tmp_path / "cache" / "images"


def cfg_for(root, **kw):
    return tiny(dataset="image-folder", data_root=str(root), image_size=8, crop=40, fid_weights="none", **kw)


def test_the_preprocessing_crops_resizes_and_scales(tmp_path, cache):
    img = np.zeros((200, 200, 3), dtype=np.uint8)
    img[:, :100] = 255
    Image.fromarray(img).save(tmp_path / "half.png")
    data = build_dataset(tiny(dataset="image-folder", data_root=str(tmp_path), image_size=8, crop=108))
    x = data.sample(2, torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 8, 8) and x.dtype == torch.float32
    assert torch.all(x[..., :3] == 1.0) and torch.all(x[..., 5:] == -1.0)


def test_sampling_the_cache_gives_the_batches_of_decoding_each_image(tmp_path, cache):
    root = make_folder(tmp_path / "faces")
    cfg = cfg_for(root)
    data = build_dataset(cfg)
    files = image_files(str(root))
    got = data.sample(20, torch.Generator().manual_seed(5))
    idx = torch.randint(len(files), (20,), generator=torch.Generator().manual_seed(5))
    want = torch.stack([torch.from_numpy(preprocess(files[i], 8, 40)) for i in idx.tolist()]).float() / 127.5 - 1
    assert torch.equal(got, want)


def _open_cache(args):
    root, cache_dir = args
    os.environ["VI_SWEEPS_CACHE"] = cache_dir
    from vi_sweeps.data.datasets import image_cache

    meta = image_cache(cfg_for(root)).meta
    return meta["built_by"], f"{os.uname().nodename}:{os.getpid()}"


@pytest.mark.slow
def test_two_concurrent_trials_build_the_cache_once_and_a_changed_file_rebuilds_it(tmp_path, cache):
    root = make_folder(tmp_path / "faces", n=60, size=(178, 218))
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(_open_cache, [(str(root), str(cache.parent))] * 2)
    builders = {built for built, _ in results}
    assert len(builders) == 1 and builders <= {me for _, me in results}  # one built it, the other waited and read it
    assert len(list(cache.glob("*.u8"))) == 1 and not list(cache.glob("*.tmp-*"))
    stamp = next(cache.glob("*.u8")).stat().st_mtime_ns
    build_dataset(cfg_for(root))  # a third trial: reuses it
    assert next(cache.glob("*.u8")).stat().st_mtime_ns == stamp and len(list(cache.glob("*.u8"))) == 1
    Image.new("RGB", (178, 218), (255, 0, 0)).save(root / "000.jpg")  # one file changes
    _fingerprint.cache_clear()
    data = build_dataset(cfg_for(root))
    assert len(list(cache.glob("*.u8"))) == 2 and len(data) == 60
    assert data.images()[0, 0].float().mean() > 250  # the new red image, not the old one


def test_a_corrupt_image_is_named_or_skipped_with_a_count(tmp_path, cache, capsys):
    root = make_folder(tmp_path / "faces", n=5)
    (root / "002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(BadImage, match=f"cannot read {root / '002.jpg'}.*skip_bad_images: true"):
        build_dataset(cfg_for(root))
    assert not list(cache.glob("*.u8"))  # nothing half-built left behind
    data = build_dataset(cfg_for(root, skip_bad_images=True))
    assert len(data) == 4 and data.cache.meta["skipped"] == [str(root / "002.jpg")]
    assert "left out 1 unreadable image(s)" in capsys.readouterr().err


def test_a_study_on_a_folder_with_a_corrupt_image_exits_2_before_anything_is_written(tmp_path, cache):
    from vi_sweeps.cli.commands import main

    root = make_folder(tmp_path / "faces", n=3)
    (root / "001.jpg").write_bytes(b"garbage")
    study = tmp_path / "s.yaml"
    study.write_text(f"name: faces\ndatasets: [image-folder]\nbase: {{data_root: {root}, image_size: 8, crop: 40, "
                     "fid_weights: none}\nbudget: {iterations: 4, eval_every: 2}\n")
    r = CliRunner().invoke(main, ["run", str(study), "--results", str(tmp_path / "r")])
    assert r.exit_code == 2 and f"cannot read {root / '001.jpg'}" in r.output
    assert not (tmp_path / "r").exists()
    r = CliRunner().invoke(main, ["run", str(study).replace("s.yaml", "s.yaml"), "--results", str(tmp_path / "r"),
                                  "--set", "data_root=/no/such/folder"])
    assert r.exit_code == 2 and "data_root: '/no/such/folder' is not a readable folder" in r.output


def test_missing_fid_weights_are_a_clear_error_naming_the_way_out(tmp_path, cache, monkeypatch):
    from vi_sweeps.metrics.evaluators import inception_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match="run `vi-sweep fetch-weights`.*fid_weights=none"):
        inception_weights(tiny(dataset="image-folder", data_root=str(tmp_path), image_size=8))
    assert inception_weights(tiny(dataset="image-folder", data_root=str(tmp_path), image_size=8, fid_weights="none")) is None


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """torch-fidelity's real Inception-v3, with random weights (no download here): the FID
    pipeline runs as it would, only its numbers mean nothing."""
    from vi_sweeps.metrics.evaluators import inception_class

    try:
        inception = inception_class()
    except ImportError:
        pytest.skip("torch-fidelity is not installed")

    class Random(inception):
        def load_state_dict(self, *args, **kwargs):
            return None

    folder = tmp_path_factory.mktemp("weights")
    torch.save({}, folder / "empty.pth")
    torch.manual_seed(0)
    net = Random("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(folder / "empty.pth"))
    torch.save(net.state_dict(), folder / "random-inception.pth")
    return folder / "random-inception.pth"


@pytest.mark.slow
def test_fid_runs_on_the_trials_device_and_its_reference_is_computed_once(tmp_path, cache, random_inception_weights):
    from vi_sweeps.engine.trial import Trial, evaluations

    root = make_folder(tmp_path / "faces", n=20)
    cfg = cfg_for(root, fid_samples=16, eval_samples=100, iterations=2).model_copy(
        update={"fid_weights": str(random_inception_weights)})
    first = Trial(cfg)
    ev = first.evaluator
    assert all(p.device == first.device for p in ev.extractor.parameters())
    samples = first.model.sample(16, [torch.Generator().manual_seed(0)])
    assert samples.device == first.device and ev.ref[0].device == first.device and ev.ref[0].shape == (2048,)
    (ref,) = (cache.parent / "fid-reference").glob("*.pt")
    stamp = ref.stat().st_mtime_ns
    second = Trial(cfg.model_copy(update={"seed": 1}))  # another trial of the sweep
    assert ref.stat().st_mtime_ns == stamp and len(list((cache.parent / "fid-reference").glob("*.pt"))) == 1
    assert torch.equal(second.evaluator.ref[1], ev.ref[1])
    rows = [e.row for evals in evaluations(second) for e in evals]
    assert all(np.isfinite(r["eval/fid_inception"]) and r["eval/fid_inception"] >= 0 for r in rows)
    assert second.eval_samples == 100  # max(eval_samples, fid_samples)
    # the reference is fid_samples real images drawn without replacement, so of a folder of
    # 20 images with fid_samples 20 it is all of them: the same statistics in any order
    full = Trial(cfg.model_copy(update={"fid_samples": 20}))
    feats = full.evaluator.features(full.data.images()[torch.arange(20)].float() / 127.5 - 1)
    from vi_sweeps.metrics.evaluators import features_to_statistics

    mu, _ = features_to_statistics(feats)
    assert torch.allclose(mu, full.evaluator.ref[0], atol=1e-6)


@pytest.mark.slow
def test_the_reference_statistics_are_shared_between_nodes_through_the_results_store(tmp_path, monkeypatch,
                                                                                     random_inception_weights):
    """Two nodes (two node caches) and one results store: the first computes the reference and
    puts it in RESULTS/references/; the second takes it from there and computes nothing."""
    from vi_contract.schema import REFERENCES_DIR
    from vi_contract.store import Store
    from vi_sweeps.engine.trial import Trial

    root = make_folder(tmp_path / "faces", n=20)
    cfg = cfg_for(root, fid_samples=16).model_copy(update={"fid_weights": str(random_inception_weights)})
    store = Store.open(str(tmp_path / "results"))
    monkeypatch.setenv("VI_SWEEPS_CACHE", str(tmp_path / "node-a"))
    first = Trial(cfg, store=store)
    (name,) = store.listdir(REFERENCES_DIR)
    saved = torch.load(tmp_path / "results" / REFERENCES_DIR / name, weights_only=True)
    assert torch.equal(saved["mu"], first.evaluator.ref[0]) and saved["n"] == 16
    # plant a marked copy in the store: node b must read it, not compute its own
    torch.save({**saved, "mu": saved["mu"] + 1.0}, tmp_path / "results" / REFERENCES_DIR / name)
    monkeypatch.setenv("VI_SWEEPS_CACHE", str(tmp_path / "node-b"))
    second = Trial(cfg.model_copy(update={"seed": 1}), store=store)
    assert torch.equal(second.evaluator.ref[0], saved["mu"] + 1.0)
    assert (tmp_path / "node-b" / "fid-reference" / name).exists()  # and keeps it in its own cache


def test_packs_and_trials_of_one_process_share_one_copy_of_the_images(tmp_path, cache):
    from vi_sweeps.engine.trial import Trial

    root = make_folder(tmp_path / "faces", n=8)
    pack = Trial([cfg_for(root, seed=s, pack_size=3, pack_index=s) for s in range(3)])  # one pack of three seeds
    other = Trial(cfg_for(root, seed=7))  # and another trial run by the same worker process
    assert pack.data.images() is other.data.images()
    assert pack.data.images().data_ptr() == other.data.images().data_ptr()


@pytest.mark.slow
def test_a_store_that_cannot_take_the_reference_warns_and_the_trial_goes_on(tmp_path, cache, random_inception_weights):
    from vi_contract.schema import REFERENCES_DIR
    from vi_contract.store import Store
    from vi_sweeps.engine.trial import Trial

    root = make_folder(tmp_path / "faces", n=20)
    cfg = cfg_for(root, fid_samples=16).model_copy(update={"fid_weights": str(random_inception_weights)})
    store = Store.open(str(tmp_path / "results"))
    (tmp_path / "results" / REFERENCES_DIR).write_text("a file where the folder would go")
    with pytest.warns(UserWarning, match="FID reference statistics not shared through the results store"):
        trial = Trial(cfg, store=store)
    assert trial.evaluator.ref[0].shape == (2048,)  # from the node's own copy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_images_the_extractor_and_the_samples_live_on_the_device(tmp_path, cache, random_inception_weights):
    from vi_sweeps.engine.trial import Trial, evaluations

    root = make_folder(tmp_path / "faces", n=20)
    cfg = cfg_for(root, fid_samples=16, device="cuda").model_copy(update={"fid_weights": str(random_inception_weights)})
    trial = Trial(cfg)
    assert trial.data.images(trial.device).is_cuda
    assert trial.model.real(4).is_cuda and all(p.is_cuda for p in trial.evaluator.extractor.parameters())
    cpu = Trial(cfg.model_copy(update={"device": "cpu"}))
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(trial.data.sample(8, gen_a, trial.device).cpu(), cpu.data.sample(8, gen_b))  # the same images
    rows = [e.row for evals in evaluations(trial) for e in evals]
    assert all(r["device_resolved"].startswith("cuda:") and r["device_name"] for r in rows)
    assert trial.evaluator.ref_feats.is_cuda
    digits = Trial(tiny(dataset="stacked-digits", image_size=8, device="cuda"))  # the digits classifier too
    assert all(p.is_cuda for p in digits.evaluator.net.parameters())
    list(evaluations(digits))


def test_the_image_cache_key_does_not_depend_on_where_the_folder_is(tmp_path, cache):
    a = make_folder(tmp_path / "a", n=4)
    b = tmp_path / "elsewhere" / "b"
    b.parent.mkdir()
    os.rename(a, b)
    _fingerprint.cache_clear()
    build_dataset(cfg_for(b))
    make_folder(tmp_path / "a", n=4)  # the same content again at the first place
    _fingerprint.cache_clear()
    build_dataset(cfg_for(tmp_path / "a"))
    assert len(list(cache.glob("*.u8"))) == 1
    assert tempfile.gettempdir()


def test_fetch_weights_downloads_or_copies_them_where_trials_look(tmp_path, monkeypatch):
    import hashlib
    import http.server
    import threading

    from vi_sweeps.cli.commands import main
    from vi_sweeps.metrics.evaluators import default_weights_path, inception_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    payload = os.urandom(4096)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "w.pth").write_bytes(payload)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "site"), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    digest = ["--sha256", hashlib.sha256(payload).hexdigest()[:12]]
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/w.pth"
        r = CliRunner().invoke(main, ["fetch-weights", "--url", url])  # not torch-fidelity's hash: refused
        assert r.exit_code == 1 and "not the weights asked for" in r.output and not default_weights_path().exists()
        r = CliRunner().invoke(main, ["fetch-weights", "--url", url, *digest])
        assert r.exit_code == 0, r.output
        assert default_weights_path().read_bytes() == payload  # torch-fidelity's cache, under TORCH_HOME
        cfg = tiny(dataset="image-folder", data_root=str(tmp_path), image_size=8)
        assert inception_weights(cfg) == default_weights_path()
        r = CliRunner().invoke(main, ["fetch-weights", "--url", url.replace("w.pth", "missing.pth"), *digest])
        assert r.exit_code == 1 and "cannot fetch the weights" in r.output
    finally:
        server.shutdown()
    copy = ["fetch-weights", "--from", str(tmp_path / "site" / "w.pth"), "--to", str(tmp_path / "shared" / "w.pth")]
    r = CliRunner().invoke(main, copy)  # a copy is checked too: garbage there would be every trial's FID
    assert r.exit_code == 2 and "not the weights asked for" in r.output and not (tmp_path / "shared" / "w.pth").exists()
    r = CliRunner().invoke(main, [*copy, *digest])
    assert r.exit_code == 0 and (tmp_path / "shared" / "w.pth").read_bytes() == payload
    assert not list((tmp_path / "shared").glob("*.part"))
    for bad, why in (("", "--to: an empty path"), (str(tmp_path / "site" / "w.pth" / "x.pth"), "--to: ")):
        r = CliRunner().invoke(main, ["fetch-weights", "--from", str(tmp_path / "site" / "w.pth"), "--to", bad, *digest])
        assert r.exit_code == 2 and why in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_a_driver_on_a_cluster_names_the_trials_but_leaves_caches_and_weights_to_their_nodes(tmp_path, cache, monkeypatch):
    """On a cluster the driver runs on a CPU head: building the image cache there, and asking
    for FID weights there, refused (or delayed) a sweep whose trials run on GPU nodes."""
    from vi_sweeps.study.load import load_study_text
    from vi_sweeps.sweep.driver import prepare_data

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights on this node
    root = make_folder(tmp_path / "faces", n=6)
    study = load_study_text(f"name: faces\ndatasets: [image-folder]\nbase: {{data_root: {root}, image_size: 8, crop: 40}}\n",
                            "faces.yaml")
    assert all(t.trial_id for t in study.trials)  # the listing names the trials
    prepare_data(study, local=False)
    assert not cache.exists()
    with pytest.raises(ConfigError, match="fid_weights: FID needs the Inception weights"):
        prepare_data(study, local=True)  # an embedded Ray: the trials run here
