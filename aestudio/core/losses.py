"""Loss terms, each computed and reported on its own.

All terms are per image (summed over pixels or code units, averaged over the batch), so the
reconstruction term of a BCE model is in nats and the VAE's recon + KL is its negative ELBO.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .models import Autoencoder, Code

TERM_HELP = {
    "total": "Everything the optimiser minimises: reconstruction plus the weighted penalties.",
    "recon": "Reconstruction error per image (sum over pixels): how far the output is from the clean input.",
    "kl": "KL divergence of the VAE posterior q(z|x) from the N(0, I) prior, in nats per image (before the beta weight).",
    "sparsity": "Sparsity penalty on the code activations (L1, or KL divergence to the target activation rho), before its weight.",
    "contractive": "Squared Frobenius norm of the encoder Jacobian dz/dx (random-projection estimate), before its weight.",
    "weight_decay": "Sum of squared weights (L2), before its weight.",
    "disc": ("Adversarial autoencoder: the discriminator's loss (binary cross-entropy) at telling prior samples "
             "from codes. About 1.39 (2 ln 2) means it cannot tell them apart."),
    "gen": ("Adversarial autoencoder: the encoder's loss at fooling the discriminator (binary cross-entropy of "
            "its codes labelled as prior samples). About 0.69 (ln 2) when the discriminator is guessing."),
}


def reconstruction(logits: torch.Tensor, target: torch.Tensor, loss: str, output: str) -> torch.Tensor:
    """Per-image reconstruction error, summed over pixels and averaged over the batch."""
    if loss == "bce":  # one fused reduction: no per-pixel tensor to keep, sum or differentiate
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / target.shape[0]
    recon = torch.sigmoid(logits) if output == "sigmoid" else logits
    per = (recon - target) ** 2
    return per.flatten(1).sum(1).mean()


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor, per_dim: bool = False) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)), summed over latent dims (or per dim), averaged over the batch."""
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl.mean(0) if per_dim else kl.sum(1).mean()


def sparsity_penalty(z: torch.Tensor, kind: str, rho: float) -> torch.Tensor:
    if kind == "l1":
        return z.abs().sum(1).mean()
    rho_hat = z.mean(0).clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def contractive_penalty(code: Code, x: torch.Tensor, projections: int = 1) -> torch.Tensor:
    """Hutchinson estimate of ||dz/dx||_F^2: E_v ||J^T v||^2 with v ~ N(0, I). Needs x.requires_grad."""
    total = x.new_zeros(())
    for _ in range(projections):
        v = torch.randn_like(code.mu)
        (g,) = torch.autograd.grad(code.mu, x, grad_outputs=v, create_graph=True)
        total = total + g.pow(2).flatten(1).sum(1).mean()
    return total / projections


def weight_penalty(model: Autoencoder) -> torch.Tensor:
    """Sum of squared weights of the encoder and decoder (an AAE's discriminator is not penalised)."""
    return sum(p.pow(2).sum() for name, p in model.named_parameters()
               if p.dim() > 1 and not name.startswith("discriminator."))


def kl_free_bits(kl_per_dim: torch.Tensor, free_bits: float) -> torch.Tensor:
    """sum_j max(KL_j, lambda): each dimension's batch-mean KL counts as at least `free_bits` nats,
    so the optimiser gains nothing by pushing a dimension all the way onto the prior."""
    return kl_per_dim.clamp(min=free_bits).sum() if free_bits > 0 else kl_per_dim.sum()


def adversarial_losses(model: Autoencoder, z: torch.Tensor,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(discriminator loss, generator loss) of an adversarial autoencoder for codes `z`.

    The discriminator D scores a code with the logit of "drawn from the N(0, I) prior":
    disc = BCE(D(prior sample), 1) + BCE(D(z), 0), and the encoder's (generator's)
    gen = BCE(D(z), 1). Gradients flow wherever the inputs allow; detach `z` to train D only.
    """
    prior = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    d_fake = model.discriminator(z)
    d_real = model.discriminator(prior)
    ones, zeros = torch.ones_like(d_real), torch.zeros_like(d_fake)
    disc = F.binary_cross_entropy_with_logits(d_real, ones) + F.binary_cross_entropy_with_logits(d_fake, zeros)
    gen = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return disc, gen


def loss_terms(model: Autoencoder, x_in: torch.Tensor, target: torch.Tensor,
               kl_weight: float | None = None, kl_dims_out: list | None = None,
               codes_out: list | None = None) -> dict[str, torch.Tensor]:
    """Forward pass plus every loss term. `x_in` may be a corrupted copy of `target`.

    `kl_weight` replaces the VAE's beta in the total (the trainer's KL warm-up ramps it from 0);
    with `free_bits` the total counts each dimension's KL as at least that many nats (the reported
    "kl" term stays the true KL). For an adversarial autoencoder ("aae") the "disc" and "gen" terms
    are reported without gradient: `adversarial.AdversarialStep` does those updates.
    A VAE appends its batch-mean KL per latent dimension to `kl_dims_out` when one is given, and
    every model its codes (the means, detached) to `codes_out`.
    """
    cfg = model.config
    contractive = cfg.kind == "contractive" and model.training and cfg.contractive_weight > 0
    if contractive:
        x_in = x_in.detach().requires_grad_(True)
    code = model.encode(x_in)
    if codes_out is not None:
        codes_out.append(code.mu.detach())
    logits = model.decode_logits(code.z)
    terms: dict[str, torch.Tensor] = {"recon": reconstruction(logits, target, cfg.loss, cfg.output)}
    total = terms["recon"]
    if cfg.kind == "vae":
        kl_dims = kl_normal(code.mu, code.logvar, per_dim=True)
        terms["kl"] = kl_dims.sum()
        if kl_dims_out is not None:
            kl_dims_out.append(kl_dims.detach())
        total = total + (cfg.beta if kl_weight is None else kl_weight) * kl_free_bits(kl_dims, cfg.free_bits)
    elif cfg.kind == "aae":
        # reported only: adversarial.AdversarialStep trains the discriminator and the encoder against it
        gen = None if model.training else torch.Generator(device=code.z.device).manual_seed(0)
        with torch.no_grad():
            disc, gen_loss = adversarial_losses(model, code.z.detach(), gen)
        terms["disc"], terms["gen"] = disc, gen_loss
        total = total + gen_loss
    elif cfg.kind == "sparse":
        terms["sparsity"] = sparsity_penalty(code.z, cfg.sparsity, cfg.sparsity_target)
        total = total + cfg.sparsity_weight * terms["sparsity"]
    elif contractive:
        terms["contractive"] = contractive_penalty(code, x_in)
        total = total + cfg.contractive_weight * terms["contractive"]
    if cfg.weight_decay > 0:
        terms["weight_decay"] = weight_penalty(model)
        total = total + cfg.weight_decay * terms["weight_decay"]
    terms["total"] = total
    return terms
