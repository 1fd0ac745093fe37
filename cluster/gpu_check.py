"""Before a long study: does a GPU worker of this Ray cluster start, does Ray count its GPU, can
torch in Ray's own worker processes use it, and does one GPU node hold the trials the files say
share a GPU (four CelebA trials)? Run it where the driver runs, on the head (cluster/README.md):

    python3 ~/vi-sweeps/cluster/gpu_check.py ~/vi-sweeps/studies/bn_ablation_celeba.yaml

It reserves one GPU's worth of the study's trials (1 / resources.gpu of them, each its
resources.cpu and resources.gpu) in one placement group that must fit on one node (STRICT_PACK).
Pending, that group makes the autoscaler start a GPU worker, as the study's own trials would. One
task in each reserved slot then reports its node, its GPU ids from Ray and what torch sees there.
Exit 0 when every slot landed on one node and got one GPU, and torch saw CUDA in each; else 1,
with the reason. The group is removed at the end, so the worker is free for the study.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def trial_shape(study: str | Path) -> dict[str, float]:
    """A trial's Ray resources as the study file declares them."""
    import yaml

    res = (yaml.safe_load(Path(study).read_text()) or {}).get("resources") or {}
    return {"CPU": float(res.get("cpu", 1.0)), "GPU": float(res.get("gpu", 0.0))}


def probe() -> dict:
    import os

    import ray
    import torch

    cuda = torch.cuda.is_available()
    return {"node": ray.get_runtime_context().get_node_id(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"), "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "cuda_available": cuda,
            "device": torch.cuda.get_device_name(0) if cuda else None}


def check(shape: dict[str, float], timeout_s: float = 1800, require_cuda: bool = True) -> tuple[list[dict], list[str]]:
    """(the slots' reports, the problems found); no problems means the GPU is ready for the study."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if shape["GPU"] <= 0:
        return [], ["the study asks for no GPU (resources.gpu is 0): nothing to check"]
    per_gpu = max(1, round(1 / shape["GPU"]))
    group = placement_group([dict(shape) for _ in range(per_gpu)], strategy="STRICT_PACK")
    try:
        if not group.wait(timeout_seconds=timeout_s):
            return [], [f"{per_gpu} trials of {shape} found no node to hold them all within {timeout_s:g} s: "
                        "no GPU worker started, or one holds fewer trials than its GPU should ("
                        "`ray status` lists the nodes and the pending demand)"]
        task = ray.remote(probe)
        reports = ray.get([task.options(num_cpus=shape["CPU"], num_gpus=shape["GPU"],
                                        scheduling_strategy=PlacementGroupSchedulingStrategy(
                                            group, placement_group_bundle_index=i)).remote() for i in range(per_gpu)])
    finally:
        remove_placement_group(group)
    problems = []
    if len({r["node"] for r in reports}) != 1:
        problems.append(f"the {per_gpu} trials landed on {len({r['node'] for r in reports})} nodes")
    if any(len(r["gpu_ids"]) != 1 for r in reports):
        problems.append(f"Ray gave the trials GPU ids {[r['gpu_ids'] for r in reports]}, not one GPU each")
    if require_cuda:
        for r in reports:
            if not r["cuda_available"]:
                why = ("it is a build without CUDA: install requirements/cluster.txt's torch" if r["torch_cuda"] is None
                       else f"its CUDA {r['torch_cuda']} needs a newer NVIDIA driver (nvidia-smi; 580+ for CUDA 13)")
                problems.append(f"torch {r['torch']} sees no GPU on node {r['node'][:12]} "
                                f"(CUDA_VISIBLE_DEVICES={r['CUDA_VISIBLE_DEVICES']}): {why}")
                break
    return reports, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="the study file whose resources to check (its resources: block)")
    parser.add_argument("--address", default="auto", help="the Ray cluster (default auto: the one on this node)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for a GPU worker (default 1800)")
    args = parser.parse_args(argv)
    import ray

    if not ray.is_initialized():
        ray.init(address=args.address, log_to_driver=False)
    shape = trial_shape(args.study)
    reports, problems = check(shape, timeout_s=args.timeout)
    for r in reports:
        print(json.dumps(r))
    if problems:
        for p in problems:
            print(f"GPU check failed: {p}", file=sys.stderr)
        return 1
    shared = Counter((r["node"][:12], r["gpu_ids"][0], r["device"]) for r in reports)
    for (node, gpu, device), n in shared.items():
        print(f"GPU check ok: {n} trials of {shape} share GPU {gpu} ({device}) on node {node}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
