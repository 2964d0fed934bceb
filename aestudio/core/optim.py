"""The optimizer: Adam, with orthogonalised momentum (Muon) for convolution kernels.

`make_optimizer(params, lr, device, "auto")` returns a `ConvMuonAdam`: every convolution kernel
(a 4-d weight) is updated with Muon, everything else (dense layers, biases, the output offset)
with PyTorch's fused Adam; `"adam"` returns plain Adam. Models without convolutions (dense,
recurrent) train with plain Adam either way.

Muon (Keller Jordan, 2024; "Muon is scalable for LLM training", Moonshot AI, 2025) keeps a
Nesterov momentum of each kernel's gradient, seen as a matrix (rows: the kernel's first
dimension; columns: the rest), and steps along the nearest semi-orthogonal matrix to it: the
same directions with every singular value set to about 1, found by five Newton-Schulz
iterations. Adam scales each number of the update on its own, so a few strong directions
dominate a kernel's update; the orthogonal step moves every direction the gradient names by the
same amount. The step is scaled by 0.2 * sqrt(max(rows, columns)) so that its size per weight
matches Adam's (Moonshot's rule), which lets both share one learning rate and schedule.

Why only the convolution kernels: measured with benchmarks/robustness.py (the conv AE-16 at the
default settings, seed 0, 2 threads, 4,000 steps on every set), Muon for the kernels and Adam for the rest improved it on
every set: `photos` 0.743x -> 0.712x PCA-16's error, `fashion-10k` 0.527x -> 0.517x, `digits`
0.503x -> 0.488x, `tiny` 0.192x -> 0.165x, `icons` 0.094x -> 0.081x; benchmarks/optimizer_choice.py
prints the error ratio auto / adam 0.967 (0.943-0.984) over six set-seed pairs, for 1.15x
(1.12-1.25x) the training time on 2 CPU threads (about 1.5 ms more per step of the default conv
model: the Newton-Schulz products and the momentum, small operations each). Muon for the big
dense layers too reached 0.69x on `photos`, but cost 2.3x the training time on a CPU
(orthogonalising a 3,136 x 256 matrix costs more than the small model's forward and backward
pass) and did worse elsewhere (`digits` 0.61x, overfitting; `fashion-10k` 0.55x).
"""
from __future__ import annotations

import math

import torch

from .config import OPTIMIZERS  # noqa: F401 - the choices of TrainConfig.optimizer, for callers of this module
#: The quintic Newton-Schulz coefficients of Muon: they push every singular value into about
#: [0.7, 1.2] in five steps from a start whose largest singular value is at most 1.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
MOMENTUM = 0.95
#: Adam-matched step size: the orthogonal update times this times sqrt(max(rows, columns))
MATCH_ADAM = 0.2
#: the optimizer-state key of a Muon parameter, beside its "step" (Adam's: exp_avg, exp_avg_sq, step)
MUON_KEY = "momentum_buffer"


def orthogonalize(m: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """The nearest semi-orthogonal matrices (approximately) to a batch of matrices (B, r, c)."""
    a, b, c = NS_COEFFICIENTS
    x = m.float()
    tall = x.shape[-2] > x.shape[-1]
    if tall:  # iterate with fewer rows than columns: the Gram matrix is then the smaller one
        x = x.mT
    # scaled so that the largest singular value is at most 1 (the Frobenius norm bounds it)
    x = x / (torch.linalg.matrix_norm(x, keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return (x.mT if tall else x).to(m.dtype)


def uses_muon(p: torch.Tensor) -> bool:
    """Whether `ConvMuonAdam` updates this parameter with Muon: a convolution kernel (4-d)."""
    return p.ndim == 4


class ConvMuonAdam(torch.optim.Adam):
    """Adam for every parameter but convolution kernels, which Muon updates (see the module text).

    One parameter group in the model's order, like Adam's, so that its state_dict indexes the
    parameters as Adam's does: a kernel's state is {"momentum_buffer", "step"}, any other's Adam's."""

    def __init__(self, params, lr: float, fused: bool | None = None):
        kw = {"fused": True} if fused else {}
        super().__init__(params, lr=lr, **kw)
        # a GradScaler must unscale the gradients before `step`: Muon's kernels take no scale
        self._step_supports_amp_scaling = False

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        kernels: list[tuple[torch.Tensor, torch.Tensor, float]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and uses_muon(p):
                    kernels.append((p, p.grad, group["lr"]))
                    p.grad = None  # Adam skips parameters without a gradient
        try:
            super().step()
        finally:
            for p, g, _ in kernels:
                p.grad = g
        self._muon_step(kernels)
        return loss

    def _muon_step(self, kernels: list[tuple[torch.Tensor, torch.Tensor, float]]) -> None:
        if not kernels:
            return
        for p, _, _ in kernels:
            state = self.state[p]
            if MUON_KEY not in state:
                state[MUON_KEY] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] = torch.tensor(0.0)  # counted like Adam's (torch's Adam expects it in every state)
        params = [p for p, _, _ in kernels]
        grads = [g for _, g, _ in kernels]
        bufs = [self.state[p][MUON_KEY] for p in params]
        torch._foreach_add_([self.state[p]["step"] for p in params], 1.0)
        torch._foreach_mul_(bufs, MOMENTUM)
        torch._foreach_add_(bufs, grads)
        updates = torch._foreach_add(grads, bufs, alpha=MOMENTUM)  # Nesterov
        # kernels whose matrices have the same shape are orthogonalised together, in one batch
        batches: dict[tuple, list[int]] = {}
        for i, (p, _, lr) in enumerate(kernels):
            batches.setdefault((p.shape[0], p.numel() // p.shape[0], p.device, lr), []).append(i)
        for (rows, cols, _, lr), idx in batches.items():
            ortho = orthogonalize(torch.stack([updates[i].reshape(rows, cols) for i in idx]))
            scale = lr * MATCH_ADAM * math.sqrt(max(rows, cols))
            torch._foreach_add_([params[i] for i in idx], [o.view(params[i].shape) for o, i in zip(ortho, idx)],
                                alpha=-scale)


def make_optimizer(params, lr: float, device: torch.device, kind: str = "auto") -> torch.optim.Adam:
    """The optimizer of a training stage: `ConvMuonAdam` ("auto", where there are convolution
    kernels) or Adam, with PyTorch's fused Adam kernels where they exist (CPU and CUDA, float32
    weights): one kernel per step instead of a Python loop over the weight tensors, measured 9x
    faster per step on the 784-400-20 VAE on a CPU. The same update; the last bits of the weights
    differ from the loop version's."""
    params = list(params)
    fused = device.type in ("cpu", "cuda") and all(p.dtype == torch.float32 for p in params)
    muon = kind == "auto" and any(uses_muon(p) for p in params)
    cls = ConvMuonAdam if muon else torch.optim.Adam
    if fused:
        try:
            return cls(params, lr=lr, fused=True)
        except (RuntimeError, ValueError):  # a build without the fused kernels
            pass
    return cls(params, lr=lr)


def keep_matching_state(opt: torch.optim.Optimizer, state: dict[int, dict]) -> dict[int, dict]:
    """The entries of a saved state (by parameter index) that fit how `opt` updates each parameter:
    a kernel saved by Adam and continued with Muon (or the other way round) starts afresh."""
    params = [p for g in opt.param_groups for p in g["params"]]
    muon = isinstance(opt, ConvMuonAdam)
    out = {}
    for i, s in state.items():
        if not 0 <= int(i) < len(params):
            continue
        wants_muon = muon and uses_muon(params[int(i)])
        if (MUON_KEY in s) == wants_muon:
            out[int(i)] = s
    return out
