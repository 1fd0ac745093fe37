"""FID of fid_samples generated images (an untrained paper-64 G) against as many real ones, on the
device: the reference statistics, the sampling and the FID timed apart; the Frechet distance on the
device checked against the same on the CPU."""
import os, sys, time, torch
from common import DEVICE, sync, dump
from vi_sweeps.config import TrialConfig
from vi_sweeps.metrics import features_to_statistics, statistics_to_frechet
from vi_sweeps.trial import Trial
root, weights, kind = sys.argv[1], sys.argv[2], sys.argv[3]
n = int(os.environ.get("FID_N", "10000"))
cfg = TrialConfig(dataset="image-folder", data_root=root, arch="paper-64", image_size=64, crop=108, z_dim=100,
                  fid_samples=n, eval_samples=n, fid_weights=weights, device=DEVICE, iterations=2, eval_every=2)
t0 = time.perf_counter()
trial = Trial(cfg)  # builds the Inception on the device and the real images' reference statistics
sync(); t_build = time.perf_counter() - t0
ev = trial.evaluator
assert all(p.device.type == torch.device(DEVICE).type for p in ev.extractor.parameters())
gens = [torch.Generator().manual_seed(1)]
t0 = time.perf_counter(); samples = trial.model.sample(n, gens); sync(); t_sample = time.perf_counter() - t0
t0 = time.perf_counter(); fid = next(iter(ev(samples[0]).values())); sync(); t_fid = time.perf_counter() - t0
feats = ev.features(samples[0][:n])
on_cpu = statistics_to_frechet(*features_to_statistics(feats.cpu()), ev.ref[0].cpu(), ev.ref[1].cpu())
dump("fid", {"weights": kind, "samples": n, "real_reference": min(n, len(trial.data)), "fid": fid,
             "fid_cpu_frechet": on_cpu, "abs_diff_device_vs_cpu": abs(fid - on_cpu),
             "seconds_trial_build_incl_reference": round(t_build, 2), "seconds_sampling": round(t_sample, 2),
             "seconds_fid": round(t_fid, 2), "samples_device": str(samples.device),
             "note": "random-weight Inception: the pipeline and its timing are real, the FID value is not"
                     if kind == "random" else "torch-fidelity's Inception weights (pt_inception-2015-12-05)"})
