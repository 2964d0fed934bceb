"""Declarative, JSON-serialisable configuration for every model and training run.

`ModelConfig` says what network to build; `TrainConfig` says how to train it. Both validate
themselves: `problems()` lists every reason a config cannot work (for inline help in the
studio), `validate()` raises `ConfigError` with them (for the CLI).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .fields import labelled, ui
from .schema import MAX_JSON_DEPTH, MODEL_FIELDS, TRAIN_FIELDS, check_fields, field_problem, json_depth

ARCHS = ("dense", "conv", "recurrent")
KINDS = ("ae", "vae", "sparse", "contractive", "aae")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid", "linear")
OUTPUTS = ("sigmoid", "linear")
LOSSES = ("mse", "bce")
INITS = ("he", "xavier")
SPARSITY_PENALTIES = ("l1", "kl")
RNN_CELLS = ("lstm", "gru")
#: Kinds trained toward the prior N(0, I) (a VAE by its KL term, an AAE by its discriminator): decoding
#: N(0, I) samples generates images, and one sigma of the prior is one unit of the code.
PRIOR_KINDS = ("vae", "aae")

#: 2: `dense_layers` (conv models). A version-1 file has none, and its conv models were built without
#: them, so reading one sets `dense_layers` to [] (see `from_json`).
#: 3: the default dense layer starts at 512 conv features instead of 1,024 (8-11 px images). A
#: version-2 conv model with fewer than 1,024 features and no `dense_layers` of its own was built
#: without the layer, so reading one sets `dense_layers` to [].
#: 4: `train.optimizer` (Muon for convolution kernels by default). Earlier runs trained with Adam
#: alone, so reading one without the field sets it to "adam" (continuing it trains as it was trained).
FORMAT_VERSION = 4

# ---- how the fields appear in the studio's forms (see aestudio.core.fields) --------------------
ARCH_LABELS = {"dense": "Dense (fully connected)", "conv": "Convolutional", "recurrent": "Recurrent (rows as a sequence)"}
KIND_LABELS = {"ae": "Plain autoencoder", "vae": "Variational (VAE)", "sparse": "Sparse", "contractive": "Contractive",
               "aae": "Adversarial (AAE)"}
ACTIVATION_LABELS = {"relu": "ReLU", "leaky_relu": "Leaky ReLU", "elu": "ELU", "tanh": "tanh", "sigmoid": "sigmoid",
                     "linear": "linear (none)"}
OUTPUT_LABELS = {"sigmoid": "Sigmoid: pixels in [0, 1]", "linear": "Linear: unbounded"}
LOSS_LABELS = {"mse": "Mean squared error", "bce": "Binary cross-entropy"}
INIT_LABELS = {"he": "He (Kaiming)", "xavier": "Xavier (Glorot)"}
SPARSITY_LABELS = {"kl": "KL to a target rate ρ", "l1": "L1 on the code"}
RNN_CELL_LABELS = {"lstm": "LSTM", "gru": "GRU"}
NOISE_KINDS = ("none", "gaussian", "saltpepper", "mask")
NOISE_LABELS = {"none": "None", "gaussian": "Gaussian", "saltpepper": "Salt and pepper", "mask": "Masking"}
AUGMENTS = ("auto", "shift", "none")  # see aestudio/core/augment.py
AUGMENT_LABELS = {"auto": "Auto (shift small sets)", "shift": "Random shifts", "none": "None"}
OPTIMIZERS = ("auto", "adam")  # see aestudio/core/optim.py
OPTIMIZER_LABELS = {"auto": "Auto (Muon + Adam)", "adam": "Adam"}
DEVICES = ("auto", "cpu", "cuda", "mps")
DEVICE_LABELS = {"auto": "Auto (best available)", "cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}


class ConfigError(ValueError):
    """An impossible or inconsistent configuration. The message is meant for users."""


def default_hidden(arch: str, input_shape: tuple[int, int, int], latent: int) -> list[int]:
    """Sensible layer sizes when the user gives none.

    dense: start at the largest power of two below the input size (at most 512) and halve each
    layer while it stays above twice the latent size (at most 3 layers).
    conv: channels 32, 64 (two stride-2 layers, so 28x28 becomes 7x7); one layer for tiny images.
    recurrent: one recurrent layer of 128 units.
    """
    c, h, w = input_shape
    if arch == "conv":
        return [32, 64] if min(h, w) >= 16 else [32]
    if arch == "recurrent":
        return [128]
    d = c * h * w
    size = min(512, 2 ** int(math.floor(math.log2(max(d - 1, 2)))))
    sizes: list[int] = []
    while size > 2 * latent and len(sizes) < 3:
        sizes.append(size)
        size //= 2
    return sizes or [max(2 * latent, 8)]


#: Units of the dense layer that a conv model puts between its conv layers and the code by default.
DENSE_UNITS = 256
#: The default dense layer is used when the conv layers leave this many feature values (a range).
DENSE_MIN_FEATURES, DENSE_MAX_FEATURES = 2 * DENSE_UNITS, 16384
#: The lower end before format 3 (see FORMAT_VERSION).
DENSE_MIN_FEATURES_V2 = 4 * DENSE_UNITS


def conv_features(input_shape: tuple[int, int, int], hidden: list[int]) -> int:
    """Feature values the stride-2 conv layers `hidden` leave from images of `input_shape`."""
    _, h, w = input_shape
    factor = 2 ** len(hidden)
    return hidden[-1] * (h // factor) * (w // factor)


def default_dense(arch: str, input_shape: tuple[int, int, int], hidden: list[int]) -> list[int]:
    """The dense layers between a conv model's conv layers and its code, when the user gives none.

    One layer of `DENSE_UNITS` (256) when the conv layers leave 512 to 16,384 feature values
    (8 px: 32 x 4 x 4 = 512; 28 px: 64 x 7 x 7 = 3,136; 64 px: 16,384); otherwise none: with
    fewer features the layer would hardly compress, with more it would hold tens of millions of
    weights. The lower end was 1,024 while hidden layers used ReLU: on the 8 px digits the layer
    overfitted then (0.57x PCA-16 became 0.59x); with leaky ReLU it helps there (AE-16 0.54x ->
    0.51x, denoising at gaussian:0.5 +5.87 -> +6.37 dB, means over seeds 0-3, one-off runs of
    robustness.py's cell). Measured with benchmarks/robustness.py at
    the default step budget, AE-16, error as a multiple of PCA-16's on validation images:
    fashion-10k 0.60x -> 0.56x, shapes 0.09x -> 0.07x, strokes 0.51x -> 0.37x, photos 0.85x ->
    0.79x, icons 0.17x -> 0.13x, the 200-image folder 0.29x -> 0.22x. The code layer alone reads thousands of conv features in one
    linear map; the extra layer gives the encoder (and, mirrored, the decoder) a non-linear step
    between the conv features and the code. Other architectures: none.
    """
    if arch != "conv" or not hidden:
        return []
    features = conv_features(input_shape, hidden)
    return [DENSE_UNITS] if DENSE_MIN_FEATURES <= features <= DENSE_MAX_FEATURES else []


@dataclass(frozen=True)
class ModelConfig:
    """What autoencoder to build. Every field is plain JSON data.

    Frozen: change a copy with `dataclasses.replace(cfg, latent=8)`. Lists given for `hidden`,
    `activations` and `input_shape` are kept as tuples (hashable, and nobody can edit them in place);
    `to_dict()` writes them as JSON lists.
    """

    arch: str = field(default="conv", metadata=ui("Type", (
            "How encoder and decoder are built. Dense layers see every pixel at once; convolutional layers share "
            "small filters across the image (fewer parameters, built-in translation structure); recurrent layers "
            "read the image one row at a time as a sequence."),
        accessible="Architecture", choices=labelled(ARCHS, ARCH_LABELS), group="Architecture"))
    kind: str = field(default="ae", metadata=ui("Kind", (
            "What the bottleneck does. Plain: a deterministic code. VAE: the encoder outputs a mean and a variance "
            "and samples the code with the reparameterisation trick, with a KL term pulling codes towards N(0, I) "
            "so you can sample new images. Sparse: only a few code units may be active. Contractive: the code is "
            "made insensitive to small input changes. Adversarial: a second small network (a discriminator) tries "
            "to tell codes from N(0, I) samples while the encoder learns to fool it, which shapes the codes into "
            "the prior without a KL term."),
        choices=labelled(KINDS, KIND_LABELS), group="Bottleneck"))
    input_shape: tuple[int, int, int] = (1, 28, 28)
    latent: int = field(default=16, metadata=ui("Code size", (
            "Number of code units. Smaller than the input (undercomplete) forces the network to compress and keep "
            "only what matters; larger (overcomplete) needs a regulariser (sparsity, noise, contraction) or it can "
            "just copy the input."),
        lo=1, hi=65536, group="Bottleneck"))
    # None: default_hidden(); dense: units, conv: channels, recurrent: units
    hidden: tuple[int, ...] | None = field(default=None, metadata=ui("Hidden sizes", (
            "Layer sizes from the input towards the code, mirrored in the decoder: units for dense layers, channels "
            "for conv layers (each halves the image side), units for the recurrent layer. Leave empty for the "
            "default: halve each layer. Dense only: \"none\" for no hidden layer at all (input, code, output: "
            "one dense layer each way)."),
        widget="int_list", group="Layers"))
    # conv only: dense layers between the conv layers and the code; None: default_dense()
    dense_layers: tuple[int, ...] | None = field(default=None, metadata=ui("Dense layers", (
            "Conv only: units of dense (fully connected) layers between the last conv layer and the code, mirrored "
            "in the decoder; they use the last conv layer's activation. Leave empty for the default: one layer of "
            f"{DENSE_UNITS} units when the conv layers leave {DENSE_MIN_FEATURES:,} to {DENSE_MAX_FEATURES:,} "
            "feature values (28 to 64 px images with two conv layers). \"none\": the code layer reads the conv "
            "features directly."),
        widget="int_list", accessible="Dense layers", group="Layers", placeholder="default",
        enabled_when={"arch": "conv"},
        unavailable="Not available: dense layers between conv layers and the code are for the conv architecture."))
    # used for every hidden layer unless `activations` is given
    activation: str = field(default="leaky_relu", metadata=ui("Activation", (
            "The non-linearity after each hidden layer. Without one, a stack of layers is a single linear map and "
            "the autoencoder can do no better than PCA. Leaky ReLU (the default) passes a fifth of negative values, "
            "so a unit cannot die as a ReLU unit can when training pushes it below zero for every image."),
        choices=labelled(ACTIVATIONS, ACTIVATION_LABELS), group="Layers", enabled_when={"activations": None},
        unavailable="Overridden by the per-layer list below."))
    # one per hidden layer
    activations: tuple[str, ...] | None = field(default=None, metadata=ui("Per layer", (
            "Optional: one activation per hidden layer, separated by commas (e.g. \"relu, tanh\"). Empty: the "
            "activation above for every layer."),
        widget="name_list", accessible="Per-layer activations", group="Layers", placeholder="same for every layer"))
    output: str = field(default="sigmoid", metadata=ui("Output", (
            "The last activation of the decoder. Sigmoid keeps pixels in [0, 1] like the images (and is needed for "
            "binary cross-entropy); linear outputs any value, which suits MSE on unbounded data."),
        accessible="Output activation", choices=labelled(OUTPUTS, OUTPUT_LABELS), group="Output & loss"))
    loss: str = field(default="mse", metadata=ui("Loss", (
            "How reconstructions are scored. MSE: squared pixel differences. BCE: treats each pixel as a "
            "probability, sharper on near-black-and-white images; needs a sigmoid output."),
        choices=labelled(LOSSES, LOSS_LABELS), group="Output & loss"))
    init: str = field(default="he", metadata=ui("Init", (
            "How weights start. He suits ReLU-like activations, Xavier suits tanh and sigmoid; a bad start can make "
            "deep networks train slowly or not at all."),
        accessible="Initialisation", choices=labelled(INITS, INIT_LABELS), group="Layers"))
    dropout: float = field(default=0.0, metadata=ui("Dropout", (
            "Fraction of hidden units randomly switched off during training, a regulariser against memorising the "
            "training images."),
        lo=0.0, hi=0.95, step=0.05, group="Layers"))
    batch_norm: bool = field(default=False, metadata=ui("Batch normalisation", (
            "Normalise each layer's outputs over the batch: usually faster, more stable training; slightly "
            "different behaviour in training and evaluation."),
        group="Layers"))
    # dense only: decoder weights are the transposed encoder weights
    tied: bool = field(default=False, metadata=ui("Tied weights", (
            "Dense only: each hidden decoder layer reuses the matching encoder layer's weight matrix, transposed "
            "(the code layer keeps its own). Fewer weights, and a regulariser. Tied or not, an autoencoder with "
            "linear activations and output learns the same subspace as PCA."),
        group="Options", enabled_when={"arch": "dense"},
        unavailable=("Not available: tied weights need the dense architecture (a transposed conv or recurrent "
                     "layer is not the inverse of its encoder layer).")))
    # greedy layer-wise pretraining before end-to-end fine-tuning
    stacked: bool = field(default=False, metadata=ui("Stacked pretraining", (
            "Greedy layer-wise pretraining: first train each encoder/decoder pair on its own, from the outside in, "
            "then fine-tune the whole network end to end (the classic way deep autoencoders were first trained)."),
        group="Options", enabled_when={"arch": ("dense", "conv")},
        unavailable="Not available for the recurrent architecture, which has a single encoder/decoder pair."))
    # vae: weight on the KL term
    beta: float = field(default=1.0, metadata=ui("β (KL weight)", (
            "β weights the KL term of the VAE. β > 1 pushes codes towards the prior: smoother, more disentangled "
            "latent space but blurrier reconstructions; β < 1 favours sharp reconstructions over a well-organised "
            "latent space."),
        accessible="Beta", lo=0.0, hi=1000.0, step=0.5, group="Bottleneck", visible_when={"kind": "vae"}))
    # sparse: "l1" activity penalty or "kl" to a target activation rho
    sparsity: str = field(default="kl", metadata=ui("Penalty", (
            "How sparsity is measured. KL: the average activation of each code unit is pulled towards the target "
            "rate ρ. L1: the absolute values of the code are penalised, driving most to zero."),
        accessible="Sparsity penalty", choices=labelled(SPARSITY_PENALTIES, SPARSITY_LABELS), group="Bottleneck",
        visible_when={"kind": "sparse"}))
    sparsity_weight: float = field(default=1e-3, metadata=ui("Weight", (
            "Weight of the sparsity penalty. Larger: fewer active code units per image, at some cost in "
            "reconstruction quality."),
        widget="log", accessible="Sparsity weight", lo=0.0, hi=1000.0, group="Bottleneck",
        visible_when={"kind": "sparse"}))
    sparsity_target: float = field(default=0.05, metadata=ui("Target ρ", (
            "ρ, the desired average activation of each code unit (e.g. 0.05 means each unit fires for about 5% of "
            "the images)."),
        accessible="Sparsity target rho", lo=0.0, hi=1.0, step=0.01, group="Bottleneck",
        visible_when={"kind": "sparse", "sparsity": "kl"}))
    contractive_weight: float = field(default=1e-2, metadata=ui("Weight", (
            "Weight of the contractive penalty ‖∂z/∂x‖²: how strongly the code is made insensitive to tiny input "
            "changes, so it follows the data manifold instead of every pixel wiggle."),
        widget="log", accessible="Contractive weight", lo=0.0, hi=1000.0, group="Bottleneck",
        visible_when={"kind": "contractive"}))
    # L2 penalty, reported as its own loss term
    weight_decay: float = field(default=0.0, metadata=ui("Weight decay", "L2 penalty on all weights, reported as its own loss term: a simple guard against overfitting.",
        widget="log", lo=0.0, hi=10.0, group="Output & loss"))
    rnn_cell: str = field(default="lstm", metadata=ui("Cell", (
            "The recurrent unit. LSTM keeps a separate memory cell with gates; GRU is a lighter variant with fewer "
            "parameters that often trains just as well."),
        accessible="Recurrent cell", choices=labelled(RNN_CELLS, RNN_CELL_LABELS), group="Architecture",
        visible_when={"arch": "recurrent"}))
    # vae: each latent dimension's KL counts as at least this many nats in the loss (0: off)
    free_bits: float = field(default=0.0, metadata=ui("Free bits", (
            "VAE only: a floor, in nats, on each code dimension's KL in the loss. Below it a dimension costs the same "
            "whatever it carries, so the optimiser has no reason to squash it onto the prior (against posterior "
            "collapse). 0: off; 0.1 to 0.5 is typical."),
        lo=0.0, hi=1000.0, step=0.05, group="Bottleneck", visible_when={"kind": "vae"}))

    def __post_init__(self) -> None:
        _freeze_lists(self, ("hidden", "dense_layers", "activations", "input_shape"))
        shape = self.input_shape
        if isinstance(shape, tuple) and all(_is_int(v) for v in shape):
            object.__setattr__(self, "input_shape", tuple(int(v) for v in shape))

    # ---- derived -------------------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    @property
    def hidden_sizes(self) -> list[int]:
        """The hidden layer sizes; [] (given explicitly) means no hidden layer: input -> code -> output."""
        return list(self.hidden) if self.hidden is not None else default_hidden(self.arch, self.input_shape, self.latent)

    @property
    def dense_sizes(self) -> list[int]:
        """Units of the dense layers between a conv model's conv layers and its code ([] for other
        architectures, or when there are none)."""
        if self.arch != "conv":
            return []
        if self.dense_layers is not None:
            return list(self.dense_layers)
        return default_dense(self.arch, self.input_shape, self.hidden_sizes)

    @property
    def layer_count(self) -> int:
        """Encoder layers before the code (each has a mirrored decoder layer): the hidden layers plus
        a conv model's dense layers. Stacked pretraining trains these pairs, then the code layer."""
        return len(self.hidden_sizes) + len(self.dense_sizes)

    @property
    def layer_activations(self) -> list[str]:
        if self.activations:
            return list(self.activations)
        return [self.activation] * len(self.hidden_sizes)

    @property
    def completeness(self) -> str:
        """'undercomplete' when the code is smaller than the input, else 'overcomplete'."""
        return "undercomplete" if self.latent < self.input_dim else "overcomplete"

    # ---- validation ----------------------------------------------------------------------
    def problems(self) -> list[str]:
        p: list[str] = _typed_problems(self, MODEL_FIELDS, MODEL_LABELS)
        if p:  # wrong types or absurd sizes: the checks below would not make sense
            return p
        _choice(p, "architecture", self.arch, ARCHS)
        _choice(p, "bottleneck kind", self.kind, KINDS)
        _choice(p, "output", self.output, OUTPUTS)
        _choice(p, "loss", self.loss, LOSSES)
        _choice(p, "initialisation", self.init, INITS)
        _choice(p, "sparsity penalty", self.sparsity, SPARSITY_PENALTIES)
        _choice(p, "recurrent cell", self.rnn_cell, RNN_CELLS)
        c, h, w = (int(v) for v in self.input_shape)
        if c not in (1, 3):
            p.append(f"images must have 1 or 3 channels, got {c}")
        hidden = self.hidden_sizes
        if self.hidden is not None and len(hidden) == 0:  # no hidden layer: one dense layer each way
            if self.arch == "conv":
                p.append("a conv model needs at least one conv layer; for no hidden layer use the dense architecture")
            elif self.arch == "recurrent":
                p.append("a recurrent model needs its recurrent layer: give its units as the hidden size")
            if self.stacked:
                p.append("stacked (layer-wise) pretraining needs at least one hidden layer")
        if self.activations is not None:
            if len(self.activations) != len(hidden):
                p.append(f"give one activation per hidden layer: {len(hidden)} layers, {len(self.activations)} activations")
            for a in self.activations:
                _choice(p, "activation", a, ACTIVATIONS)
        else:
            _choice(p, "activation", self.activation, ACTIVATIONS)
        if self.loss == "bce" and self.output != "sigmoid":
            p.append("binary cross-entropy needs a sigmoid output (pixel values in [0, 1])")
        if self.tied and self.arch != "dense":
            p.append("tied weights are available for the dense architecture only")
        if self.stacked and self.arch == "recurrent":
            p.append("stacked (layer-wise) pretraining is available for dense and conv architectures")
        if self.kind == "sparse" and self.sparsity == "kl" and not 0.0 < self.sparsity_target < 1.0:
            p.append(f"target activation rho must be in (0, 1), got {self.sparsity_target}")
        if self.arch == "conv" and not p:
            factor = 2 ** len(hidden)
            if min(h, w) < factor:  # any larger side works: odd sides are halved down and the decoder pads back
                p.append(
                    f"a conv model with {len(hidden)} stride-2 layer{'s' if len(hidden) != 1 else ''} needs images of "
                    f"at least {factor}x{factor} pixels; {h}x{w} is smaller (use fewer conv layers"
                    + (")" if len(hidden) > 1 else " or the dense architecture)")
                )
        return p

    def warnings(self) -> list[str]:
        """Things that work but are probably not what the user wants (shown, never refused)."""
        w: list[str] = []
        if self.latent >= self.input_dim:
            fix = ("noise, sparsity or a contractive penalty" if self.kind in ("ae", "aae") else
                   "a strong enough penalty")
            w.append(f"the code ({self.latent:,} values) is not smaller than the input ({self.input_dim:,} values): "
                     f"an over-complete autoencoder can learn to copy its input; it needs {fix} to learn structure")
        if self.free_bits > 0 and self.kind != "vae":
            w.append("free bits only affect variational autoencoders (kind vae)")
        if self.dense_layers and self.arch != "conv":
            w.append("dense layers between conv layers and the code are for the conv architecture; this model has none")
        if self.tied and self.arch == "dense" and self.hidden is not None and len(self.hidden) == 0:
            w.append("tied weights change nothing without a hidden layer (the code layer keeps its own weights)")
        return w

    def validate(self) -> "ModelConfig":
        p = self.problems()
        if p:
            raise ConfigError("; ".join(p))
        return self

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("input_shape", "hidden", "dense_layers", "activations"):
            if isinstance(d[k], tuple):
                d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, d, tuple_fields={"input_shape"})


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimiser settings, noise for denoising, split and device. Frozen: change a copy
    with `dataclasses.replace`."""

    epochs: int = field(default=10, metadata=ui("Epochs", "Passes over the training images. More epochs fit the data better, until the validation loss stops falling.",
        lo=1, hi=100000))
    batch_size: int = field(default=128, metadata=ui("Batch", (
            "Images per gradient step. Larger batches give smoother, faster steps per image; smaller ones update "
            "more often and add helpful noise."),
        accessible="Batch size", lo=1, hi=65536, beside="epochs"))
    lr: float = field(default=1e-3, metadata=ui("Learning rate", (
            "Learning rate: the step size of the Adam optimiser. Too high and the loss jumps or becomes NaN; too low "
            "and training crawls. 1e-3 is a good start."),
        widget="log", lo=1e-7, hi=10.0))
    # none | gaussian:SIGMA | saltpepper:P | mask:P
    noise: str = field(default="none", metadata=ui("Noise", (
            "Corrupt the input, but score the output against the clean image: a denoising autoencoder. It must "
            "learn the structure of the images rather than copy pixels, which also lets an overcomplete code learn "
            "something useful."),
        widget="noise", choices=labelled(NOISE_KINDS, NOISE_LABELS)))
    # auto | shift | none: random shifts of the training images (aestudio/core/augment.py)
    augment: str = field(default="auto", metadata=ui("Augmentation", (
            "Shift each training image by up to an eighth of its side (4 px at 28 px) in a random direction of its "
            "own. A small set (under 1,000 "
            "training images, or fewer than four times as many images as each has pixel values) is otherwise memorised: the training "
            "loss falls while the validation loss rises. Auto shifts small sets of images of 16 px or more in runs long "
            "enough to memorise them (epochs x pixel values per image at least 7 x the training images); its entry "
            "says what it does for the data and epochs set now. Validation images are never changed."),
        accessible="Augmentation", choices=labelled(AUGMENTS, AUGMENT_LABELS), advanced=True))
    val_fraction: float = field(default=0.2, metadata=ui("Validation", (
            "Share of the images held out for validation. They are never trained on, so their loss shows how well "
            "the model generalises, and the latent map shows their codes."),
        accessible="Validation fraction", lo=0.01, hi=0.9, step=0.05))
    seed: int = field(default=0, metadata=ui("Seed", "Random seed for the split, the initial weights, shuffling and noise: the same seed repeats a run.",
        lo=0, hi=2**31 - 1, beside="val_fraction"))
    # auto | cpu | cuda | mps
    device: str = field(default="auto", metadata=ui("Device", (
            "Where the network trains. Only devices present on this machine are listed; Auto picks a GPU when "
            "there is one."),
        widget="device", choices=labelled(DEVICES, DEVICE_LABELS)))
    # per layer, for stacked models
    pretrain_epochs: int = field(default=2, metadata=ui("Pretrain epochs", (
            "Stacked models only: epochs spent pretraining each encoder/decoder pair on its own before the "
            "end-to-end fine-tuning."),
        accessible="Pretraining epochs", lo=0, hi=10000, visible_when={"stacked": True}))
    # 0: off
    grad_clip: float = field(default=0.0, metadata=ui("Grad clip", "Rescale gradients whose norm exceeds this value (0: off); steadies training with high learning rates.",
        accessible="Gradient clipping", lo=0.0, hi=1e6, step=0.5))
    # vae: fraction of the run over which the KL weight ramps from 0 to beta (0: off)
    kl_warmup: float = field(default=0.2, metadata=ui("KL warm-up", (
            "VAE only: the share of the run over which the KL weight ramps from 0 up to β (0: off). Starting "
            "without the pull towards the prior lets the code carry information first, against posterior collapse."),
        accessible="KL warm-up", lo=0.0, hi=1.0, step=0.05, visible_when={"kind": "vae"}))
    # fraction of each run, at its end, over which the learning rate falls linearly towards 0 (0: constant)
    lr_decay: float = field(default=0.3, metadata=ui("LR decay", (
            "The last part of the run (this share of its steps) lowers the learning rate step by step towards "
            "zero. Small steps at the end settle the weights in the bottom of the valley the large steps found: "
            "a lower final loss at no extra cost (0: a constant learning rate). Continuing a run starts again "
            "from the full rate."),
        accessible="Learning-rate decay", lo=0.0, hi=1.0, step=0.05, advanced=True))
    # auto | adam (aestudio/core/optim.py)
    optimizer: str = field(default="auto", metadata=ui("Optimizer", (
            "How the weights follow the gradient. Adam scales each weight's step by its own gradient history. "
            "Auto does the same for every weight except convolution kernels, which step along the gradient's "
            "momentum orthogonalised (Muon): every direction the gradient names moves by the same amount, not "
            "just the strongest few. Measured on seven image sets, conv autoencoders reach a lower error in the "
            "same steps (about 3% lower), for about 15% more time per step on a CPU. Dense and recurrent models train "
            "with Adam."),
        accessible="Optimizer", choices=labelled(OPTIMIZERS, OPTIMIZER_LABELS), advanced=True,
        visible_when={"arch": "conv"}))
    # mixed precision: on CUDA bfloat16 where supported, else float16 with loss scaling; on a CPU with
    # bfloat16 instructions (AVX512-BF16, AMX) bfloat16; elsewhere ignored with a note
    amp: bool = field(default=False, metadata=ui("Mixed precision", (
            "Multiply in 16-bit floating point (bfloat16; float16 with loss scaling on older GPUs) while the "
            "weights and losses stay 32-bit: faster on CUDA GPUs and on CPUs with bfloat16 instructions "
            "(AVX512-BF16 or AMX), usually with the same fit. Elsewhere it is ignored, with a note under "
            "the Train button."),
        advanced=True))
    channels_last: bool = False  # channels-last memory for conv models on CUDA

    def problems(self) -> list[str]:
        from .noise import NoiseError, parse_noise

        p: list[str] = _typed_problems(self, TRAIN_FIELDS, TRAIN_LABELS)
        if p:
            return p
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            p.append(f"device must be auto, cpu, cuda or mps, got {self.device!r}")
        if self.augment not in AUGMENTS:
            p.append(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.optimizer not in OPTIMIZERS:
            p.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        try:
            parse_noise(self.noise)
        except NoiseError as e:
            p.append(str(e))
        return p

    def validate(self) -> "TrainConfig":
        p = self.problems()
        if p:
            raise ConfigError("; ".join(p))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, d)


def dumps(model: ModelConfig, train: TrainConfig, **extra: Any) -> str:
    """The run's config.json text, with a format version so old files stay readable."""
    return json.dumps(
        {"format": "aestudio-run", "format_version": FORMAT_VERSION, "model": model.to_dict(), "train": train.to_dict(), **extra},
        indent=2,
    )


def loads(text: str) -> tuple[ModelConfig, TrainConfig, dict[str, Any]]:
    """Parse config.json text. Every field is checked against the schema (aestudio.core.schema);
    a problem raises ConfigError with one message naming the field (e.g. `model.latent`)."""
    depth = json_depth(text.encode("utf-8", "surrogatepass"))
    if depth > MAX_JSON_DEPTH:
        raise ConfigError(f"config is nested {depth:,} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"config is not valid JSON: {e}") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ConfigError("config is nested too deeply") from None
    return from_json(d)


def from_json(d: Any) -> tuple[ModelConfig, TrainConfig, dict[str, Any]]:
    """The configs and run-level fields of a parsed config.json object, validated field by field."""
    from .schema import META_FIELDS

    if not isinstance(d, dict) or d.get("format") != "aestudio-run":
        raise ConfigError("not an aestudio run config (missing \"format\": \"aestudio-run\")")
    version = d.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise ConfigError(f"config format version {version} is newer than this aestudio understands "
                          f"({FORMAT_VERSION}); update aestudio to open it")
    from .schema import Field

    p = field_problem("format_version", version, Field("int", 1, FORMAT_VERSION))
    if p:
        raise ConfigError(p)
    for key in ("model", "train"):
        if not isinstance(d.get(key, {}), dict):
            raise ConfigError(f"{key} must be an object, got {json.dumps(d.get(key))[:60]}")
    model_d, train_d = d.get("model", {}), d.get("train", {})
    if version < 2 and "dense_layers" not in model_d:  # built before conv models had dense layers
        model_d = {**model_d, "dense_layers": []}
    for section, fields, values, cls in (("model", MODEL_FIELDS, model_d, ModelConfig),
                                         ("train", TRAIN_FIELDS, train_d, TrainConfig)):
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown {section} field(s): {', '.join(unknown)}")
        present = {k: v for k, v in fields.items() if k in values}
        problems = check_fields(values, present, f"{section}.")
        if problems:
            raise ConfigError(problems[0])
    extra = {k: v for k, v in d.items() if k not in ("format", "format_version", "model", "train")}
    present = {k: v for k, v in META_FIELDS.items() if k in extra}
    problems = check_fields(extra, present)
    if problems:
        raise ConfigError(problems[0])
    model = ModelConfig.from_dict(model_d)
    if version < 3 and model.arch == "conv" and model.dense_layers is None and model.hidden_sizes \
            and conv_features(model.input_shape, model.hidden_sizes) < DENSE_MIN_FEATURES_V2:
        model = dataclasses.replace(model, dense_layers=[])  # built when such a model had no dense layer
    if version < 4 and "optimizer" not in train_d:  # trained before Muon: with Adam alone
        train_d = {**train_d, "optimizer": "adam"}
    return model, TrainConfig.from_dict(train_d), extra


# ---- helpers -------------------------------------------------------------------------------
def _choice(p: list[str], what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        p.append(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


MODEL_LABELS = {
    "input_shape": "input shape", "latent": "latent size", "hidden": "hidden sizes", "dense_layers": "dense layers",
    "batch_norm": "batch norm",
    "sparsity_weight": "sparsity weight", "sparsity_target": "target activation rho",
    "contractive_weight": "contractive weight", "weight_decay": "weight decay", "rnn_cell": "recurrent cell",
    "free_bits": "free bits",
}
TRAIN_LABELS = {
    "batch_size": "batch size", "lr": "learning rate", "val_fraction": "validation fraction",
    "pretrain_epochs": "pretraining epochs", "grad_clip": "gradient clipping", "lr_decay": "learning-rate decay",
    "kl_warmup": "KL warm-up",
}


def _typed_problems(obj: Any, fields: dict, labels: dict[str, str]) -> list[str]:
    """Schema problems (types, ranges, finiteness) with the studio's names for the fields."""
    out = []
    for name, spec in fields.items():
        problem = field_problem(labels.get(name, name), getattr(obj, name, None), spec)
        if problem:
            out.append(problem)
    return out


def _from_dict(cls: type, d: dict[str, Any], tuple_fields: set[str] = frozenset()) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__} must be a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for k, v in d.items():
        if k in tuple_fields:
            if not isinstance(v, (list, tuple)):
                raise ConfigError(f"{k} must be a list, got {json.dumps(v)[:60] if _jsonable(v) else type(v).__name__}")
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or type(v).__module__ == "numpy" and hasattr(v, "dtype") \
        and v.dtype.kind in "iu"


def _freeze_lists(obj: Any, names: tuple[str, ...]) -> None:
    """Lists given to a frozen config become tuples (nothing else is touched: validation reports it)."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, list):
            object.__setattr__(obj, name, tuple(value))


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


__all__ = [
    "ACTIVATIONS", "ARCHS", "INITS", "KINDS", "PRIOR_KINDS", "LOSSES", "OUTPUTS", "RNN_CELLS", "SPARSITY_PENALTIES",
    "ConfigError", "ModelConfig", "TrainConfig", "default_hidden", "dumps", "from_json", "loads",
]
