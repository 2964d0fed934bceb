"""Adversarial autoencoder (kind "aae"): a discriminator shapes the code distribution toward N(0, I).

Makhzani et al.'s recipe, one batch at a time, in three alternating updates:

1. **discriminator**: learn to tell samples of the prior from the encoder's codes
   (`disc` = BCE(D(prior), 1) + BCE(D(codes), 0); only the discriminator's weights move);
2. **generator**: the encoder learns to fool it (`gen` = BCE(D(codes), 1); only the encoder moves);
3. **reconstruction**: encoder and decoder learn to reconstruct (`recon`; the trainer's own
   optimizer over `model.autoencoder_parameters()`).

The first two happen inside `AdversarialStep.__call__`, which then returns the loss terms of the
third for the trainer to step on, so the engine's loop is the same for every kind. Each term is
reported on its own: `recon`, `disc`, `gen` and `total` = recon + gen (the autoencoder's side of
the game). A discriminator that always wins shows as `disc` falling toward 0 and `gen` rising:
the classic GAN instability.

The discriminator is a submodule of the model (`model.discriminator`), so its weights are saved
and opened with the run like every other weight.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .losses import adversarial_losses, loss_terms
from .models import Autoencoder


def encoder_parameters(model: Autoencoder) -> list[torch.nn.Parameter]:
    """The weights that make the code: encoder blocks and the code layer."""
    return [*model.enc_blocks.parameters(), *model.to_code.parameters()]


#: The discriminator's and the generator's learning rate, as a fraction of the run's. Measured on
#: 4,000 fashion-10k images (dense, code 8, Adam 2e-3, 8 epochs): at 1x the adversarial steps
#: swamp reconstruction (validation error 36 per image against 16 for a plain autoencoder); at
#: 0.05x the discriminator wins (its loss 0.72, codes spread 3x the prior's); at 0.2x the error is
#: 15.6 and the codes sit on the prior (mean 0.17 from its centre, spread 0.93 per dimension).
ADVERSARIAL_LR_RATIO = 0.2


class AdversarialStep:
    """A training step function for an adversarial autoencoder: `step(x_in, target) -> terms`.

    Owns the discriminator's and the generator's (encoder's) Adam optimizers (learning rate
    `ADVERSARIAL_LR_RATIO` x `lr`), so create one per training run. `kl_weight` is accepted for
    the trainer's uniform call and ignored.
    """

    def __init__(self, model: Autoencoder, lr: float):
        if not hasattr(model, "discriminator"):
            raise ValueError(f"an adversarial step needs an adversarial autoencoder (kind aae), not {model.config.kind!r}")
        self.model = model
        adv_lr = lr * ADVERSARIAL_LR_RATIO
        self.disc_opt = torch.optim.Adam(model.discriminator.parameters(), lr=adv_lr, betas=(0.5, 0.999))
        self.gen_opt = torch.optim.Adam(encoder_parameters(model), lr=adv_lr, betas=(0.5, 0.999))

    def __call__(self, x_in: torch.Tensor, target: torch.Tensor, kl_weight: float | None = None) -> dict[str, torch.Tensor]:
        m = self.model
        # 1. discriminator: prior samples are "real", the encoder's codes "fake"
        with torch.no_grad():
            z = m.encode(x_in).z
        disc, _ = adversarial_losses(m, z)
        self.disc_opt.zero_grad(set_to_none=True)
        disc.backward()
        self.disc_opt.step()
        # 2. generator: move the encoder so its codes look like prior samples to the discriminator
        z = m.encode(x_in).z
        _, gen = adversarial_losses(m, z)
        self.gen_opt.zero_grad(set_to_none=True)
        gen.backward()
        self.gen_opt.step()
        m.discriminator.zero_grad(set_to_none=True)  # its gradients from the generator step are not used
        # 3. reconstruction: the trainer steps on these terms' total (only `recon` carries gradient)
        return loss_terms(m, x_in, target)


@dataclass
class PriorView:
    """Codes and prior samples in one 2-D view, for plotting the one against the other."""

    codes: np.ndarray  # (N, 2) the codes, projected
    prior: np.ndarray  # (M, 2) samples of N(0, I), projected the same way
    axes: tuple[str, str]  # what the two axes are ("z1", "z2" or "code PC 1", "code PC 2")
    code_mean_norm: float  # ||mean of the codes||: 0 for codes centred like the prior
    code_std: float  # mean over dimensions of the codes' standard deviation: 1 like the prior
    labels: np.ndarray | None = None  # (N,) class of each code, when known

    def summary(self) -> str:
        return (f"codes: mean at distance {self.code_mean_norm:.2f} from the prior's centre, "
                f"spread {self.code_std:.2f} per dimension (the prior N(0, I): 0 and 1)")


def prior_view(codes: np.ndarray, n_prior: int = 1000, seed: int = 0, labels: np.ndarray | None = None,
               max_points: int = 5000) -> PriorView:
    """Project codes (N, latent) and `n_prior` samples of N(0, I) into the same plane.

    A 2-D code is shown as it is. A larger one is projected onto the two directions along which
    the codes vary most (orthonormal, through the origin, so an offset of the codes stays visible);
    the prior's projection onto any orthonormal pair is again N(0, I), so the two clouds compare
    directly. A 1-D code is drawn on the horizontal axis.
    """
    z = np.asarray(codes, dtype=np.float64)
    z = z.reshape(len(z), -1)
    if len(z) == 0:
        raise ValueError("no codes to show")
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(z), size=max_points, replace=False)) if len(z) > max_points else np.arange(len(z))
    z = z[keep]
    lab = None if labels is None else np.asarray(labels)[keep]
    k = z.shape[1]
    prior = rng.standard_normal((max(1, int(n_prior)), k))
    if k == 1:
        basis, axes = np.array([[1.0, 0.0]]), ("z1", "")
    elif k == 2:
        basis, axes = np.eye(2), ("z1", "z2")
    else:
        _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
        basis, axes = vt[:2].T, ("code PC 1", "code PC 2")
    mean_norm = float(np.linalg.norm(z.mean(0)))
    std = float(z.std(0).mean()) if len(z) > 1 else 0.0
    return PriorView((z @ basis).astype(np.float32), (prior @ basis).astype(np.float32), axes, mean_norm, std, lab)


__all__ = ["ADVERSARIAL_LR_RATIO", "AdversarialStep", "PriorView", "encoder_parameters", "prior_view"]
