"""U-Net of residual blocks (batch norm, leaky ReLU) for short-axis perfusion segmentation.

Input ``(B, F, H, W)``: F normalised enhancement frames on the 1 mm crop grid; output
``(B, 4, H, W)`` logits for background, LV blood pool, myocardium, RV blood pool.
H and W must be divisible by ``2**depth``. Torch is needed for training only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """conv3x3-BN-LReLU-conv3x3-BN + (1x1 conv-BN) shortcut, then LReLU (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, slope: float = 0.01):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Identity()
            if cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.bn1(self.conv1(x)), self.slope)
        y = self.bn2(self.conv2(y))
        return F.leaky_relu(y + self.skip(x), self.slope)


class ResUNet(nn.Module):
    """U-Net: ``depth`` downsamplings (stride-2 conv), widths base * 2**level (capped),
    nearest upsampling + concatenation + residual block in the decoder, 1x1 output head."""

    def __init__(
        self,
        in_frames: int,
        n_classes: int = 4,
        base: int = 16,
        depth: int = 4,
        max_width: int = 256,
    ):
        super().__init__()
        widths = [min(base * 2**i, max_width) for i in range(depth + 1)]
        self.widths = widths
        self.stem = ResBlock(in_frames, widths[0])
        self.down = nn.ModuleList()
        self.enc = nn.ModuleList()
        for i in range(depth):
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(widths[i + 1]),
                    nn.LeakyReLU(0.01),
                )
            )
            self.enc.append(ResBlock(widths[i + 1], widths[i + 1]))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(
                nn.Sequential(
                    nn.Conv2d(widths[i + 1], widths[i], 1, bias=False),
                    nn.BatchNorm2d(widths[i]),
                    nn.LeakyReLU(0.01),
                )
            )
            self.dec.append(ResBlock(2 * widths[i], widths[i]))
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = self.stem(x)
        for down, enc in zip(self.down, self.enc, strict=True):
            skips.append(h)
            h = enc(down(h))
        for up, dec in zip(self.up, self.dec, strict=True):
            s = skips.pop()
            h = F.interpolate(up(h), scale_factor=2.0, mode="nearest")
            h = dec(torch.cat([h, s], dim=1))
        return self.head(h)
