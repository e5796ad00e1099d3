"""AAVAE's ResNet encoders and inverted-ResNet decoders (AAVAE code: src/models/*.py).

Encoder (:class:`ResNetEncoder`): a CIFAR-style ResNet backbone (SwAV-style torchvision clone):
conv1 3x3 s1 p1 without bias -> BN -> ReLU, no max-pool, then four layers of BasicBlocks
(resnet18: [2, 2, 2, 2], h = 512) or Bottleneck v1.5 blocks (stride on the 3x3 conv; resnet50:
[3, 4, 6, 3], h = 2048), AdaptiveAvgPool -> ``h``. Kaiming-normal (fan_out) conv init, BN weight 1,
bias 0, no zero-init of residual BNs. Then AAVAE's ``ProjectionHeadVAE``: Linear(h -> h, bias) ->
BatchNorm1d -> ReLU and two Linear(h -> d, bias=False) heads for mu and logvar (no activation).
``features(x)`` returns the pre-projection representation ``h`` that AAVAE evaluates.

Decoder (:class:`ResNetDecoder`, ``decoder50`` / ``decoder18``): no BatchNorm, all convs biased.
Linear(d -> h)-ReLU -> Linear(h -> h)-ReLU -> view(h/16, 4, 4) -> Conv1x1(h/16 -> h)-ReLU -> four
layers of inverted blocks ([3, 6, 4, 3] bottlenecks or [2, 2, 2, 2] basic blocks; planes 256, 128,
64, 32). The first block of each layer upsamples inside the block (bottleneck: after its first 1x1
conv; basic block: before its first conv) and on the skip path (upsample + 1x1 conv). Layer1 resizes
(nearest) to size/8, layers 2-4 upsample x2 (nearest) -> Conv3x3(32*expansion -> 64)-ReLU ->
Conv3x3(64 -> C). No output activation (AAVAE predicts normalised pixels).

Sizes: the encoder accepts any image size (global average pooling); the decoder produces any
square size divisible by 8 (32 and 64 tested; at 32 px layer1's resize is a no-op, exactly the
reference CIFAR geometry). Any channel count works on both sides (the reference is RGB only).

Parameter counts on CIFAR (3x32x32, d = 128): resnet50 backbone 23,500,352 (23.50M), projection with
heads 4,724,736 (4.72M), decoder50 13,291,203 (13.29M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvae.errors import ConfigError

# ----------------------------------------------------------------------------------- encoder


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=bias)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=bias)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; stride on the first; projection shortcut when the shape changes."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        y: torch.Tensor = self.relu(out + identity)
        return y


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 -> 3x3 (stride) -> 1x1 (x4), BN after each."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        y: torch.Tensor = self.relu(out + identity)
        return y


def _shortcut(inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(_conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))


class ResNetBackbone(nn.Module):
    """CIFAR-style ResNet trunk: ``x [B, C, H, W] -> h [B, out_dim]`` (after global avg pool)."""

    def __init__(
        self, block: type[BasicBlock | Bottleneck], layers: list[int], in_channels: int = 3
    ) -> None:
        super().__init__()
        width = 64
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = width
        stages = []
        for i, n in enumerate(layers):
            stages.append(self._make_layer(block, width * 2**i, n, stride=1 if i == 0 else 2))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_dim = self.inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        layers: list[nn.Module] = [block(self.inplanes, planes, stride)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


#: depth -> (block, blocks per layer); h = 512 for BasicBlock nets, 2048 for Bottleneck nets.
RESNETS: dict[str, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}


class ResNetEncoder(nn.Module):
    """``x -> (mu [B, d], logvar [B, d])`` through backbone, projection and bias-free heads.

    ``features(x)`` is the backbone output ``h [B, feature_dim]`` (the representation AAVAE
    evaluates). The projection's BatchNorm1d needs batches of at least 2 in training mode.
    """

    def __init__(self, in_channels: int, latent_dim: int, arch: str = "resnet50") -> None:
        super().__init__()
        if arch not in RESNETS:
            raise ConfigError(f"unknown resnet {arch!r}; valid: {', '.join(RESNETS)}")
        block, layers = RESNETS[arch]
        self.backbone = ResNetBackbone(block, layers, in_channels)
        h = self.feature_dim = self.backbone.out_dim
        self.projection = nn.Sequential(nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU())
        self.mu = nn.Linear(h, latent_dim, bias=False)
        self.logvar = nn.Linear(h, latent_dim, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, C, H, W] -> h [B, feature_dim]`` (pre-projection representation)."""
        out: torch.Tensor = self.backbone(x)
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.projection(self.backbone(x))
        return self.mu(p), self.logvar(p)


# ----------------------------------------------------------------------------------- decoder


class Interpolate(nn.Module):
    """Nearest-neighbour resize: to ``size`` x ``size`` if given, otherwise x2."""

    def __init__(self, size: int | None = None) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is None:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.interpolate(x, size=(self.size, self.size), mode="nearest")

    def extra_repr(self) -> str:
        return f"size={self.size}" if self.size is not None else "scale_factor=2"


class _UpBlock(nn.Module):
    """Shared plumbing of the inverted blocks: optional in-block ``upscale`` and skip-path
    ``upsample``; ``forward`` = ReLU(residual(x) + skip(x))."""

    expansion = 1

    def __init__(self, upsample: nn.Module | None, upscale: nn.Module | None) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.upsample, self.upscale = upsample, upscale

    def residual(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.upsample is None else self.upsample(x)
        out: torch.Tensor = self.relu(self.residual(x) + identity)
        return out


class UpBasicBlock(_UpBlock):
    """Inverted basic block without BN: [upscale] -> conv3x3-ReLU -> conv3x3, + skip, ReLU."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        upsample: nn.Module | None = None,
        upscale: nn.Module | None = None,
    ) -> None:
        super().__init__(upsample, upscale)
        self.conv1 = _conv3x3(inplanes, planes, bias=True)
        self.conv2 = _conv3x3(planes, planes, bias=True)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.upscale is None else self.upscale(x)
        y: torch.Tensor = self.conv2(self.relu(self.conv1(out)))
        return y


class UpBottleneck(_UpBlock):
    """Inverted bottleneck without BN: 1x1-ReLU -> [upscale] -> 3x3-ReLU -> 1x1 (x4), + skip."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        upsample: nn.Module | None = None,
        upscale: nn.Module | None = None,
    ) -> None:
        super().__init__(upsample, upscale)
        self.conv1 = _conv1x1(inplanes, planes, bias=True)
        self.conv2 = _conv3x3(planes, planes, bias=True)
        self.conv3 = _conv1x1(planes, planes * self.expansion, bias=True)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv1(x))
        if self.upscale is not None:
            out = self.upscale(out)
        y: torch.Tensor = self.conv3(self.relu(self.conv2(out)))
        return y


#: decoder name -> (block, blocks per layer, h_dim) mirroring the matching encoder.
DECODERS: dict[str, tuple[type[UpBasicBlock | UpBottleneck], list[int], int]] = {
    "resnet18": (UpBasicBlock, [2, 2, 2, 2], 512),
    "resnet34": (UpBasicBlock, [3, 6, 4, 3], 512),
    "resnet50": (UpBottleneck, [3, 6, 4, 3], 2048),
}


class ResNetDecoder(nn.Module):
    """``z [B, d] -> logits [B, C, size, size]``: AAVAE's ``decoder50``/``decoder18`` (CIFAR stem).

    ``size`` must be a multiple of 8 (layer1 starts at size/8; three x2 upsamplings follow).
    """

    def __init__(
        self, out_channels: int, size: int, latent_dim: int, arch: str = "resnet50"
    ) -> None:
        super().__init__()
        if arch not in DECODERS:
            raise ConfigError(f"unknown resnet decoder {arch!r}; valid: {', '.join(DECODERS)}")
        if size < 8 or size % 8 != 0:
            raise ConfigError(f"the {arch} decoder needs a size divisible by 8, got {size}x{size}")
        block, layers, h_dim = DECODERS[arch]
        self.h_dim = h_dim
        self.linear_projection1 = nn.Linear(latent_dim, h_dim)
        self.linear_projection2 = nn.Linear(h_dim, h_dim)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = _conv1x1(h_dim // 16, h_dim, bias=True)
        self.inplanes = h_dim
        upscales = [Interpolate(size // 8), Interpolate(), Interpolate(), Interpolate()]
        stages = [
            self._make_layer(block, 256 // 2**i, n, up)
            for i, (n, up) in enumerate(zip(layers, upscales, strict=True))
        ]
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.conv2 = _conv3x3(32 * block.expansion, 64, bias=True)
        self.final_conv = _conv3x3(64, out_channels, bias=True)

    def _make_layer(
        self,
        block: type[UpBasicBlock | UpBottleneck],
        planes: int,
        blocks: int,
        upscale: nn.Module,
    ) -> nn.Sequential:
        out = planes * block.expansion
        upsample = nn.Sequential(upscale, _conv1x1(self.inplanes, out, bias=True))
        layers: list[nn.Module] = [block(self.inplanes, planes, upsample, upscale)]
        self.inplanes = out
        layers += [block(out, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.linear_projection1(z))
        x = self.relu(self.linear_projection2(x))
        x = self.relu(self.conv1(x.view(x.size(0), self.h_dim // 16, 4, 4)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        out: torch.Tensor = self.final_conv(self.relu(self.conv2(x)))
        return out
