"""The autoencoder zoo, built from a `ModelConfig`.

Every model has the same shape, so the studio can treat them alike:

    encoder blocks  ->  code layer (z, or mu/logvar for a VAE)  ->  decoder blocks (mirrored)

A dense model may have no hidden layer (`hidden=[]`): input -> code -> output, one dense layer
each way; with `output="linear"` that is a linear autoencoder, which learns PCA's subspace. An
adversarial autoencoder ("aae") also holds `discriminator`, a small MLP over codes that
`adversarial.AdversarialStep` trains against N(0, I) samples; it is saved with the other weights.

`encode(x)` returns a `Code`; `decode(z)` maps codes back to images in [0, 1] (or unbounded
for a linear output).

Why models do not collapse (measured on sparse strokes, where the old init did): the decoder's
last layer adds a per-pixel `output_bias` that training starts at the mean training image
(`init_output_bias`), and that layer's weights start small. The untrained model therefore
already predicts the mean image, the best constant, instead of a flat 0.5 grey. Without that,
the first hundred Adam steps spend their effort dragging every pixel of a mostly-black set
towards 0 through the hidden ReLUs, which drives them negative (dead) and saturates the
sigmoid: the output is a constant that no gradient can leave. Transposed convolutions are also
initialised with their true fan-in (in_channels x kernel area / stride^2), which PyTorch's
helpers get wrong for them.

The encoder also sees standardised images: `input_mean` (per pixel) is subtracted and the
result multiplied by `input_scale` (one number), both buffers set from the training data by
`init_data_stats`. Raw pixels are all positive, so Adam's first step, which moves every weight
by about the learning rate, shifts each unit of a wide dense layer coherently by
lr x fan-in x mean pixel: about 2 for 2,352 RGB inputs at lr 2e-3. On photographs that blew the
dense sparse model's sigmoid code into saturation within five steps (a constant output);
centred inputs cancel the shift. Encoder block i and decoder block i are mirror images, which is what
greedy layer-wise pretraining (stacked autoencoders) trains one pair at a time. A conv model's
dense layers (`ModelConfig.dense_sizes`) are blocks too: after the conv blocks in the encoder,
before them in the decoder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig


@dataclass
class Code:
    """An encoding. For deterministic models mu is z and logvar is None."""

    z: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor | None = None


def make_activation(name: str) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(0.2),
        "elu": nn.ELU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "linear": nn.Identity,  # no non-linearity: with it everywhere the autoencoder is a linear map
    }[name]()


#: Hidden units of each of the AAE discriminator's two hidden layers.
DISCRIMINATOR_WIDTH = 128


def make_discriminator(latent: int, width: int = DISCRIMINATOR_WIDTH) -> nn.Sequential:
    """The adversarial autoencoder's discriminator: a small MLP scoring a code (logit of "drawn from the prior")."""
    return nn.Sequential(nn.Linear(latent, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                         nn.Linear(width, 1))


class TiedLinear(nn.Module):
    """A decoder layer that reuses an encoder layer's weight matrix, transposed."""

    def __init__(self, source: nn.Linear):
        super().__init__()
        self.source = [source]  # a list, so the shared weight is not registered twice
        self.bias = nn.Parameter(torch.zeros(source.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.source[0].weight.t(), self.bias)


class RowEncoder(nn.Module):
    """Reads an image row by row as a sequence; returns the last hidden state."""

    def __init__(self, cell: str, in_features: int, hidden: int):
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(in_features, hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # one row per time step
        _, state = self.rnn(seq)
        last = state[0] if isinstance(state, tuple) else state
        return last[-1]


class RowDecoder(nn.Module):
    """Unrolls a vector into an image one row per time step."""

    def __init__(self, cell: str, hidden: int, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape
        c, h, w = shape
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(hidden, hidden, batch_first=True)
        self.row = nn.Linear(hidden, c * w)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        seq = v.unsqueeze(1).expand(-1, h, -1).contiguous()
        out, _ = self.rnn(seq)
        rows = self.row(out)  # (B, H, C*W)
        return rows.reshape(-1, h, c, w).permute(0, 2, 1, 3)


class Autoencoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.enc_blocks = nn.ModuleList()
        self.dec_blocks = nn.ModuleList()  # dec_blocks[i] mirrors enc_blocks[i]; applied in reverse
        builder = {"dense": self._build_dense, "conv": self._build_conv, "recurrent": self._build_recurrent}[config.arch]
        feat_dim, self.feat_shape = builder()
        code_out = 2 * config.latent if config.kind == "vae" else config.latent
        self.to_code = nn.Linear(feat_dim, code_out)
        if self.enc_blocks:
            self.from_code = nn.Sequential(nn.Linear(config.latent, feat_dim), make_activation(config.layer_activations[-1]))
        else:  # no hidden layer: code -> pixels in one dense layer, like the outermost decoder layer
            self.from_code = nn.Sequential(nn.Linear(config.latent, feat_dim))
        if config.kind == "aae":  # the adversarial autoencoder's critic of codes (adversarial.py trains it)
            self.discriminator = make_discriminator(config.latent)
        # per-pixel offset of the output logits; `init_output_bias` starts it at the mean image
        self.output_bias = nn.Parameter(torch.zeros(tuple(config.input_shape)))
        # input standardisation, set from the training data by `init_data_stats` (identity until then)
        self.register_buffer("input_mean", torch.zeros(tuple(config.input_shape)))
        self.register_buffer("input_scale", torch.ones(()))
        self._init_weights()

    # ---- construction ----------------------------------------------------------------------
    def _block(self, layer: nn.Module, width: int, act: str, conv: bool = False) -> nn.Sequential:
        cfg = self.config
        mods: list[nn.Module] = [layer]
        if cfg.batch_norm:
            mods.append(nn.BatchNorm2d(width) if conv else nn.BatchNorm1d(width))
        mods.append(make_activation(act))
        if cfg.dropout > 0:
            mods.append(nn.Dropout2d(cfg.dropout) if conv else nn.Dropout(cfg.dropout))
        return nn.Sequential(*mods)

    def _build_dense(self) -> tuple[int, tuple[int, ...]]:
        cfg = self.config
        sizes = [cfg.input_dim, *cfg.hidden_sizes]
        acts = cfg.layer_activations
        enc_linears = []
        for i in range(len(sizes) - 1):
            lin = nn.Linear(sizes[i], sizes[i + 1])
            enc_linears.append(lin)
            block = self._block(lin, sizes[i + 1], acts[i])
            if i == 0:
                block = nn.Sequential(nn.Flatten(), *block)
            self.enc_blocks.append(block)
        for i in range(len(sizes) - 1):
            lin = TiedLinear(enc_linears[i]) if cfg.tied else nn.Linear(sizes[i + 1], sizes[i])
            if i == 0:  # the outermost decoder layer produces pixels: no activation here
                self.dec_blocks.append(nn.Sequential(lin, nn.Unflatten(1, tuple(cfg.input_shape))))
            else:
                self.dec_blocks.append(self._block(lin, sizes[i], acts[i - 1]))
        if len(sizes) == 1:  # no hidden layer: the decoder's one layer outputs the image itself
            return sizes[-1], tuple(cfg.input_shape)
        return sizes[-1], (sizes[-1],)

    def _build_conv(self) -> tuple[int, tuple[int, ...]]:
        cfg = self.config
        c, h, w = cfg.input_shape
        chans = [c, *cfg.hidden_sizes]
        acts = cfg.layer_activations
        for i in range(len(chans) - 1):
            conv = nn.Conv2d(chans[i], chans[i + 1], kernel_size=4, stride=2, padding=1)
            self.enc_blocks.append(self._block(conv, chans[i + 1], acts[i], conv=True))
        # each stride-2 conv halves a side, rounding down (15 -> 7); the mirrored transposed conv
        # doubles it and adds the row or column that rounding dropped (output_padding), so any side fits
        sides = [(h, w)]
        for _ in range(len(chans) - 1):
            sides.append((sides[-1][0] // 2, sides[-1][1] // 2))
        for i in range(len(chans) - 1):
            extra = (sides[i][0] - 2 * sides[i + 1][0], sides[i][1] - 2 * sides[i + 1][1])
            deconv = nn.ConvTranspose2d(chans[i + 1], chans[i], kernel_size=4, stride=2, padding=1, output_padding=extra)
            if i == 0:
                self.dec_blocks.append(nn.Sequential(deconv))
            else:
                self.dec_blocks.append(self._block(deconv, chans[i], acts[i - 1], conv=True))
        factor = 2 ** (len(chans) - 1)
        shape = (chans[-1], h // factor, w // factor)
        feat = shape[0] * shape[1] * shape[2]
        # dense layers between the conv features and the code (config.default_dense), mirrored
        sizes = [feat, *cfg.dense_sizes]
        for i in range(len(sizes) - 1):
            enc = self._block(nn.Linear(sizes[i], sizes[i + 1]), sizes[i + 1], acts[-1])
            dec = self._block(nn.Linear(sizes[i + 1], sizes[i]), sizes[i], acts[-1])
            if i == 0:
                enc = nn.Sequential(nn.Flatten(), *enc)
                dec = nn.Sequential(*dec, nn.Unflatten(1, shape))
            self.enc_blocks.append(enc)
            self.dec_blocks.append(dec)
        if len(sizes) > 1:
            return sizes[-1], (sizes[-1],)
        return feat, shape

    def _build_recurrent(self) -> tuple[int, tuple[int, ...]]:
        cfg = self.config
        c, h, w = cfg.input_shape
        units = cfg.hidden_sizes[0]
        self.enc_blocks.append(RowEncoder(cfg.rnn_cell, c * w, units))
        self.dec_blocks.append(RowDecoder(cfg.rnn_cell, units, cfg.input_shape))
        return units, (units,)

    def _init_weights(self) -> None:
        he = self.config.init == "he"
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                # weight is (in, out, k, k); each output pixel sums in * k*k / stride^2 inputs
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1] / (m.stride[0] * m.stride[1])
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] / (m.stride[0] * m.stride[1])
                std = math.sqrt(2.0 / fan_in) if he else math.sqrt(2.0 / (fan_in + fan_out))
                nn.init.normal_(m.weight, 0.0, std)
            elif isinstance(m, (nn.Linear, nn.Conv2d)):
                if he:
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(m.weight)
            else:
                continue
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        # The layer that produces pixels has no ReLU after it: start it small, so the untrained
        # output is close to `output_bias` (the mean image once training initialises it).
        last = self.dec_blocks[0] if len(self.dec_blocks) else self.from_code
        layer = last.row if isinstance(last, RowDecoder) else last[0]
        with torch.no_grad():
            if isinstance(layer, TiedLinear):
                pass  # shares the encoder's weights; its own bias is already zero
            else:
                layer.weight.mul_(0.1)
        # keep the VAE's initial log-variance small so early samples are not pure noise
        if self.config.kind == "vae":
            nn.init.xavier_uniform_(self.to_code.weight, gain=0.1)
        # A sparse model's sigmoid code starts in its sensitive middle. Started at full scale, Adam's
        # first steps pushed the code units of the dense sparse model on RGB photo patches into
        # saturation, where no gradient reaches the encoder (its gradient norm read 0.0 at most epoch
        # ends). benchmarks/robustness.py, photos, sparse16: 0.40x the mean image's error, and a
        # collapse to a constant (1.00x) with random shifts; from a small start 0.10x and 0.08x.
        if self.config.kind == "sparse" and self.config.sparsity == "kl":
            nn.init.xavier_uniform_(self.to_code.weight, gain=0.1)
            # ... and at the activation its penalty asks for (sigmoid(bias) = rho), not at 0.5. From 0.5,
            # behind leaky ReLU, its code units drifted into saturation near 1 and training stalled on the
            # RGBA icons of benchmarks/robustness.py (0.77-0.78x the mean image's error at seeds 0, 1, 2);
            # started at rho, 0.075x and 0.064x at seeds 0 and 1 (ReLU from 0.5: 0.11x).
            rho = float(self.config.sparsity_target)
            nn.init.constant_(self.to_code.bias, math.log(rho / (1.0 - rho)))

    @torch.no_grad()
    def init_data_stats(self, images: torch.Tensor) -> None:
        """Standardise inputs and start the output at the mean image, from training images (N, C, H, W)."""
        mean = images.mean(0)
        self.input_mean.copy_(mean.to(self.input_mean.device))
        std = float((images - mean).pow(2).mean().sqrt())
        self.input_scale.fill_(1.0 / max(std, 1e-3))
        self.init_output_bias(mean)

    @torch.no_grad()
    def init_output_bias(self, mean_image: torch.Tensor) -> None:
        """Start the output at `mean_image` (C, H, W in [0, 1]): the best constant prediction.

        For a sigmoid output the offset is the logit of the mean, clipped to [0.01, 0.99] so that
        pixels that are always 0 or 1 do not start saturated.
        """
        m = mean_image.detach().to(self.output_bias.device, torch.float32).reshape(self.output_bias.shape)
        if self.config.output == "sigmoid":
            m = m.clamp(0.01, 0.99)
            m = torch.log(m / (1.0 - m))
        self.output_bias.copy_(m)

    # ---- the forward path -----------------------------------------------------------------
    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) * self.input_scale

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.normalize_input(x)
        for block in self.enc_blocks:
            h = block(h)
        return h.flatten(1)

    def code_from_features(self, h: torch.Tensor) -> Code:
        cfg = self.config
        out = self.to_code(h)
        if cfg.kind == "vae":
            out = out.float()  # under mixed precision: mean, log-variance, exp and KL in float32
            mu, logvar = out.chunk(2, dim=1)
            logvar = logvar.clamp(-10.0, 10.0)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return Code(z, mu, logvar)
        if cfg.kind == "sparse":
            out = torch.sigmoid(out) if cfg.sparsity == "kl" else F.relu(out)
        return Code(out, out)

    def encode(self, x: torch.Tensor) -> Code:
        return self.code_from_features(self.features(x))

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """Encoder and decoder parameters: every parameter but the AAE discriminator's."""
        critic = {id(p) for p in self.discriminator.parameters()} if hasattr(self, "discriminator") else set()
        return [p for p in self.parameters() if id(p) not in critic]

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_code(z).reshape(z.shape[0], *self.feat_shape)
        for block in reversed(self.dec_blocks):
            h = block(h)
        return h + self.output_bias

    def output_activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.config.output == "sigmoid" else logits

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x).z)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def build_model(config: ModelConfig) -> Autoencoder:
    return Autoencoder(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class LayerRow:
    name: str
    output_shape: tuple[int, ...]
    params: int


@dataclass
class ModelSummary:
    params: int
    rows: list[LayerRow]
    input_dim: int
    latent: int
    completeness: str  # "undercomplete" | "overcomplete"

    def text(self) -> str:
        w = max(len(r.name) for r in self.rows)
        lines = [f"{r.name:<{w}}  {'x'.join(map(str, r.output_shape)):>12}  {r.params:>10,}" for r in self.rows]
        ratio = self.input_dim / self.latent
        lines.append(f"{self.params:,} parameters; code {self.latent} vs input {self.input_dim} "
                     f"({self.completeness}, {ratio:.1f}x compression)" if self.latent < self.input_dim else
                     f"{self.params:,} parameters; code {self.latent} vs input {self.input_dim} ({self.completeness})")
        return "\n".join(lines)


def summarize(config: ModelConfig) -> ModelSummary:
    """Parameter count and a layer-by-layer shape summary, from one dummy forward pass."""
    model = Autoencoder(config).eval()
    rows: list[LayerRow] = []
    seen: set[int] = set()

    def own_params(m: nn.Module) -> int:
        n = 0
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
        return n

    with torch.no_grad():
        h = torch.zeros(2, *config.input_shape)
        rows.append(LayerRow("input", tuple(h.shape[1:]), 0))
        for i, block in enumerate(model.enc_blocks):
            h = block(h)
            rows.append(LayerRow(f"encoder {i + 1}", tuple(h.shape[1:]), own_params(block)))
        code = model.code_from_features(h.flatten(1))
        label = "code (mu, log var)" if config.kind == "vae" else "code"
        rows.append(LayerRow(label, tuple(code.z.shape[1:]), own_params(model.to_code)))
        g = model.from_code(code.z).reshape(2, *model.feat_shape)
        rows.append(LayerRow("decoder in", tuple(g.shape[1:]), own_params(model.from_code)))
        for i, block in reversed(list(enumerate(model.dec_blocks))):
            g = block(g)
            rows.append(LayerRow(f"decoder {len(model.dec_blocks) - i}", tuple(g.shape[1:]), own_params(block)))
        if hasattr(model, "discriminator"):
            rows.append(LayerRow("discriminator (codes)", (1,), own_params(model.discriminator)))
    return ModelSummary(count_parameters(model), rows, config.input_dim, config.latent, config.completeness)
