"""Memory a model will need, computed from its config alone, and a check against the device.

Nothing here allocates a tensor: `estimate()` counts the parameters layer by layer the same way
`models.Autoencoder` builds them (a test compares the two), and adds the activations of one
batch and the data set held on the device. `check_fits()` refuses what the device cannot hold,
naming both numbers:

    the model needs about 5.6 GB for training (parameters and optimizer state 4.1 GB, ...) but
    this machine has 3.1 GB free

Free memory is MemAvailable from /proc/meminfo (or sysconf) for the CPU and
`torch.cuda.mem_get_info` for a GPU; where neither can be read, nothing is refused.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .config import ConfigError, ModelConfig

FLOAT_BYTES = 4
#: Bytes per parameter while training: the weight, its gradient and Adam's two moments.
TRAIN_BYTES_PER_PARAM = 4 * FLOAT_BYTES
#: Activations kept for the backward pass, plus their gradients and temporaries, per value.
ACTIVATION_FACTOR = 3
#: Images evaluated at once by the evaluation code (see evaluation.py / main_window snapshots).
EVAL_BATCH = 1024


class ResourceError(ConfigError):
    """A model or data set too large for the machine. The message is meant for users."""


@dataclass
class Estimate:
    params: int  # trainable parameters (plus buffers)
    param_bytes: int  # float32 weights
    train_state_bytes: int  # weights + gradients + optimizer moments
    activation_bytes: int  # one batch, forward and backward
    data_bytes: int  # the data set as floats on the device
    batch_size: int

    @property
    def train_bytes(self) -> int:
        return self.train_state_bytes + self.activation_bytes + self.data_bytes

    @property
    def inference_bytes(self) -> int:
        return self.param_bytes + self.activation_bytes // ACTIVATION_FACTOR

    def text(self) -> str:
        """A short line for the builder: '≈ 12 MB to train (batch 128)'."""
        return f"about {fmt_bytes(self.train_bytes)} to train (batch {self.batch_size:,})"


def fmt_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _gates(cell: str) -> int:
    return 4 if cell == "lstm" else 3


def count_params(cfg: ModelConfig) -> tuple[int, int]:
    """(parameters and buffers, activation values per image) of the model `cfg` describes."""
    c, h, w = (int(v) for v in cfg.input_shape)
    d = c * h * w
    hidden = [int(x) for x in cfg.hidden_sizes]
    latent = int(cfg.latent)
    code_out = 2 * latent if cfg.kind == "vae" else latent
    bn = 2 if cfg.batch_norm else 0  # weight and bias (running stats are buffers, counted below)
    bn_buf = 2 if cfg.batch_norm else 0
    params = 0
    acts = d  # the input
    if cfg.arch == "dense":
        sizes = [d, *hidden]
        for a, b in zip(sizes[:-1], sizes[1:]):
            params += a * b + b + (bn + bn_buf) * b  # encoder
            params += (a if cfg.tied else a * b + a)  # decoder (tied: bias only)
            acts += 2 * (a + b)
        for a in sizes[1:-1]:
            params += (bn + bn_buf) * a  # decoder blocks other than the outermost have batch norm
        feat = sizes[-1]
    elif cfg.arch == "conv":
        chans = [c, *hidden]
        side_h, side_w = h, w
        for a, b in zip(chans[:-1], chans[1:]):
            params += a * b * 16 + b + (bn + bn_buf) * b  # Conv2d(a, b, 4)
            params += b * a * 16 + a  # ConvTranspose2d(b, a, 4)
            acts += 2 * (a * side_h * side_w)
            side_h, side_w = side_h // 2, side_w // 2
            acts += 2 * (b * side_h * side_w)
        for a in chans[1:-1]:
            params += (bn + bn_buf) * a
        feat = chans[-1] * side_h * side_w
        for a, b in zip([feat, *cfg.dense_sizes], cfg.dense_sizes):  # dense layers, each way
            params += 2 * (a * b) + b + a + (bn + bn_buf) * (a + b)
            acts += 2 * (a + b)
            feat = b
    else:  # recurrent
        u = hidden[0]
        g = _gates(cfg.rnn_cell)
        params += g * (u * c * w + u * u + 2 * u)  # encoder rnn
        params += g * (u * u + u * u + 2 * u)  # decoder rnn
        params += u * c * w + c * w  # row projection
        acts += 2 * h * g * u + h * (u + c * w)
        feat = u
    params += feat * code_out + code_out  # to_code
    params += latent * feat + feat  # from_code
    params += d + d + 1  # output_bias, and the input_mean / input_scale buffers
    if cfg.kind == "aae":  # the discriminator of codes (models.make_discriminator)
        from .models import DISCRIMINATOR_WIDTH as dw

        params += latent * dw + dw + dw * dw + dw + dw + 1
        acts += 4 * dw
    acts += 2 * (code_out + feat + d)
    return params, acts


def estimate(cfg: ModelConfig, batch_size: int = 128, n_images: int = 0) -> Estimate:
    """Memory for training `cfg` on `n_images` images in batches of `batch_size` (nothing allocated)."""
    params, acts = count_params(cfg)
    c, h, w = (int(v) for v in cfg.input_shape)
    return Estimate(
        params=params,
        param_bytes=params * FLOAT_BYTES,
        train_state_bytes=params * TRAIN_BYTES_PER_PARAM,
        activation_bytes=acts * FLOAT_BYTES * ACTIVATION_FACTOR * max(1, int(batch_size)),
        data_bytes=int(n_images) * c * h * w * FLOAT_BYTES,
        batch_size=int(batch_size),
    )


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def available_bytes(device=None) -> int | None:
    """Free memory on `device` (a torch.device or name); None when it cannot be told."""
    kind = str(getattr(device, "type", device) or "cpu").split(":")[0]
    if kind == "cuda":
        try:
            import torch

            index = getattr(device, "index", None)
            free, _total = torch.cuda.mem_get_info(index if index is not None else torch.cuda.current_device())
            return int(free)
        except Exception:  # noqa: BLE001 - no CUDA, no answer
            return None
    if kind == "mps":
        return None
    return _meminfo_available()


def _where(device) -> str:
    kind = str(getattr(device, "type", device) or "cpu").split(":")[0]
    return "this machine" if kind == "cpu" else f"the {kind} device"


def check_fits(needed: int, what: str, device=None, detail: str = "") -> None:
    """Raise ResourceError when `needed` bytes do not fit the free memory of `device`."""
    free = available_bytes(device)
    if free is None or needed <= free:
        return
    extra = f" ({detail})" if detail else ""
    raise ResourceError(f"{what} needs about {fmt_bytes(needed)}{extra} but {_where(device)} has "
                        f"{fmt_bytes(free)} free; use a smaller model, image size, batch size or data set")


def check_training_fits(cfg: ModelConfig, batch_size: int, n_images: int, device=None) -> Estimate:
    """Refuse to train `cfg` when the estimate does not fit (call before building the model)."""
    est = estimate(cfg, batch_size, n_images)
    if est.param_bytes > 2**40:
        raise ResourceError(f"the model has about {est.params:,} parameters, far beyond any machine")
    detail = (f"parameters and optimizer state {fmt_bytes(est.train_state_bytes)}, activations for a batch of "
              f"{batch_size:,} {fmt_bytes(est.activation_bytes)}, data {fmt_bytes(est.data_bytes)}")
    check_fits(est.train_bytes, "training this model", device, detail)
    return est


def check_model_fits(cfg: ModelConfig, device=None) -> Estimate:
    """Refuse to build `cfg` for inference when its weights cannot fit (call before building it)."""
    est = estimate(cfg, batch_size=1)
    if est.param_bytes > 2**40:
        raise ResourceError(f"the model has about {est.params:,} parameters, far beyond any machine")
    check_fits(2 * est.param_bytes, "the model", device, "its parameters, loaded and built")
    return est


__all__ = ["Estimate", "ResourceError", "available_bytes", "check_fits", "check_model_fits",
           "check_training_fits", "count_params", "estimate", "fmt_bytes"]
