"""K networks of one architecture, one per seed, run as one network.

`pack([net_0, ..., net_K-1])` turns K ordinary modules (built by `architectures`, each with
its own seeded initialisation) into one module whose parameters and buffers are the members'
stacked on a leading dimension K. Member k of the packed module computes exactly what net_k
computes; members never mix: linear layers are batched matrix products, convolutions are
grouped convolutions with one group per member, BatchNorm keeps batch and running statistics
per member. A loss summed over members gives each member its own gradient, and Adam, being
elementwise, then updates each member as if it were alone.

Tensors cross a packed module's boundary member-major: (K, B, *shape). Inside, vectors are
feature-major (K, F, B), so BatchNorm reduces over contiguous memory and a linear layer is
one `baddbmm`; images are channel-packed (B, K*C, H, W), the layout of grouped convolution
and of a BatchNorm2d over K*C channels. Adding a layer type is one class with `from_members`
and one entry in PACK_RULES.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vi_sweeps.gan.architectures import DataParameter, JointCritic, Maxout, Reshape, SpectralNorm

VEC, IMG = "vec", "img"  # the two inner layouts; None: a layer that works in either


class PackedLinear(nn.Module):
    layout_in = layout_out = VEC

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight)  # (K, out, in), nn.Linear's own orientation
        self.bias = nn.Parameter(bias) if bias is not None else None  # (K, out, 1)

    @classmethod
    def from_members(cls, mods: list[nn.Linear]) -> PackedLinear:
        bias = torch.stack([m.bias.detach() for m in mods]).unsqueeze(-1) if mods[0].bias is not None else None
        return cls(torch.stack([m.weight.detach() for m in mods]), bias)

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:  # (K, in, B) -> (K, out, B)
        weight = self.weight if weight is None else weight
        if self.bias is None:
            return torch.bmm(weight, x)
        return torch.baddbmm(self.bias, weight, x)


class PackedBatchNorm(nn.Module):
    """BatchNorm1d (on (K, C, B)) or BatchNorm2d (on (B, K*C, H, W)): statistics per member
    and channel, with nn.BatchNorm's running-statistics update (unbiased running variance)."""

    def __init__(self, mods: list[nn.modules.batchnorm._BatchNorm], layout: str):
        super().__init__()
        first = mods[0]
        self.layout_in = self.layout_out = layout
        self.momentum, self.eps = first.momentum, first.eps
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in mods]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in mods]))
        self.register_buffer("running_mean", torch.stack([m.running_mean for m in mods]))
        self.register_buffer("running_var", torch.stack([m.running_var for m in mods]))
        self.register_buffer("num_batches_tracked", torch.stack([m.num_batches_tracked for m in mods]))

    @classmethod
    def from_members(cls, mods) -> PackedBatchNorm:
        return cls(mods, VEC if isinstance(mods[0], nn.BatchNorm1d) else IMG)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        flat = x.reshape(1, -1, x.shape[-1]) if self.layout_in == VEC else x
        out = F.batch_norm(flat, self.running_mean.view(-1), self.running_var.view(-1), self.weight.view(-1),
                           self.bias.view(-1), self.training, self.momentum, self.eps)
        return out.view(x.shape)


class PackedConv2d(nn.Module):
    layout_in = layout_out = IMG

    def __init__(self, mods: list[nn.Conv2d]):
        super().__init__()
        m = mods[0]
        self.k, self.stride, self.padding, self.dilation = len(mods), m.stride, m.padding, m.dilation
        self.weight = nn.Parameter(torch.stack([c.weight.detach() for c in mods]))  # (K, out, in, kh, kw)
        self.bias = nn.Parameter(torch.stack([c.bias.detach() for c in mods])) if m.bias is not None else None

    from_members = classmethod(lambda cls, mods: cls(mods))

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        w = (self.weight if weight is None else weight).flatten(0, 1)
        b = self.bias.flatten() if self.bias is not None else None
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, groups=self.k)


class PackedSpectralNorm(nn.Module):
    """SpectralNorm over a packed Linear or Conv2d: u and v per member, (K, rows) and (K, cols),
    one batched power iteration per forward in training mode; sigma per member."""

    def __init__(self, mods: list[SpectralNorm]):
        super().__init__()
        refuse_hooks([m.layer for m in mods])
        self.inner = PACK_RULES[type(mods[0].layer)]([m.layer for m in mods])
        self.layout_in = self.layout_out = self.inner.layout_in
        self.eps = mods[0].eps
        self.register_buffer("u", torch.stack([m.u for m in mods]))
        self.register_buffer("v", torch.stack([m.v for m in mods]))

    from_members = classmethod(lambda cls, mods: cls(mods))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.inner.weight
        mat = w.flatten(2)  # (K, rows, cols)
        if self.training:
            with torch.no_grad():
                self.v.copy_(F.normalize(torch.bmm(mat.transpose(1, 2), self.u.unsqueeze(2)).squeeze(2), dim=1, eps=self.eps))
                self.u.copy_(F.normalize(torch.bmm(mat, self.v.unsqueeze(2)).squeeze(2), dim=1, eps=self.eps))
        sigma = (self.u.clone() * torch.bmm(mat, self.v.clone().unsqueeze(2)).squeeze(2)).sum(1)  # copies, as SpectralNorm
        return self.inner(x, w / sigma.clamp_min(self.eps).view(-1, *[1] * (w.dim() - 1)))


class PackedConvTranspose2d(nn.Module):
    layout_in = layout_out = IMG

    def __init__(self, mods: list[nn.ConvTranspose2d]):
        super().__init__()
        m = mods[0]
        self.k, self.stride, self.padding = len(mods), m.stride, m.padding
        self.output_padding, self.dilation = m.output_padding, m.dilation
        self.weight = nn.Parameter(torch.stack([c.weight.detach() for c in mods]))  # (K, in, out, kh, kw)
        self.bias = nn.Parameter(torch.stack([c.bias.detach() for c in mods])) if m.bias is not None else None

    from_members = classmethod(lambda cls, mods: cls(mods))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.flatten(0, 1)
        b = self.bias.flatten() if self.bias is not None else None
        return F.conv_transpose2d(x, w, b, self.stride, self.padding, self.output_padding, self.k, self.dilation)


class PackedMaxout(nn.Module):
    layout_in = layout_out = VEC

    def __init__(self, mods: list[Maxout]):
        super().__init__()
        self.pieces = mods[0].pieces

    from_members = classmethod(lambda cls, mods: cls(mods))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (K, F * pieces, B) -> (K, F, B)
        return x.view(x.shape[0], -1, self.pieces, x.shape[-1]).amax(2)


class PackedReshape(nn.Module):
    """Vector features (K, C*H*W, B) to images (B, K*C, H, W), as Reshape(C, H, W) per member."""

    layout_in, layout_out = VEC, IMG

    def __init__(self, mods: list[Reshape]):
        super().__init__()
        self.shape = mods[0].shape

    from_members = classmethod(lambda cls, mods: cls(mods))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        return x.permute(2, 0, 1).reshape(x.shape[2], -1, h, w)


class PackedFlatten(nn.Module):
    """Images (B, K*C, H, W) to vector features (K, C*H*W, B), as nn.Flatten per member."""

    layout_in, layout_out = IMG, VEC

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    from_members = classmethod(lambda cls, mods: cls(len(mods)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.k, -1).permute(1, 2, 0)


def to_inner(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Member-major (K, B, *shape) to an inner layout."""
    if layout == VEC:
        return x.transpose(1, 2)
    k, b = x.shape[:2]
    return x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])


def to_members(x: torch.Tensor, layout: str, k: int) -> torch.Tensor:
    """An inner layout back to member-major (K, B, *shape)."""
    if layout == VEC:
        return x.transpose(1, 2)
    return x.view(x.shape[0], k, -1, *x.shape[2:]).transpose(0, 1)


class PackedSequential(nn.Module):
    """A packed nn.Sequential: member-major in and out, inner layouts between its layers."""

    def __init__(self, layers: list[nn.Module], k: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.k = k
        inner = [m for m in layers if getattr(m, "layout_in", None)]
        self.entry = inner[0].layout_in if inner else VEC
        self.exit = inner[-1].layout_out if inner else VEC

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = to_inner(x, self.entry)
        for layer in self.layers:
            x = layer(x)
        return to_members(x, self.exit, self.k)


class PackedJointCritic(nn.Module):
    def __init__(self, mods: list[JointCritic]):
        super().__init__()
        self.x_body = pack([m.x_body for m in mods])
        self.z_body = pack([m.z_body for m in mods])
        self.head = pack([m.head for m in mods])

    from_members = classmethod(lambda cls, mods: cls(mods))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.x_body(x), self.z_body(z)], -1))


class PackedDataParameter(nn.Module):
    def __init__(self, mods: list[DataParameter]):
        super().__init__()
        self.value = nn.Parameter(torch.stack([m.value.detach() for m in mods]))

    from_members = classmethod(lambda cls, mods: cls(mods))

    def forward(self) -> torch.Tensor:
        return self.value


def _sequential(mods: list[nn.Sequential]) -> PackedSequential:
    layers = []
    for parts in zip(*mods, strict=True):
        packed = pack(list(parts))
        layers += list(packed.layers) if isinstance(packed, PackedSequential) else [packed]
    return PackedSequential(layers, len(mods))


def _stateless(mods: list[nn.Module]) -> nn.Module:
    if any(True for _ in mods[0].parameters()) or any(True for _ in mods[0].buffers()):
        raise TypeError(f"{type(mods[0]).__name__} has state but no packing rule")
    return mods[0]


class PackRules(dict):
    """Module type -> its packing rule, each type once: a plugin adds rules for its own layers
    (`PACK_RULES[MyLayer] = rule`) and cannot replace one (a built-in's, or another plugin's)."""

    def __setitem__(self, kind: type, rule: Callable[[list], nn.Module]) -> None:
        if kind in self:
            raise ValueError(f"packing rule for {kind.__name__} is registered twice (a built-in or another plugin "
                             "has it)")
        super().__setitem__(kind, rule)

    def update(self, *args, **kwargs) -> None:
        for kind, rule in dict(*args, **kwargs).items():
            self[kind] = rule


PACK_RULES = PackRules()
PACK_RULES.update({
    nn.Sequential: _sequential,
    nn.Linear: PackedLinear.from_members,
    nn.BatchNorm1d: PackedBatchNorm.from_members,
    nn.BatchNorm2d: PackedBatchNorm.from_members,
    nn.Conv2d: PackedConv2d.from_members,
    nn.ConvTranspose2d: PackedConvTranspose2d.from_members,
    Maxout: PackedMaxout.from_members,
    Reshape: PackedReshape.from_members,
    nn.Flatten: PackedFlatten.from_members,
    JointCritic: PackedJointCritic.from_members,
    SpectralNorm: PackedSpectralNorm.from_members,
    DataParameter: PackedDataParameter.from_members,
    **{t: _stateless for t in (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Identity, nn.Sigmoid)},
})


def refuse_hooks(mods: list[nn.Module]) -> None:
    """What pack() cannot carry would be dropped silently: hooks and parametrizations are refused."""
    for m in mods:
        hooked = [n for n in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
                  if getattr(m, n, None)]
        if hooked or torch.nn.utils.parametrize.is_parametrized(m):
            raise TypeError(f"cannot pack {type(m).__name__}: it has {', '.join(hooked) or 'parametrizations'} "
                            "(e.g. torch.nn.utils.spectral_norm); use vi_sweeps.gan.architectures.SpectralNorm, a module "
                            "packing stacks per member")


def pack(mods: list[nn.Module]) -> nn.Module:
    """One module computing what each of `mods` (same architecture) computes, member-major."""
    refuse_hooks(mods)
    kinds = {type(m) for m in mods}
    if len(kinds) != 1:
        raise TypeError(f"cannot pack different module types together: {sorted(k.__name__ for k in kinds)}")
    kind = kinds.pop()
    if kind not in PACK_RULES:
        raise TypeError(f"no packing rule for {kind.__name__}; add one to vi_sweeps.gan.packing.PACK_RULES")
    packed = PACK_RULES[kind](mods)
    if kind is not nn.Sequential and getattr(packed, "layout_in", None):
        return PackedSequential([packed], len(mods))
    return packed


def member_state(module: nn.Module, k: int) -> dict[str, torch.Tensor]:
    """Member k's slice of every parameter and buffer of a packed module."""
    return {name: t[k].detach().clone() for name, t in module.state_dict().items()}


def load_members(module: nn.Module, states: list[dict[str, torch.Tensor]]) -> None:
    """The inverse of member_state over all members, in order."""
    module.load_state_dict({name: torch.stack([s[name] for s in states]) for name in states[0]})
