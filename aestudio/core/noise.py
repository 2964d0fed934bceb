"""Input corruption for denoising autoencoders: `gaussian:SIGMA`, `saltpepper:P`, `mask:P`.

A denoising autoencoder sees the corrupted image and is trained to output the clean one, so it
must learn the structure of the data rather than copy pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

NOISE_KINDS = ("none", "gaussian", "saltpepper", "mask")


class NoiseError(ValueError):
    """A noise spec that cannot be parsed. The message is meant for users."""


@dataclass(frozen=True)
class Noise:
    kind: str = "none"
    level: float = 0.0

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.level > 0

    def spec(self) -> str:
        return "none" if not self.active else f"{self.kind}:{self.level:g}"

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Corrupt a batch of images in [0, 1]; returns a new tensor, clipped to [0, 1]."""
        if not self.active:
            return x
        if self.kind == "gaussian":
            n = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return (x + self.level * n).clamp_(0.0, 1.0)
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if self.kind == "mask":
            return x * (u >= self.level)
        # salt and pepper: a fraction `level` of pixels set to 0 or 1 with equal chance
        out = x.clone()
        out[u < self.level / 2] = 0.0
        out[(u >= self.level / 2) & (u < self.level)] = 1.0
        return out


def parse_noise(spec: str | None) -> Noise:
    """Parse `none`, `gaussian:0.5`, `saltpepper:0.1` or `mask:0.3`."""
    if spec is None or str(spec).strip().lower() in ("", "none", "off"):
        return Noise()
    text = str(spec).strip().lower()
    kind, sep, value = text.partition(":")
    kind = {"salt-and-pepper": "saltpepper", "sp": "saltpepper", "gauss": "gaussian", "masking": "mask"}.get(kind, kind)
    if kind not in NOISE_KINDS or not sep:
        raise NoiseError(f"noise must be none, gaussian:SIGMA, saltpepper:P or mask:P, got {spec!r}")
    try:
        level = float(value)
    except ValueError:
        raise NoiseError(f"noise level must be a number, got {value!r} in {spec!r}") from None
    if not level >= 0:
        raise NoiseError(f"noise level must be >= 0, got {level:g}")
    if kind in ("saltpepper", "mask") and level > 1:
        raise NoiseError(f"{kind} noise is a fraction of pixels, so it must be in [0, 1], got {level:g}")
    return Noise(kind, level)
