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

import torch

from .losses import adversarial_losses, loss_terms
from .models import Autoencoder


def encoder_parameters(model: Autoencoder) -> list[torch.nn.Parameter]:
    """The weights that make the code: encoder blocks and the code layer."""
    return [*model.enc_blocks.parameters(), *model.to_code.parameters()]


class AdversarialStep:
    """A training step function for an adversarial autoencoder: `step(x_in, target) -> terms`.

    Owns the discriminator's and the generator's (encoder's) Adam optimizers, so create one per
    training run. `kl_weight` is accepted for the trainer's uniform call and ignored.
    """

    def __init__(self, model: Autoencoder, lr: float):
        if not hasattr(model, "discriminator"):
            raise ValueError(f"an adversarial step needs an adversarial autoencoder (kind aae), not {model.config.kind!r}")
        self.model = model
        self.disc_opt = torch.optim.Adam(model.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.gen_opt = torch.optim.Adam(encoder_parameters(model), lr=lr, betas=(0.5, 0.999))

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


__all__ = ["AdversarialStep", "encoder_parameters"]
