"""Look inside a model: what its layers learned and how they behave. Every result is numpy.

    first_layer_filters(model)        # (n, C, h, w): what the first layer's units look for in the image
    decoder_output_weights(model)     # (n, C, h, w): what each unit of the last layer paints
    activation_histograms(model, x)   # per layer: histogram and sparsity of hidden-unit activations
    code_statistics(codes)            # per code dimension: mean, std, min, max, fraction active
    grad_norms_per_layer(history)     # per layer: gradient norm at the end of each epoch

Layers are named as the builder's shape table names them: "encoder 1", ..., "code", "decoder in",
"decoder 1", ..., "decoder k" (the outermost, `output_layer_name`, produces the pixels).

Gradient norms are measured by the trainer (`training.Trainer`) once per epoch, on its last
batch, before gradient clipping: `GradNormProbe` computes one norm per layer on the device and the
trainer reads them back with the epoch's other numbers (no extra host sync per batch). They are
stored in history.json as flat keys `grad_norm/<layer>`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .models import Autoencoder, RowDecoder, RowEncoder, TiedLinear

GRAD_PREFIX = "grad_norm/"
#: An activation counts as active when its magnitude is above this.
ACTIVE_THRESHOLD = 0.1
MAX_VALUES = 200_000  # activation values kept per layer for a histogram


# ---- layers ----------------------------------------------------------------------------------------
def layer_modules(model: Autoencoder) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer, from the input to the output."""
    n = len(model.dec_blocks)
    out = [(f"encoder {i + 1}", b) for i, b in enumerate(model.enc_blocks)]
    out += [("code", model.to_code), ("decoder in", model.from_code)]
    out += [(f"decoder {n - i}", model.dec_blocks[i]) for i in reversed(range(n))]
    return out


def output_layer_name(model: Autoencoder) -> str:
    """The name of the decoder layer that produces pixels (the outermost)."""
    return f"decoder {len(model.dec_blocks)}"


def layer_parameters(model: Autoencoder) -> list[tuple[str, list[nn.Parameter]]]:
    """(layer name, its parameters). A shared (tied) weight belongs to the first layer that holds it;
    the per-pixel output offset belongs to the outermost decoder layer."""
    seen: set[int] = set()
    out = []
    last = output_layer_name(model)
    for name, mod in layer_modules(model):
        params = [p for p in mod.parameters() if id(p) not in seen]
        if name == last:
            params.append(model.output_bias)
        seen.update(id(p) for p in params)
        if params:
            out.append((name, params))
    return out


class GradNormProbe:
    """Per-layer gradient norms of a model, computed on its device without a host sync.

    `measure(params_in_use)` returns a device tensor (one norm per layer, NaN for layers without a
    gradient in this step); `record(tensor)` turns it into history fields, once per epoch."""

    def __init__(self, model: Autoencoder):
        self.groups = layer_parameters(model)
        self.names = [name for name, _ in self.groups]

    @torch.no_grad()
    def measure(self, params_in_use: Sequence[nn.Parameter] | None = None) -> torch.Tensor | None:
        use = None if params_in_use is None else {id(p) for p in params_in_use}
        norms = []
        device = None
        for _, params in self.groups:
            grads = [p.grad for p in params if p.grad is not None and (use is None or id(p) in use)]
            if not grads:
                norms.append(None)
                continue
            device = grads[0].device
            per = torch._foreach_norm(grads) if hasattr(torch, "_foreach_norm") else [g.norm() for g in grads]
            norms.append(torch.linalg.vector_norm(torch.stack([t.float() for t in per])))
        if device is None:
            return None
        nan = torch.full((), float("nan"), device=device)  # a fill on the device, no host-to-device copy
        return torch.stack([nan if v is None else v for v in norms])

    def record(self, measured: torch.Tensor | None) -> dict[str, float]:
        """History fields {"grad_norm/<layer>": value} (layers without a gradient left out)."""
        if measured is None:
            return {}
        values = measured.detach().cpu().tolist()  # the one host sync, at the end of an epoch
        return {f"{GRAD_PREFIX}{n}": float(v) for n, v in zip(self.names, values) if np.isfinite(v)}


def grad_norms_per_layer(history: Sequence[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer: (epoch numbers, gradient norms)} from history records (epochs count every record)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for i, r in enumerate(history, start=1):
        for k, v in r.items():
            if k.startswith(GRAD_PREFIX) and isinstance(v, (int, float)) and np.isfinite(v):
                xs, ys = out.setdefault(k[len(GRAD_PREFIX):], ([], []))
                xs.append(float(i))
                ys.append(float(v))
    return {k: (np.asarray(xs), np.asarray(ys)) for k, (xs, ys) in out.items()}


# ---- weights as images -------------------------------------------------------------------------------
def _first_weight_layer(model: Autoencoder) -> nn.Module:
    block = model.enc_blocks[0]
    if isinstance(block, RowEncoder):
        return block.rnn
    return next(m for m in block.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


@torch.no_grad()
def first_layer_filters(model: Autoencoder, limit: int = 64) -> np.ndarray:
    """The first layer's filters as images (n, C, h, w), float32, in weight units.

    dense: each unit's row of the first weight matrix, reshaped to the image (C, H, W);
    conv: the first convolution's kernels (out channels, C, 4, 4);
    recurrent: each unit's input weights for one image row, (C, 1, W) strips (gates stacked)."""
    c, h, w = (int(v) for v in model.config.input_shape)
    layer = _first_weight_layer(model)
    if isinstance(layer, nn.Conv2d):
        out = layer.weight
    elif isinstance(layer, nn.Linear):
        out = layer.weight.reshape(-1, c, h, w)
    else:  # LSTM / GRU: weight_ih_l0 is (gates * hidden, C * W), a row read as C x W
        out = layer.weight_ih_l0.reshape(-1, 1, c, w).permute(0, 2, 1, 3)
    return out[:limit].detach().float().cpu().numpy().copy()


@torch.no_grad()
def decoder_output_weights(model: Autoencoder, limit: int = 64) -> np.ndarray:
    """What each unit feeding the output paints, as images (n, C, h, w), float32, in weight units.

    dense: column j of the last weight matrix reshaped to the image (tied: the encoder's row j);
    conv: the last transposed convolution's kernels (in channels, C, 4, 4);
    recurrent: the row read-out's column for each unit, a (C, 1, W) strip."""
    c, h, w = (int(v) for v in model.config.input_shape)
    last = model.dec_blocks[0]
    if isinstance(last, RowDecoder):
        out = last.row.weight.t().reshape(-1, 1, c, w).permute(0, 2, 1, 3)  # (hidden, C, 1, W)
    else:
        layer = last[0]
        if isinstance(layer, TiedLinear):
            out = layer.source[0].weight.reshape(-1, c, h, w)
        elif isinstance(layer, nn.Linear):
            out = layer.weight.t().reshape(-1, c, h, w)
        else:  # ConvTranspose2d: weight (in, out=C, k, k)
            out = layer.weight
    return out[:limit].detach().float().cpu().numpy().copy()


# ---- activations -----------------------------------------------------------------------------------
@dataclass
class LayerActivity:
    """Hidden-unit activations of one layer on a batch of images."""

    name: str
    counts: np.ndarray  # histogram counts (bins,)
    edges: np.ndarray  # bin edges (bins + 1,)
    mean: float
    fraction_active: float  # of all values, the share with |a| > ACTIVE_THRESHOLD
    fraction_zero: float  # of all values, the share exactly 0 (a ReLU that is off)
    unit_active: np.ndarray  # per unit: share of images on which it is active
    dead_units: int  # units never active on this batch

    @property
    def units(self) -> int:
        return int(self.unit_active.shape[0])


def _per_unit(a: torch.Tensor) -> torch.Tensor:
    """(N, units, ...) activations -> (N, units, positions): a conv channel is one unit."""
    return a.reshape(a.shape[0], a.shape[1], -1) if a.dim() > 2 else a.unsqueeze(-1)


def _activity(name: str, a: torch.Tensor, bins: int, threshold: float) -> LayerActivity:
    a = _per_unit(a.detach().float().cpu())
    active = a.abs() > threshold
    unit_active = active.float().mean(dim=(0, 2)).numpy()
    flat = a.flatten().numpy()
    if flat.size > MAX_VALUES:
        flat = flat[np.random.default_rng(0).choice(flat.size, MAX_VALUES, replace=False)]
    lo, hi = float(flat.min()), float(flat.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(flat, bins=bins, range=(lo, hi))
    return LayerActivity(name, counts.astype(np.int64), edges.astype(np.float64), float(a.mean()),
                         float(active.float().mean()), float((a == 0).float().mean()), unit_active,
                         int((unit_active == 0).sum()))


@torch.no_grad()
def activation_histograms(model: Autoencoder, images: np.ndarray, bins: int = 40,
                          threshold: float = ACTIVE_THRESHOLD, max_images: int = 512) -> list[LayerActivity]:
    """Histograms of hidden-unit activations per layer (encoder layers, the code, the decoder's hidden
    layers) on `images` (N, C, H, W floats in [0, 1]), captured with forward hooks in eval mode.

    The model is copied first, so hooks never touch a model another thread is using."""
    m = copy.deepcopy(model).eval()
    x = np.asarray(images, dtype=np.float32)[:max_images]
    if x.dtype == np.uint8:  # pragma: no cover - asarray above already converted
        x = x / 255.0
    dev = next(m.parameters()).device
    captured: dict[str, list[torch.Tensor]] = {}
    handles = []
    last = output_layer_name(m)
    layers = [(n, mod) for n, mod in layer_modules(m) if n not in ("code", last)]

    def hook(name: str):
        def fn(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            captured.setdefault(name, []).append(out.detach())
        return fn

    for name, mod in layers:
        handles.append(mod.register_forward_hook(hook(name)))
    codes = []
    try:
        for i in range(0, len(x), 256):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + 256])).to(dev)
            code = m.encode(xb)
            codes.append(code.mu.detach())
            m.decode(code.mu)
    finally:
        for h in handles:
            h.remove()
    order = [n for n, _ in layer_modules(m) if n != last]
    out = []
    for name in order:
        if name == "code":
            if codes:
                out.append(_activity("code", torch.cat(codes), bins, threshold))
        elif name in captured:
            out.append(_activity(name, torch.cat(captured[name]), bins, threshold))
    return out


# ---- codes ---------------------------------------------------------------------------------------------
def code_statistics(codes: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> dict[str, np.ndarray]:
    """Per code dimension (latent,): mean, std, min, max and the fraction of images on which the
    dimension is active (|z| > threshold). Empty arrays for no codes."""
    z = np.asarray(codes, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0:
        k = z.shape[1] if z.ndim == 2 else 0
        empty = np.full(k, np.nan)
        return {"mean": empty, "std": empty, "min": empty, "max": empty, "active": empty}
    return {"mean": z.mean(0), "std": z.std(0), "min": z.min(0), "max": z.max(0),
            "active": (np.abs(z) > threshold).mean(0)}


def inspect_snapshot(model: Autoencoder, images: np.ndarray, limit: int = 64) -> dict[str, Any]:
    """Everything "Look inside" computes on demand, as numpy: {"filters", "decoder", "activity"}."""
    return {"filters": first_layer_filters(model, limit), "decoder": decoder_output_weights(model, limit),
            "activity": activation_histograms(model, images)}


__all__ = [
    "ACTIVE_THRESHOLD", "GRAD_PREFIX", "GradNormProbe", "LayerActivity", "activation_histograms", "code_statistics",
    "decoder_output_weights", "first_layer_filters", "grad_norms_per_layer", "inspect_snapshot", "layer_modules",
    "layer_parameters", "output_layer_name",
]
