"""Named starting points for the Model builder (no Qt).

Each preset is a model configuration plus the training noise it needs, with a short
explanation of what it demonstrates. Configs are built with `dataclasses.replace` from a fresh
`ModelConfig`, never changed in place:

    preset = get_preset("denoiser")
    model_config, train_config = preset.apply((1, 28, 28), TrainConfig())
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .config import ModelConfig, TrainConfig


def no_hidden_layers_supported() -> bool:
    """True when `hidden=[]` builds a model without hidden layers (784 → k → 784)."""
    try:
        return ModelConfig(arch="dense", hidden=[]).hidden_sizes == []
    except Exception:  # noqa: BLE001 - an older config that rejects the empty list
        return False


def linear_activation_supported() -> bool:
    from .config import ACTIVATIONS

    return "linear" in ACTIVATIONS


def shallow_hidden(fallback: list[int]) -> list[int]:
    """No hidden layers where the model code supports it, else `fallback`."""
    return [] if no_hidden_layers_supported() else list(fallback)


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    explanation: str
    changes: tuple[tuple[str, Any], ...]  # ModelConfig fields to set
    noise: str = "none"

    def model_config(self, input_shape: tuple[int, int, int] = (1, 28, 28)) -> ModelConfig:
        changes = dict(self.changes)
        for key, value in list(changes.items()):
            if callable(value):
                changes[key] = value()
        return replace(ModelConfig(), input_shape=tuple(input_shape), **changes)

    def apply(self, input_shape: tuple[int, int, int], train: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
        """The preset's model for images of `input_shape`, and `train` with the preset's noise."""
        return self.model_config(input_shape), replace(train, noise=self.noise)


PRESETS: tuple[Preset, ...] = (
    Preset("hands-on", "Hands-on dense (784 → 32 → 784)",
           "The smallest useful autoencoder: one dense layer squeezes each image into 32 numbers and one dense "
           "layer expands them back. A good first model to train and to compare everything else with.",
           (("arch", "dense"), ("kind", "ae"), ("latent", 32), ("hidden", lambda: shallow_hidden([128])))),
    Preset("linear-pca", "Linear autoencoder (learns PCA's subspace)",
           "No hidden layers, no non-linearity and a linear output: the best such model spans the same subspace "
           "as PCA's top components. Compare it with PCA in the PCA lab.",
           (("arch", "dense"), ("kind", "ae"), ("latent", 16), ("hidden", lambda: shallow_hidden([256])),
            ("activation", lambda: "linear" if linear_activation_supported() else "relu"), ("output", "linear"))),
    Preset("denoiser", "Denoiser (convolutional, Gaussian noise)",
           "Trained to turn a noisy image into the clean one, so it cannot just copy its input: it has to know "
           "what clothes look like. Training inputs get Gaussian noise of σ 0.5.",
           (("arch", "conv"), ("kind", "ae"), ("latent", 16)), noise="gaussian:0.5"),
    Preset("sparse", "Sparse code (KL to a 5% target)",
           "A wide code (64 units) in which a penalty keeps each unit mostly off: on average a unit fires for "
           "about one image in twenty, so each unit has to stand for a particular feature.",
           (("arch", "dense"), ("kind", "sparse"), ("latent", 64), ("hidden", [256]), ("sparsity", "kl"),
            ("sparsity_target", 0.05), ("sparsity_weight", 0.1))),
    Preset("contractive", "Contractive (flat code around the data)",
           "Penalises how strongly the code reacts to tiny changes of the input (the encoder's Jacobian), so "
           "nearby images get nearby codes and small noise barely moves them.",
           (("arch", "dense"), ("kind", "contractive"), ("latent", 32), ("hidden", [256]),
            ("contractive_weight", 0.1))),
    Preset("beta-vae", "β-VAE (β = 4, 8 latent dimensions)",
           "A variational autoencoder whose KL term is weighted four times: codes follow the N(0, I) prior more "
           "closely, samples and traversals are smoother, reconstructions blurrier.",
           (("arch", "conv"), ("kind", "vae"), ("latent", 8), ("beta", 4.0))),
    Preset("stacked", "Stacked, pretrained layer by layer",
           "Three dense layers trained greedily, one encoder/decoder pair at a time on the features of the layer "
           "below, then fine-tuned end to end: the classic way deep autoencoders were first trained.",
           (("arch", "dense"), ("kind", "ae"), ("latent", 16), ("hidden", [256, 64]), ("stacked", True))),
    Preset("overcomplete", "Over-complete copier (1024-number code)",
           "A code larger than the image (1024 numbers for 784 pixels) with nothing to stop it copying: it "
           "reconstructs almost anything, random noise included, and learns little about the data. Add noise, "
           "sparsity or contraction to make it learn structure.",
           (("arch", "dense"), ("kind", "ae"), ("latent", 1024), ("hidden", lambda: shallow_hidden([1024])))),
)


def preset_names() -> list[str]:
    return [p.key for p in PRESETS]


def get_preset(key: str) -> Preset:
    for p in PRESETS:
        if p.key == key:
            return p
    raise KeyError(f"unknown preset {key!r}; choose one of {', '.join(preset_names())}")


__all__ = ["PRESETS", "Preset", "get_preset", "linear_activation_supported", "no_hidden_layers_supported",
           "preset_names", "shallow_hidden"]
