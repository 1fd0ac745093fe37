"""What the GAN zoo declares, without torch: its registries (model families, architectures,
GAN and ALI losses, stabilisers), the specs of their built-in names, each builder a
"module:attribute" reference imported at its first use (vi_sweeps.core.registry.Lazy), and the
config keys they read (vi_sweeps.core.settings). Checking a study reads this module only; the
modules that train (families, architectures, losses, stabilisers) hold the builders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from vi_sweeps.core.keys import Key
from vi_sweeps.core.registry import Lazy, Registry
from vi_sweeps.core.settings import Setting, declare

if TYPE_CHECKING:
    import torch


@runtime_checkable
class ModelFamily(Protocol):
    """What the trial loop (vi_sweeps.engine.trial) asks of a model family, the one contract of
    every family: built as `Builder(cfgs, data, device, gens)` from the pack's K configs (they
    differ in seed only), its data source (vi_sweeps.data.declared.DataSource), the device and
    one torch.Generator per member. The networks' families share `gan.families.Family`; EM, a
    Gaussian mixture fitted by EM, implements the same contract without networks."""

    iteration: int  # iterations done before the one train_iteration runs (set by the trial loop)

    def train_iteration(self) -> dict[Key, torch.Tensor]:
        """One iteration of every live member: each declared loss key -> (K,) values."""
        ...

    def sample(self, n: int, gens: list[torch.Generator]) -> torch.Tensor:
        """(K, n, *shape) samples for evaluation, member k drawing from gens[k]."""
        ...

    def freeze(self, k: int) -> None:
        """Member k diverged or finished: it stops changing, and cannot disturb the others."""
        ...

    def member_state(self, k: int) -> dict[str, Any]:
        """Member k's checkpoint: tensors and plain containers only."""
        ...

    def load_member_states(self, states: list[dict[str, Any]]) -> None:
        """Every member's checkpoint, in pack order (member_state's)."""
        ...


@dataclass(frozen=True)
class ObjectiveSpec:
    """What a model family declares: the loss keys it reports (a row may carry no other),
    whether it runs on the 2-D mixtures only, whether its members train vectorised (else
    one after another inside a pack), and whether the GAN loss and the stabilisers' keys apply
    to it (`gan_keys`; a plugin's subclass of the GAN family inherits it from the class)."""

    losses: tuple[Key, ...]
    vector_only: bool = False
    vectorised: bool = True
    gan_keys: bool = False
    compiles: bool = False  # has a compiled step (`compile: true`; vi_sweeps.gan.compiled)

    def __post_init__(self):
        if not all(isinstance(k, Key) and k.startswith("loss/") for k in self.losses):
            raise TypeError("losses: a tuple of vi_sweeps.core.keys.Key named loss/...")

    def problems(self, cfg, data_kind: str) -> list[str]:
        if self.vector_only and data_kind != "vector":
            return [f"model: {cfg.model} runs on the 2-D mixtures only, not {cfg.dataset}"]
        return []


OBJECTIVES = Registry("model", spec=ObjectiveSpec)

LOSS_D = Key("loss/d", "discriminator loss")
LOSS_G = Key("loss/g", "generator loss (adversarial part)")
LOSS_REG = Key("loss/reg", "regulariser ||G(z) - anchor||^2")
LOSS_REC = Key("loss/rec", "reconstruction loss")
LOSS_KL = Key("loss/kl", "KL(p(z|x) || q(z))")
LOSS_NLL = Key("loss/nll", "negative log-likelihood")

FAMILIES = "vi_sweeps.gan.families"
FAMILIES_EM = "vi_sweeps.gan.em"
OBJECTIVES.declare("gan", ObjectiveSpec((LOSS_D, LOSS_G, LOSS_REG), gan_keys=True, compiles=True), f"{FAMILIES}:GAN")
OBJECTIVES.declare("vae", ObjectiveSpec((LOSS_REC, LOSS_KL)), f"{FAMILIES}:VAE")
OBJECTIVES.declare("aae", ObjectiveSpec((LOSS_D, LOSS_G, LOSS_REC)), f"{FAMILIES}:AAE")
OBJECTIVES.declare("ali", ObjectiveSpec((LOSS_D, LOSS_G)), f"{FAMILIES}:ALI")
OBJECTIVES.declare("em", ObjectiveSpec((LOSS_NLL,), vector_only=True, vectorised=False), f"{FAMILIES_EM}:EM")


@dataclass(frozen=True)
class ArchSpec:
    """What an architecture declares: the kind of data it takes, and the one image size it is
    built for (None: any of 8/16/32/64)."""

    kind: str
    image_size: int | None = None
    compiles: bool = False  # its packed networks trace into the compiled step (built-ins do)

    def __post_init__(self):
        if self.kind not in ("vector", "image"):
            raise TypeError(f"kind: 'vector' or 'image', not {self.kind!r}")

    def problems(self, cfg, name: str, data_kind: str) -> list[str]:
        if self.kind != data_kind:
            return [f"arch: {name} needs a {self.kind} data set, {cfg.dataset} is {data_kind}"]
        if self.image_size is not None and self.image_size != cfg.image_size:
            return [f"arch: {name} needs image_size {self.image_size}"]
        return []


ARCHITECTURES = Registry("architecture", spec=ArchSpec)
NETS = "vi_sweeps.gan.architectures"
ARCHITECTURES.declare("mlp", ArchSpec("vector", compiles=True), f"{NETS}:MLPNets")
ARCHITECTURES.declare("pacgan", ArchSpec("vector", compiles=True), f"{NETS}:PacGANNets")
ARCHITECTURES.declare("dcgan", ArchSpec("image", compiles=True), f"{NETS}:DCGANNets")
ARCHITECTURES.declare("paper-64", ArchSpec("image", image_size=64, compiles=True), f"{NETS}:Paper64Nets")
DEFAULT_ARCH = {"vector": "mlp", "image": "dcgan"}


@dataclass(frozen=True)
class Adversarial:
    """One adversarial loss: `d(real, fake)` for the discriminator and `g(real, fake)` for the
    generator (and encoder), from D's logits on the two kinds of input, each (K,). GAN losses
    ignore `real` in g (the G step computes no D(x)); ALI's use both (encoder vs generator pairs)."""

    d: Callable
    g: Callable
    doc: str
    compiles: bool = False  # pure tensor code the compiled step traces (built-ins are)


def _loss(name: str) -> Lazy:
    return Lazy(f"vi_sweeps.gan.losses:{name}")


# registries, not dicts: a plugin adds a loss under a new name and cannot replace one (a plugin's
# `hinge` once replaced the built-in at a resume, under the same trial ids)
GAN_LOSSES = Registry("GAN loss", spec=Adversarial)
for _name, _d, _g, _doc in (
        ("nonsaturating", "bce_real_fake", "nonsaturating_g", "D: BCE; G: -log D(G(z)) (Goodfellow et al. 2014, the paper's)"),
        ("minimax", "bce_real_fake", "minimax_g", "D: BCE; G: log(1 - D(G(z))), the saturating original"),
        ("hinge", "hinge_d", "critic_g",
         "D: E relu(1 - D(x)) + E relu(1 + D(G(z))); G: -E D(G(z)) (Lim & Ye 2017; Miyato et al. 2018)"),
        ("wasserstein", "wasserstein_d", "critic_g",
         "D: E D(G(z)) - E D(x); G: -E D(G(z)) (Arjovsky et al. 2017; with gp: Gulrajani et al. 2017)"),
        ("least-squares", "least_squares_d", "least_squares_g",
         "D: (D(x) - 1)^2 / 2 + D(G(z))^2 / 2; G: (D(G(z)) - 1)^2 / 2 (Mao et al. 2017, a=0, b=c=1)")):
    GAN_LOSSES.declare(_name, Adversarial(_loss(_d), _loss(_g), _doc, compiles=True))

# ALI's G and E losses: `real` are D's logits on encoder pairs (x, E(x)), `fake` on (G(z), z)
ALI_LOSSES = Registry("ALI loss", spec=Adversarial)
for _name, _g, _doc in (("minimax", "ali_minimax_g", "E_enc log D + E_gen log(1 - D)"),
                        ("nonsaturating", "ali_nonsaturating_g", "-E_enc log(1 - D) - E_gen log D (the labels swapped)"),
                        ("vi", "ali_vi_g", "-E_enc log D - E_gen log D (the paper's)")):
    ALI_LOSSES.declare(_name, Adversarial(_loss("bce_real_fake"), _loss(_g), _doc, compiles=True))


@dataclass(frozen=True)
class Stabiliser:
    """A stabiliser of GAN training (vi_sweeps.gan.stabilisers): its config keys (it is active
    when one is away from its default), what it does, and its D-side or G-side penalty."""

    keys: tuple[str, ...]
    doc: str
    d_penalty: Callable | None = None  # DStep -> (K,)
    g_penalty: Callable | None = None  # GStep -> (K,)
    grad_of: tuple[str, ...] = field(default=())  # D-step inputs the penalty differentiates D's logits by
    compiles: bool = False  # the compiled step runs it (built-ins: yes; a plugin's says so itself)

    def __post_init__(self):
        if not self.keys or not all(isinstance(k, str) for k in self.keys):
            raise TypeError("a stabiliser names its config keys (keys=('weight',))")
        if not set(self.grad_of) <= {"real", "fake"}:
            raise TypeError(f"grad_of: 'real' and/or 'fake', not {self.grad_of}")

    def active(self, cfg) -> bool:
        return any(not cfg.at_default(k) for k in self.keys)


STABILISERS = Registry("stabiliser", spec=Stabiliser)
_penalty = "vi_sweeps.gan.stabilisers:{}".format
STABILISERS.declare("anchor", Stabiliser(
    ("lam", "penalty"), "the paper's anchor term: lam * ||G(z) - G_old(z)||^2 in G's loss (losses.gan_g_loss)",
    compiles=True))
STABILISERS.declare("r1", Stabiliser(("r1",), "R1: r1/2 * E||grad D(x)||^2 on real data", grad_of=("real",), compiles=True,
                                     d_penalty=Lazy(_penalty("r1"))))
STABILISERS.declare("r2", Stabiliser(("r2",), "R2: r2/2 * E||grad D(G(z))||^2 on generated data", grad_of=("fake",), compiles=True,
                                     d_penalty=Lazy(_penalty("r2"))))
STABILISERS.declare("gp", Stabiliser(("gp",), "WGAN-GP: gp * E(||grad D(x_hat)|| - 1)^2", d_penalty=Lazy(_penalty("gp")),
                                     compiles=True))
STABILISERS.declare("sn", Stabiliser(("sn",), "spectral normalisation of D's layers (architectures.SpectralNorm)", compiles=True))
STABILISERS.declare("ema", Stabiliser(("ema", "ema_start"), "an exponential moving average of G's weights, sampled at "
                                      "evaluation", compiles=True))
STABILISERS.declare("ttur", Stabiliser(("lr_d", "lr_g"), "two time-scale update rule: D's and G's own learning rates", compiles=True))


def active(cfg) -> list[tuple[str, Stabiliser]]:
    """(name, spec) of every stabiliser the trial turns on."""
    return [(name, STABILISERS.meta(name)) for name in STABILISERS.names() if STABILISERS.meta(name).active(cfg)]


def compile_refusals(cfg) -> list[str]:
    """Why `cfg` cannot train compiled (`compile: true`), one line each; empty: it can. What the
    compiled step (vi_sweeps.gan.compiled) does not implement is refused, never run eagerly
    under its name: the families, architectures, losses and stabilisers that declare
    `compiles` (the built-ins but EM, VAE, AAE and ALI; a plugin's part when it says so)."""
    if not cfg.compile:
        return []

    def able(registry) -> str:
        return ", ".join(n for n in registry.names() if registry.meta(n).compiles)

    out = []
    if not OBJECTIVES.meta(cfg.model).compiles:
        out.append(f"compile: model {cfg.model} has no compiled step (compiled: {able(OBJECTIVES)}); set compile: false")
    if not ARCHITECTURES.meta(cfg.resolved_arch).compiles:
        out.append(f"compile: arch {cfg.resolved_arch} is not declared compilable (compiled: {able(ARCHITECTURES)}); "
                   "set compile: false")
    if OBJECTIVES.meta(cfg.model).gan_keys:
        if not GAN_LOSSES.meta(cfg.loss).compiles:
            out.append(f"compile: loss {cfg.loss} is not declared compilable (compiled: {able(GAN_LOSSES)}); "
                       "set compile: false")
        out += [f"compile: stabiliser {name} is not declared compilable (compiled: {able(STABILISERS)}); set compile: false"
                for name, spec in active(cfg) if not spec.compiles]
    if cfg.precision == "bf16":
        out.append("compile: precision bf16 has no compiled step (compiled: fp32, tf32); set compile: false")
    return out


def stabiliser_keys() -> tuple[str, ...]:
    """Every stabiliser's keys but the anchor's (which the AAE family reads too)."""
    return tuple(k for name in STABILISERS.names() if name != "anchor" for k in STABILISERS.meta(name).keys)


# the config keys of the GAN zoo, each with its owner (their order in TrialConfig: vi_sweeps.study.config)
declare("model families",
        Setting("z_dim", int, 16, "latent size (the paper's CelebA runs: 100)", bounds={"gt": 0, "le": 4096}),
        Setting("lr", float, 2e-4, "Adam learning rate of every network", bounds={"gt": 0}),
        Setting("beta1", float, 0.5, "Adam beta1", bounds={"ge": 0, "lt": 1}),
        Setting("beta2", float, 0.999, "Adam beta2", bounds={"ge": 0, "lt": 1}),
        Setting("d_steps", int, 1, "discriminator batches per iteration (paper exp. 2: 5)", bounds={"gt": 0, "le": 1000}),
        Setting("g_steps", int, 1, "generator phases (z chunks) per iteration (exp. 2: 5)", bounds={"gt": 0, "le": 1000}),
        Setting("g_repeats", int, 2, "G updates per chunk on the same z and anchor (author's code: 2)",
                bounds={"gt": 0, "le": 1000}))
declare("architectures",
        Setting("arch", str, "auto", "network family: auto = mlp on vectors, dcgan on images; paper-64 = the paper's "
                "CelebA nets; pacgan = PacGAN's 2-D nets", choices=ARCHITECTURES, extra_choices=("auto",)),
        Setting("bn", bool, True, "BatchNorm in every network; false builds none at all"),
        Setting("hidden", int, 128, "MLP hidden width", bounds={"gt": 0, "le": 65536}),
        Setting("mlp_layers", int, 3, "MLP hidden layers", bounds={"gt": 0, "le": 64}),
        Setting("width", int, 32, "DCGAN base channels (paper-64 uses 64)", bounds={"gt": 0, "le": 4096}))
declare("stabiliser anchor",
        Setting("lam", float, 0.0, "weight of ||G(z) - anchor||^2 (gan) / reconstruction (aae)", bounds={"ge": 0}),
        Setting("penalty", Literal["mean", "sum"], "mean", "mean: per-element mean over the batch tensor (author's code, "
                "lam=5); sum: per-sample squared distance, averaged over the batch"))
declare("GAN losses", Setting("loss", str, "nonsaturating", "GAN loss (the paper's: nonsaturating)", kind="added",
                              choices=GAN_LOSSES))
declare("stabilisers",
        Setting("r1", float, 0.0, "stabiliser: R1 weight gamma, gamma/2 E||grad D(x)||^2 on real data (Mescheder et al. "
                "2018); 0: off", kind="added", bounds={"ge": 0}),
        Setting("r2", float, 0.0, "stabiliser: R2 weight gamma, the same on generated data; 0: off", kind="added",
                bounds={"ge": 0}),
        Setting("gp", float, 0.0, "stabiliser: WGAN-GP weight lambda, lambda E(||grad D(x_hat)|| - 1)^2 on interpolates "
                "(Gulrajani et al. 2017: 10, with loss: wasserstein); 0: off", kind="added", bounds={"ge": 0}),
        Setting("sn", bool, False, "stabiliser: spectral normalisation of every layer of D, one power iteration a "
                "forward (Miyato et al. 2018)", kind="added"),
        Setting("ema", float, 0.0, "stabiliser: G's weights averaged with this decay (e.g. 0.999; Yazici et al. 2019); "
                "evaluation and samples use the average; 0: off", kind="added", bounds={"ge": 0, "lt": 1}),
        Setting("ema_start", int, 0, "stabiliser (ema): the iteration the average starts at; before it the averaged G "
                "is G (StudioGAN's ema_start; 0: from the first update, as Yazici et al.)", kind="added",
                bounds={"ge": 0}),
        Setting("lr_d", float | None, None, "stabiliser (TTUR, Heusel et al. 2017): D's learning rate; default lr",
                kind="added", bounds={"gt": 0}),
        Setting("lr_g", float | None, None, "stabiliser (TTUR): G's learning rate; default lr", kind="added",
                bounds={"gt": 0}))
declare("ALI losses", Setting("ali_loss", str, "nonsaturating", "ALI generator/encoder loss (the paper's: vi, "
                              "-E log D - E log D)", choices=ALI_LOSSES))
