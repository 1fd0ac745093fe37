"""The cloud and Kubernetes configs, checked past their schemas by the upstream code that reads
them: Ray's own autoscaler scheduling (resource_demand_scheduler) on what `ray up` prepares from
cluster/aws.yaml and cluster/gcp.yaml, and on what Ray's KubeRay autoscaler derives from the
manifests, against the CelebA study's trials as Tune asks the cluster for them; what the KubeRay
operator needs beyond its CRD schema (a ServiceAccount object for a named account, tolerations for
the GPU pools' taint, a rayVersion with token authentication); one set of pins for every node, the
image and the README; the trials-per-GPU sentence wherever it is written. Each check is also run
on a broken copy (a planted typo, a removed `resources`, ...) and must refuse it. Nothing here
starts a cloud resource: these are pure functions of Ray's, fed the files."""

import copy
import importlib.util
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT

CLUSTER = ROOT / "cluster"
STUDY = ROOT / "studies/bn_ablation_celeba.yaml"
PINS = ROOT / "requirements/cluster.txt"
LAUNCHERS = sorted(CLUSTER.glob("*.yaml"))
MANIFESTS = sorted((CLUSTER / "kuberay").glob("*.yaml"))
TOKEN_AUTH_MIN = Version("2.52.0")  # Ray's token authentication, which KubeRay's authOptions turns on
# the taints GPU node pools carry: GKE adds nvidia.com/gpu=present:NoSchedule itself; EKS and
# NVIDIA's GPU operator guides taint nvidia.com/gpu=true:NoSchedule
GPU_TAINTS = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
              {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
# files that say how many CelebA trials share a GPU (README.md is read too, where it says so)
CLAIMING = [STUDY, CLUSTER / "aws.yaml", CLUSTER / "gcp.yaml", *MANIFESTS, CLUSTER / "README.md"]
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
CLAIM = re.compile(r"\b(one|two|three|four|five|six|seven|eight|\d+) (?:celeba )?trials share a gpu\b", re.I)


# ----- the pins: one file

def pins(path: Path = PINS) -> dict[str, Requirement]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
            out[req.name] = req
    return out


def pinned(name: str, path: Path = PINS) -> str:
    return next(iter(pins(path)[name].specifier)).version


# ----- the study's demand, as Tune makes it, and Ray's autoscaler scheduling of it

def celeba_trials() -> tuple[dict, int, str]:
    """(one trial's bundle, how many Ray trials, the placement strategy): Tune turns the
    {"cpu", "gpu"} dict that vi_sweeps.sweep.ray_session.trainable_for hands to tune.with_resources into one
    placement group per trial (resource_dict_to_pg_factory); a trial is a pack of seeds."""
    from ray.tune.execution.placement_groups import resource_dict_to_pg_factory

    from vi_sweeps.study.expansion import condition_key, pack_layout
    from vi_sweeps.study.load import load_study

    study = load_study(STUDY)
    res = study.spec.resources
    factory = resource_dict_to_pg_factory({"cpu": res.cpu, "gpu": res.gpu})
    (bundle,) = factory.bundles
    seeds = defaultdict(int)
    for t in study.trials:
        seeds[condition_key(t.config, t.labels)] += 1
    packs = sum(len(pack_layout(n, study.spec.pack_seeds)) for n in seeds.values())
    return {k: v for k, v in bundle.items() if v}, packs, factory.strategy  # Ray drops zero quantities


def pending_groups(bundle: dict, n: int, strategy: str) -> list:
    """The autoscaler's view of n trials waiting: n pending placement groups (GCS table rows)."""
    from ray.core.generated.common_pb2 import Bundle, PlacementStrategy
    from ray.core.generated.gcs_pb2 import PlacementGroupTableData

    return [PlacementGroupTableData(state=PlacementGroupTableData.PENDING, strategy=PlacementStrategy.Value(strategy),
                                    bundles=[Bundle(unit_resources=bundle)]) for _ in range(n)]


def _head_only_provider(head_type: str):
    from ray.autoscaler.node_provider import NodeProvider
    from ray.autoscaler.tags import NODE_KIND_HEAD, TAG_RAY_NODE_KIND, TAG_RAY_USER_NODE_TYPE

    class HeadOnly(NodeProvider):  # a cluster that has only its head, as right after `ray up`
        def non_terminated_nodes(self, tag_filters):
            return ["head"]

        def node_tags(self, node_id):
            return {TAG_RAY_NODE_KIND: NODE_KIND_HEAD, TAG_RAY_USER_NODE_TYPE: head_type}

        def internal_ip(self, node_id):
            return "head"

    return HeadOnly({}, "vi-sweeps")


@dataclass
class Plan:
    launch: dict        # node type -> how many Ray's autoscaler starts
    unplaced: list      # trials it found no node type for
    per_gpu: dict       # launched node type -> trials one node of it holds, per GPU
    on_head: int        # trials the head could hold
    left_over: list     # trials that fit neither the head nor the launched nodes
    trials: int


def launch_plan(config: dict) -> Plan:
    """Ray's autoscaler's first pass over a cluster of one head while the study's trials wait
    (ResourceDemandScheduler.get_nodes_to_launch, as autoscaler.py calls it), then Ray's own bin
    packing of the trials onto one node of each launched type."""
    from ray.autoscaler._private.node_provider_availability_tracker import NodeAvailabilitySummary
    from ray.autoscaler._private.resource_demand_scheduler import ResourceDemandScheduler, get_bin_pack_residual

    bundle, n, strategy = celeba_trials()
    types, head = config["available_node_types"], config["head_node_type"]
    scheduler = ResourceDemandScheduler(_head_only_provider(head), types, config["max_workers"], head,
                                        config.get("upscaling_speed", 1.0))
    head_now = dict(types[head].get("resources") or {})
    launch, unplaced = scheduler.get_nodes_to_launch(
        nodes=["head"], launching_nodes={}, resource_demands=[], unused_resources_by_ip={"head": head_now},
        pending_placement_groups=pending_groups(bundle, n, strategy), max_resources_by_ip={"head": head_now},
        ensure_min_cluster_size=[], node_availability_summary=NodeAvailabilitySummary(node_availabilities={}))
    trials = [dict(bundle) for _ in range(n)]
    per_gpu = {}
    for name in launch:
        res = types[name]["resources"]
        held = n - len(get_bin_pack_residual([res], trials)[0])
        per_gpu[name] = held / res["GPU"] if res.get("GPU") else 0.0
    nodes = [head_now] + [dict(types[name]["resources"]) for name, k in launch.items() for _ in range(k)]
    return Plan(dict(launch), list(unplaced), per_gpu, n - len(get_bin_pack_residual([head_now], trials)[0]),
                get_bin_pack_residual(nodes, trials)[0], n)


def claimed_trials_per_gpu() -> int:
    (n,) = {c for path in CLAIMING for c in claims(path.read_text())}
    return n


def assert_places_the_claimed_trials_per_gpu(config: dict, who: str) -> Plan:
    want = claimed_trials_per_gpu()
    plan = launch_plan(config)
    assert plan.launch, f"{who}: Ray's autoscaler starts no node for the study's trials {plan.unplaced[:1]}"
    assert not plan.unplaced, f"{who}: Ray's autoscaler found no node type for {len(plan.unplaced)} trials"
    assert all(v == want for v in plan.per_gpu.values()), f"{who}: a GPU node holds {plan.per_gpu} trials a GPU, " \
                                                           f"the files say {want}"
    assert plan.on_head == 0 and not plan.left_over, f"{who}: {plan}"
    assert sum(plan.launch.values()) == plan.trials // want, f"{who}: {plan.launch} for {plan.trials} trials"
    return plan


def prepared(path: Path) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load(path.read_text()))  # what `ray up` reads before it starts nodes
    validate_config(config)
    return config


def gpu_type(config: dict) -> str:
    (name,) = [n for n in config["available_node_types"] if n != config["head_node_type"]]
    return name


# stand-in for EC2's DescribeInstanceTypes answer (what Ray's AWS provider asks EC2 in `ray up`),
# for the instance types the files name and the g5 sizes around them
EC2 = {"m6i.2xlarge": (8, 32768, None), "g5.xlarge": (4, 16384, "A10G"), "g5.2xlarge": (8, 32768, "A10G"),
       "g5.4xlarge": (16, 65536, "A10G"), "g5.8xlarge": (32, 131072, "A10G")}


def aws_filled(config: dict, monkeypatch) -> dict:
    """The AWS provider's own fill-in of node resources (fillout_available_node_types_resources),
    EC2 answered from the table above: declared resources win where both are given."""
    from ray.autoscaler._private.aws import node_provider

    def instances(region, credentials):
        return [{"InstanceType": name, "VCpuInfo": {"DefaultVCpus": cpus}, "MemoryInfo": {"SizeInMiB": mib},
                 **({"GpuInfo": {"Gpus": [{"Name": gpu, "Count": 1, "Manufacturer": "NVIDIA"}]}} if gpu else {})}
                for name, (cpus, mib, gpu) in EC2.items()]

    monkeypatch.setattr(node_provider, "list_ec2_instances", instances)
    return node_provider.AWSNodeProvider.fillout_available_node_types_resources(config)


def broken_launchers(config: dict):
    """(what was broken, the broken config): each must be refused."""
    worker = gpu_type(config)
    gone = copy.deepcopy(config)
    gone["available_node_types"][worker]["resources"] = {}
    yield "resources removed", gone
    typo = copy.deepcopy(config)
    res = typo["available_node_types"][worker]["resources"]
    res["GPUs"] = res.pop("GPU")
    yield "GPU spelled GPUs", typo
    small = copy.deepcopy(config)
    small["available_node_types"][worker]["resources"]["CPU"] = 8
    yield "an 8-CPU GPU node", small


# ----- the launcher configs

@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_a_launcher_config_passes_rays_own_schema(path):
    from jsonschema import ValidationError
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(path.read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` checks before it starts nodes
    nodes = config["available_node_types"]
    workers = [n for name, n in nodes.items() if name != config["head_node_type"]]
    assert workers and all(n["max_workers"] >= n["min_workers"] for n in workers)
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    for c in (c for c in starts if "ray start" in c):
        limit = re.search(r"\bulimit -n (\d+);", c)  # many concurrent trials: Ray's examples raise it so
        assert "RAY_AUTH_MODE=token" in c and limit and int(limit[1]) >= 65536, c
    assert "~/.ray/auth_token" in config["file_mounts"].values()
    typo = copy.deepcopy(config)
    typo["max_worker"] = typo.pop("max_workers")  # the schema refuses what `ray up` would refuse
    with pytest.raises(ValidationError):
        validate_config(prepare_config(typo))


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_rays_autoscaler_starts_gpu_workers_that_hold_the_trials_the_files_claim(path, monkeypatch):
    config = prepared(path)
    plan = assert_places_the_claimed_trials_per_gpu(config, path.name)
    assert set(plan.launch) == {gpu_type(config)}
    if config["provider"]["type"] == "aws":
        # `ray up` also asks EC2 for the instance types' sizes; the declared resources must agree with them
        filled = aws_filled(copy.deepcopy(config), monkeypatch)
        for name, node in config["available_node_types"].items():
            detected = filled["available_node_types"][name]["resources"]
            assert {k: detected[k] for k in node["resources"]} == node["resources"], (name, detected)
        assert_places_the_claimed_trials_per_gpu(filled, f"{path.name} after the EC2 lookup")
    else:
        # Ray's GCP provider fills in TPU resources only (GCPNodeProvider.fillout_available_node_types_
        # resources), so the declared ones are all its autoscaler has: they must match the machine
        worker = config["available_node_types"][gpu_type(config)]
        machine = worker["node_config"]["machineType"]
        assert worker["resources"]["CPU"] == int(machine.rsplit("-", 1)[1]), machine
        assert worker["resources"]["GPU"] == sum(a["acceleratorCount"] for a in worker["node_config"]["guestAccelerators"])
        image = worker["node_config"]["disks"][0]["initializeParams"]["sourceImage"]
        metadata = {i["key"]: i["value"] for i in worker["node_config"].get("metadata", {}).get("items", [])}
        if "deeplearning-platform-release" in image:  # a Deep Learning VM installs its driver only when asked
            assert metadata.get("install-nvidia-driver") == "True", metadata
    for why, broken in broken_launchers(config):
        with pytest.raises(AssertionError):
            assert_places_the_claimed_trials_per_gpu(broken, why)


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_every_node_installs_the_pins_and_checks_its_gpu(path):
    config = yaml.safe_load(path.read_text())
    mount = next(remote for remote, local in config["file_mounts"].items() if local == ".")
    setup = " ".join(config["setup_commands"])
    assert f"-r {mount}/requirements/cluster.txt" in setup, setup  # the exact pins, on every node
    assert f'"{mount}[fid]"' in setup  # and the package with FID, in the same resolution
    assert not re.search(r"\b(ray|torch)(\[[^\]]*\])?\s*[<>=~!]", setup), "a version written beside the pin file"
    gpu = " ".join(config["worker_setup_commands"])
    assert "nvidia-smi" in gpu and "torch.cuda.is_available()" in gpu  # a worker torch cannot use fails its setup


@pytest.mark.parametrize("path", LAUNCHERS, ids=lambda p: p.name)
def test_the_nodes_get_no_history_or_docs(path, tmp_path):
    """The rsync arguments Ray builds from the config (SSHCommandRunner), run for real where rsync exists."""
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    config = yaml.safe_load(path.read_text())
    args = SSHCommandRunner._create_rsync_filter_args(None, {"rsync_exclude": config.get("rsync_exclude"),
                                                             "rsync_filter": config.get("rsync_filter")})
    patterns = [a for a in args if a != "--exclude"]
    assert {"**/.git", "/docs"} <= set(patterns), patterns
    if shutil.which("rsync"):
        (tmp_path / "repo/docs/reproduction").mkdir(parents=True)
        (tmp_path / "repo/.git/objects").mkdir(parents=True)
        (tmp_path / "repo/vi_sweeps/docs").mkdir(parents=True)  # only the top-level docs/ is left out
        for f in ("docs/reproduction/x.parquet", ".git/objects/ab", "vi_sweeps/docs/keep.txt", "README.md"):
            (tmp_path / "repo" / f).write_text("x")
        out = subprocess.run(["rsync", "-avzn", *args, f"{tmp_path}/repo/", f"{tmp_path}/dest/"], capture_output=True,
                             text=True, check=True).stdout.split()
        assert "README.md" in out and "vi_sweeps/docs/keep.txt" in out, out
        assert not any(p.startswith((".git", "docs/")) for p in out), out


# ----- the KubeRay manifests

def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def ray_cluster(docs: list[dict]) -> tuple[dict, dict]:
    """(the RayCluster spec, the object that holds it: a RayCluster or a RayJob)."""
    (owner,) = [d for d in docs if d["kind"] in ("RayCluster", "RayJob")]
    return (owner["spec"] if owner["kind"] == "RayCluster" else owner["spec"]["rayClusterSpec"]), owner


def pod_templates(owner: dict) -> list[dict]:
    spec = owner["spec"] if owner["kind"] == "RayCluster" else owner["spec"]["rayClusterSpec"]
    out = [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]
    if owner["kind"] == "RayJob" and "submitterPodTemplate" in owner["spec"]:
        out.append(owner["spec"]["submitterPodTemplate"])
    return out


def tolerates(toleration: dict, taint: dict) -> bool:
    """Kubernetes' ToleratesTaint (k8s.io/api/core/v1/toleration.go)."""
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("key") and toleration["key"] != taint["key"]:
        return False
    operator = toleration.get("operator", "Equal")
    return operator == "Exists" or (operator == "Equal" and toleration.get("value", "") == taint.get("value", ""))


def assert_what_the_operator_needs(docs: list[dict], who: str) -> None:
    spec, owner = ray_cluster(docs)
    namespace = owner["metadata"].get("namespace")
    accounts = {(d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs if d["kind"] == "ServiceAccount"}
    for template in pod_templates(owner):
        name = template["spec"].get("serviceAccountName")
        if name and name != "default":  # KubeRay's pods are refused until the named account exists
            assert (name, namespace) in accounts, f"{who}: ServiceAccount {name} is not found"
    for group in spec["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        res = pod["containers"][0].get("resources", {})
        if any(k.endswith("/gpu") for part in res.values() for k in part):
            for taint in GPU_TAINTS:
                assert any(tolerates(t, taint) for t in pod.get("tolerations", [])), \
                    f"{who}: group {group['groupName']} does not tolerate {taint}: its pods stay Pending"
    version = Version(spec["rayVersion"])
    if spec.get("authOptions", {}).get("mode") == "token":
        assert version >= TOKEN_AUTH_MIN, f"{who}: rayVersion {version} has no token authentication"
    assert version == Version(pinned("ray")), f"{who}: rayVersion {version}, the pins say {pinned('ray')}"
    tag = f"ray{pinned('ray')}-torch{pinned('torch')}"
    for template in pod_templates(owner):
        for container in template["spec"]["containers"]:
            assert container["image"].endswith(f":{tag}"), f"{who}: {container['image']} is not the image of the pins"


def broken_manifests(docs: list[dict]):
    spec, owner = ray_cluster(docs)
    no_account = [d for d in copy.deepcopy(docs) if d["kind"] != "ServiceAccount"]
    yield "no ServiceAccount", no_account
    typo = copy.deepcopy(docs)
    ray_cluster(typo)[0]["workerGroupSpecs"][0]["template"]["spec"]["serviceAccountName"] = "vi-sweep"
    yield "a misspelt serviceAccountName", typo
    untolerated = copy.deepcopy(docs)
    for t in ray_cluster(untolerated)[0]["workerGroupSpecs"][0]["template"]["spec"]["tolerations"]:
        t["key"] = "nvidia.com/gpus"
    yield "a toleration for another key", untolerated
    old = copy.deepcopy(docs)
    ray_cluster(old)[0]["rayVersion"] = "2.51.0"
    yield "a Ray without token authentication", old
    latest = copy.deepcopy(docs)
    ray_cluster(latest)[0]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["image"] = "x:latest"
    yield "an image tag of no version", latest


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_kuberay_manifests_give_the_operator_what_it_needs_beyond_its_schema(path):
    docs = documents(path)
    assert_what_the_operator_needs(docs, path.name)
    for why, broken in broken_manifests(docs):
        with pytest.raises(AssertionError):
            assert_what_the_operator_needs(broken, why)


def kuberay_autoscaling_config(docs: list[dict]) -> dict:
    """What Ray's autoscaler in a KubeRay head derives from the RayCluster (node types from the
    groups' rayStartParams and container limits), as the operator's autoscaler sidecar does."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    spec, owner = ray_cluster(docs)
    return _derive_autoscaling_config_from_ray_cr({"metadata": {"name": owner["metadata"]["name"], "namespace": "default"},
                                                   "spec": spec})


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_kuberay_autoscaler_starts_gpu_pods_that_hold_the_trials_the_files_claim(path):
    docs = documents(path)
    plan = assert_places_the_claimed_trials_per_gpu(kuberay_autoscaling_config(docs), path.name)
    assert set(plan.launch) == {"gpu"}
    small = copy.deepcopy(docs)
    ray_cluster(small)[0]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "8"
    no_gpu = copy.deepcopy(docs)
    for part in ray_cluster(no_gpu)[0]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"].values():
        part.pop("nvidia.com/gpu")
    for why, broken in (("an 8-CPU pod", small), ("no GPU limit", no_gpu)):
        with pytest.raises(AssertionError):
            assert_places_the_claimed_trials_per_gpu(kuberay_autoscaling_config(broken), why)


def test_the_rayjob_runs_the_study_by_absolute_paths_inside_the_image():
    docs = documents(CLUSTER / "kuberay/rayjob.yaml")
    (job,) = [d for d in docs if d["kind"] == "RayJob"]
    app = re.search(r"^COPY (?:--\S+ )*\. (\S+)$", (CLUSTER / "Dockerfile").read_text(), re.M)[1]  # the repo in the image
    commands = [c.split() for c in job["spec"]["entrypoint"].split("&&")]
    run = next(c for c in commands if c[:2] == ["vi-sweep", "run"])
    for words in commands:
        for word in words:
            if word.endswith((".py", ".yaml")):
                assert word.startswith(app + "/"), f"{word}: a relative path depends on the container's workingDir"
                assert (ROOT / word.removeprefix(app + "/")).exists(), word
    assert run[2] == f"{app}/studies/bn_ablation_celeba.yaml"
    assert run[run.index("--results") + 1].startswith("s3://") and job["spec"]["shutdownAfterJobFinishes"]
    for path in MANIFESTS:
        text = path.read_text()
        assert "aws_secret_access_key" not in text.lower() and "AKIA" not in text  # credentials never in files


# ----- the pins, the image, the sentence, the README

def test_one_set_of_pins_for_the_driver_every_node_and_the_image():
    import ray
    import torch

    assert {"default", "tune"} <= pins()["ray"].extras  # [default]: the dashboard and Jobs API of `ray job submit`
    ray_pin, torch_pin = pinned("ray"), pinned("torch")
    assert ray.__version__ == ray_pin == pinned("ray", ROOT / "requirements/ci.txt"), "the driver's Ray is not the nodes'"
    assert Version(torch.__version__).base_version == torch_pin == pinned("torch", ROOT / "requirements/ci.txt")
    assert pinned("torchvision") and pinned("torch-fidelity")
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)$", dockerfile, re.M)
    assert base == f"rayproject/ray:{ray_pin}-py311-gpu", base  # Ray's GPU image at the pinned Ray
    assert "-r /app/vi-sweeps/requirements/cluster.txt" in dockerfile
    tag = f"vi-sweeps:ray{ray_pin}-torch{torch_pin}"
    assert tag in dockerfile and tag in (CLUSTER / "README.md").read_text()
    ignored = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    assert {".git", "docs"} <= set(ignored)


def claims(text: str) -> set[int]:
    return {NUMBERS.get(m.lower()) or int(m) for m in CLAIM.findall(" ".join(text.replace("#", " ").split()))}


def test_the_trials_per_gpu_sentence_says_one_number_the_study_agrees_with():
    from vi_sweeps.study.load import load_study

    for path in CLAIMING:
        assert claims(path.read_text()), f"{path.relative_to(ROOT)} no longer says how many trials share a GPU"
    found = {c for path in [*CLAIMING, ROOT / "README.md"] for c in claims(path.read_text())}
    assert len(found) == 1, f"the files disagree: {found} trials share a GPU"
    gpu = load_study(STUDY).spec.resources.gpu
    assert found == {round(1 / gpu)}, f"a trial asks for {gpu} GPU, the files say {found} share one"
    assert claims("Four trials share a GPU.") == {4} and claims("# two trials\n#  share a GPU") == {2}


def test_the_cluster_readme_names_what_the_files_hold():
    readme = (CLUSTER / "README.md").read_text()
    for path in re.findall(r"\bcluster/[\w./-]+\.(?:yaml|py|txt)\b|\brequirements/[\w.-]+\.txt\b", readme):
        assert (ROOT / path).exists(), f"cluster/README.md names {path}, which does not exist"
    for path in LAUNCHERS:
        assert f"ray up {path.relative_to(ROOT)}" in readme and f"ray down {path.relative_to(ROOT)}" in readme
        config = yaml.safe_load(path.read_text())
        for node in config["available_node_types"].values():
            kind = node["node_config"].get("InstanceType") or node["node_config"].get("machineType")
            assert kind in readme, f"cluster/README.md does not name {kind} of {path.name}"
    for path in MANIFESTS:
        assert f"kubectl apply -f {path.relative_to(ROOT)}" in readme and f"kubectl delete -f {path.relative_to(ROOT)}" in readme
    assert f"ray[default,tune]=={pinned('ray')}" in readme and f"torch {pinned('torch')}" in readme
    assert "gpu_check.py" in readme


# ----- the GPU check a person runs before a long study, on a local Ray that declares one GPU

def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", CLUSTER / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.ray
def test_the_gpu_check_puts_one_gpus_worth_of_trials_on_one_node():
    import ray
    import torch

    check = _gpu_check()
    shape = check.trial_shape(STUDY)
    ray.init(num_cpus=16, num_gpus=1, include_dashboard=False, log_to_driver=False)  # one node as the files size it
    try:
        reports, problems = check.check(shape, timeout_s=60, require_cuda=torch.cuda.is_available())
        assert not problems, problems
        assert len(reports) == claimed_trials_per_gpu() and len({r["node"] for r in reports}) == 1
        assert {tuple(r["gpu_ids"]) for r in reports} == {("0",)}
        if not torch.cuda.is_available():  # this machine's torch has no CUDA: the check says so
            assert "sees no GPU" in " ".join(check.check(shape, timeout_s=60)[1])
        _, problems = check.check({**shape, "CPU": 2 * shape["CPU"]}, timeout_s=3, require_cuda=False)
        assert problems and "found no node to hold them all" in problems[0]  # a node too small for the claim
    finally:
        ray.shutdown()
