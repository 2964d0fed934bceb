"""Show the code: a standalone, readable PyTorch file with a run's exact model.

    text = generate_code(model_config)        # the text of model.py
    # python model.py RUN_FOLDER  -> loads RUN_FOLDER/weights.safetensors strictly, prints the parameter count

The file defines one `Autoencoder(nn.Module)` (plus the few small layer classes it needs: a tied
linear layer, the row-reading recurrent encoder and decoder) and needs nothing but torch and
safetensors. Its parameter and buffer names are exactly those of aestudio's model, so the run's
`weights.safetensors` loads with `strict=True`, and its `forward` computes what aestudio's does.

How it is written: aestudio's model is built from the config and walked layer by layer; each
layer is written as the constructor call that makes it (`nn.Conv2d(1, 32, kernel_size=4, ...)`),
with the shape it produces in a comment. A layer type this module does not know is refused with
a `CodegenError` rather than guessed. Before the text is returned it is executed and checked:
loading a freshly built aestudio model's weights strictly and giving the same output on a batch
of random images (`verify=True`), so a change in aestudio's models that this writer does not
follow fails loudly instead of printing code that computes something else.
"""
from __future__ import annotations

import math
import textwrap
from typing import Any

import torch
from torch import nn

from .config import ConfigError, ModelConfig
from .models import Autoencoder, RowDecoder, RowEncoder, TiedLinear

#: Kinds whose code path (`code_from_features`) this writer knows.
KNOWN_KINDS = ("ae", "vae", "sparse", "contractive", "aae")
TOP_MODULES = ("enc_blocks", "dec_blocks", "to_code", "from_code", "discriminator")
TOP_PARAMS = ("output_bias",)
TOP_BUFFERS = ("input_mean", "input_scale")
VERIFY_TOLERANCE = 1e-5


class CodegenError(ConfigError):
    """The model has something this writer cannot express. The message is meant for users (a
    ConfigError, so the command line prints it as one line and exits 2)."""


# ---- helper layers, written into the file when used ------------------------------------------------
HELPERS = {
    "TiedLinear": '''
class TiedLinear(nn.Module):
    """A decoder layer with no weight of its own: it multiplies by the transpose of an encoder
    layer's weight matrix (tied weights) and adds its own bias."""

    def __init__(self, source: nn.Linear):
        super().__init__()
        self.source = [source]  # kept in a list so the shared weight is not registered twice
        self.bias = nn.Parameter(torch.zeros(source.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.source[0].weight.t(), self.bias)
''',
    "RowEncoder": '''
class RowEncoder(nn.Module):
    """Reads an image one pixel row per time step and returns the recurrent layer's last hidden state."""

    def __init__(self, cell: str, in_features: int, hidden: int):
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(in_features, hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (batch, rows, channels * width)
        _, state = self.rnn(rows)
        last = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (hidden, cell)
        return last[-1]
''',
    "RowDecoder": '''
class RowDecoder(nn.Module):
    """Feeds the same vector at every time step and turns each step's output into one pixel row."""

    def __init__(self, cell: str, hidden: int, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape
        c, h, w = shape
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(hidden, hidden, batch_first=True)
        self.row = nn.Linear(hidden, c * w)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        steps = v.unsqueeze(1).expand(-1, h, -1).contiguous()  # the vector, once per row
        out, _ = self.rnn(steps)
        rows = self.row(out)  # (batch, rows, channels * width)
        return rows.reshape(-1, h, c, w).permute(0, 2, 1, 3)
''',
}


# ---- layers as constructor calls -------------------------------------------------------------------------
def _num(v: Any) -> str:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else f"float({str(v)!r})"
    return repr(v)


def _pair(v: Any) -> str:
    """An int for a square kernel/stride/padding, else the tuple."""
    if isinstance(v, tuple) and len(set(v)) == 1:
        return repr(v[0])
    return repr(v)


class _Writer:
    def __init__(self, model: Autoencoder):
        self.model = model
        self.helpers: list[str] = []
        self.paths = {id(m): name for name, m in model.named_modules()}

    def _need(self, helper: str) -> None:
        if helper not in self.helpers:
            self.helpers.append(helper)

    def _ref(self, module: nn.Module) -> str:
        """`self.enc_blocks[0][1]` for a module of the model."""
        path = self.paths.get(id(module))
        if path is None:
            raise CodegenError("a tied layer shares its weights with a layer outside the model")
        out = "self"
        for part in path.split("."):
            out += f"[{part}]" if part.isdigit() else f".{part}"
        return out

    def expr(self, m: nn.Module) -> str:
        t = type(m)
        if t is nn.Sequential:
            return "nn.Sequential(" + ", ".join(self.expr(c) for c in m) + ")"
        if t is nn.Linear:
            return f"nn.Linear({m.in_features}, {m.out_features}{'' if m.bias is not None else ', bias=False'})"
        if t in (nn.Conv2d, nn.ConvTranspose2d):
            args = [str(m.in_channels), str(m.out_channels), f"kernel_size={_pair(m.kernel_size)}"]
            if m.stride != (1, 1):
                args.append(f"stride={_pair(m.stride)}")
            if m.padding != (0, 0):
                args.append(f"padding={_pair(m.padding)}")
            if t is nn.ConvTranspose2d and m.output_padding != (0, 0):
                args.append(f"output_padding={_pair(m.output_padding)}")
            if m.dilation != (1, 1) or m.groups != 1 or m.padding_mode != "zeros":
                raise CodegenError(f"cannot write a {t.__name__} with dilation, groups or a padding mode")
            if m.bias is None:
                args.append("bias=False")
            return f"nn.{t.__name__}({', '.join(args)})"
        if t in (nn.BatchNorm1d, nn.BatchNorm2d):
            args = [str(m.num_features)]
            if m.eps != 1e-5:
                args.append(f"eps={_num(m.eps)}")
            if m.momentum != 0.1:
                args.append(f"momentum={_num(m.momentum)}")
            if not m.affine or not m.track_running_stats:
                raise CodegenError("cannot write a batch norm layer without affine parameters or running statistics")
            return f"nn.{t.__name__}({', '.join(args)})"
        if t in (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.Flatten) and not _odd_flatten(m):
            return f"nn.{t.__name__}()"
        if t is nn.LeakyReLU:
            return f"nn.LeakyReLU({_num(m.negative_slope)})"
        if t is nn.ELU:
            return "nn.ELU()" if m.alpha == 1.0 else f"nn.ELU({_num(m.alpha)})"
        if t in (nn.Dropout, nn.Dropout2d):
            return f"nn.{t.__name__}({_num(m.p)})"
        if t is nn.Unflatten:
            return f"nn.Unflatten({m.dim}, {tuple(int(v) for v in m.unflattened_size)!r})"
        if t is TiedLinear:
            self._need("TiedLinear")
            return f"TiedLinear({self._ref(m.source[0])})"
        if t is RowEncoder:
            self._need("RowEncoder")
            return f"RowEncoder({_cell(m.rnn)!r}, {m.rnn.input_size}, {m.rnn.hidden_size})"
        if t is RowDecoder:
            self._need("RowDecoder")
            return f"RowDecoder({_cell(m.rnn)!r}, {m.rnn.hidden_size}, {tuple(int(v) for v in m.shape)!r})"
        raise CodegenError(f"cannot write code for a {t.__module__}.{t.__name__} layer (this version of "
                           "`aestudio code` does not know it)")


def _odd_flatten(m: nn.Module) -> bool:
    return type(m) is nn.Flatten and (m.start_dim, m.end_dim) != (1, -1)


def _cell(rnn: nn.Module) -> str:
    if type(rnn) is nn.LSTM:
        return "lstm"
    if type(rnn) is nn.GRU:
        return "gru"
    raise CodegenError(f"cannot write code for a {type(rnn).__name__} recurrent layer")


def _shape(t: torch.Size | tuple) -> str:
    return "x".join(str(int(v)) for v in t)


def _check_known(model: Autoencoder, config: ModelConfig) -> None:
    if config.kind not in KNOWN_KINDS:
        raise CodegenError(f"`aestudio code` cannot write a model of kind {config.kind!r} yet "
                           f"(it knows {', '.join(KNOWN_KINDS)})")
    children = [name for name, _ in model.named_children()]
    unknown = [n for n in children if n not in TOP_MODULES]
    params = [n for n, _ in model.named_parameters(recurse=False) if n not in TOP_PARAMS]
    buffers = [n for n, _ in model.named_buffers(recurse=False) if n not in TOP_BUFFERS]
    if unknown or params or buffers:
        raise CodegenError(f"`aestudio code` does not know the model part(s) {', '.join(unknown + params + buffers)}")


LINE = 110


def _item(w: _Writer, block: nn.Module, comment: str, indent: str) -> list[str]:
    """A list item: on one line with its comment when short, else the comment above and one layer per line."""
    one = f"{indent}{w.expr(block)},"
    if len(one) + len(comment) + 4 <= LINE or type(block) is not nn.Sequential:
        return [f"{one}  # {comment}" if comment else one]
    lines = [f"{indent}# {comment}"] if comment else []
    lines.append(f"{indent}nn.Sequential(")
    lines += [f"{indent}    {w.expr(layer)}," for layer in block]
    lines.append(f"{indent}),")
    return lines


def _assign(w: _Writer, name: str, module: nn.Module, comment: str, indent: str) -> str:
    one = f"{indent}self.{name} = {w.expr(module)}"
    if len(one) + len(comment) + 4 <= LINE or type(module) is not nn.Sequential:
        return f"{one}  # {comment}\n" if comment else one + "\n"
    lines = ([f"{indent}# {comment}"] if comment else []) + [f"{indent}self.{name} = nn.Sequential("]
    lines += [f"{indent}    {w.expr(layer)}," for layer in module]
    lines.append(f"{indent})")
    return "\n".join(lines) + "\n"


def _module_list(w: _Writer, name: str, blocks: nn.ModuleList, comments: list[str], indent: str, note: str) -> str:
    if len(blocks) == 0:
        return f"{indent}self.{name} = nn.ModuleList()  # no hidden layer: the code layers alone\n"
    lines = [f"{indent}# {note}", f"{indent}self.{name} = nn.ModuleList(["]
    for block, comment in zip(blocks, comments):
        lines += _item(w, block, comment, indent + "    ")
    lines.append(f"{indent}])")
    return "\n".join(lines) + "\n"


ARCH_WORDS = {"dense": "dense (fully connected)", "conv": "convolutional", "recurrent": "recurrent (row by row)"}
KIND_WORDS = {"ae": "plain", "vae": "variational", "sparse": "sparse", "contractive": "contractive",
              "aae": "adversarial"}


def generate_code(config: ModelConfig, *, verify: bool = True) -> str:
    """The text of a standalone model.py for `config` (see the module documentation).

    Raises CodegenError for a model this writer cannot express, or (with `verify`) whose written
    code would not reproduce aestudio's model."""
    config.validate()
    with torch.random.fork_rng(devices=[]):  # building the model must not move the caller's random state
        torch.manual_seed(0)
        model = Autoencoder(config).eval()
    _check_known(model, config)
    w = _Writer(model)
    shapes = _shapes(model, config)
    c, h, wd = (int(v) for v in config.input_shape)
    cfg = config
    ind = " " * 8

    enc_comments = [f"{_shape(a)} -> {_shape(b)}" for a, b in shapes["enc"]]
    dec_comments = []
    n_dec = len(model.dec_blocks)
    for i, (a, b) in enumerate(shapes["dec"]):
        order = "applied last" if i == 0 else ("applied first" if i == n_dec - 1 else "")
        dec_comments.append(f"{_shape(a)} -> {_shape(b)}" + (f" ({order})" if order else ""))

    body = []
    body.append(f"{ind}# The encoder sees standardised images, (x - input_mean) * input_scale; both are set\n"
                f"{ind}# from the training images and saved with the weights.\n"
                f"{ind}self.register_buffer(\"input_mean\", torch.zeros({c}, {h}, {wd}))\n"
                f"{ind}self.register_buffer(\"input_scale\", torch.ones(()))\n")
    body.append(_module_list(w, "enc_blocks", model.enc_blocks, enc_comments, ind, "encoder, from the image inwards"))
    code_note = (f"features -> mean and log-variance of a {cfg.latent}-dimensional code" if cfg.kind == "vae"
                 else f"features -> {cfg.latent}-dimensional code")
    body.append(_assign(w, "to_code", model.to_code, code_note, ind))
    body.append(_assign(w, "from_code", model.from_code, f"code -> {_shape(shapes['from_code'])}", ind))
    body.append(f"{ind}self.feature_shape = {tuple(int(v) for v in model.feat_shape)!r}  # what the decoder blocks start from\n")
    body.append(_module_list(w, "dec_blocks", model.dec_blocks, dec_comments, ind,
                             "decoder: dec_blocks[i] mirrors enc_blocks[i]; they run in reverse order"))
    body.append(f"{ind}# Per-pixel offset of the output logits (training starts it at the mean training image).\n"
                f"{ind}self.output_bias = nn.Parameter(torch.zeros({c}, {h}, {wd}))\n")
    if hasattr(model, "discriminator"):
        body.append(f"{ind}# Adversarial autoencoder: scores a code (logit that it was drawn from the prior). It\n"
                    f"{ind}# shapes the codes during training only; encode and decode do not use it.\n"
                    + _assign(w, "discriminator", model.discriminator, "", ind))

    if cfg.kind == "vae":
        code_fn = f'''
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, {c}, {h}, {wd}) in [0, 1] -> (mean, log-variance) of the code, each (N, {cfg.latent})."""
        out = self.to_code(self.features(x))
        mu, logvar = out.chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions. Training samples a code around the mean; evaluation decodes the mean."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z)
'''
    else:
        if cfg.kind == "sparse":
            act = ("torch.sigmoid(self.to_code(self.features(x)))  # activations in (0, 1), pushed towards the "
                   "target rate" if cfg.sparsity == "kl" else
                   "F.relu(self.to_code(self.features(x)))  # non-negative codes, pushed towards zero")
        else:
            act = "self.to_code(self.features(x))"
        code_fn = f'''
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, {c}, {h}, {wd}) in [0, 1] -> codes (N, {cfg.latent})."""
        return {act}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions of images (N, {c}, {h}, {wd}) in [0, 1]."""
        return self.decode(self.encode(x))
'''
    out_act = "torch.sigmoid(logits)" if cfg.output == "sigmoid" else "logits  # linear output: no squashing"
    methods = f'''
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output, flattened to (N, features)."""
        h = (x - self.input_mean) * self.input_scale
        for block in self.enc_blocks:
            h = block(h)
        return h.flatten(1)
{code_fn}
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (N, {cfg.latent}) -> images (N, {c}, {h}, {wd})."""
        h = self.from_code(z).reshape(z.shape[0], *self.feature_shape)
        for block in reversed(self.dec_blocks):
            h = block(h)
        logits = h + self.output_bias
        return {out_act}
'''
    summary = _summary(cfg, shapes)
    helpers = "".join(HELPERS[name] for name in ("TiedLinear", "RowEncoder", "RowDecoder") if name in w.helpers)
    needs_f = "TiedLinear" in w.helpers or (cfg.kind == "sparse" and cfg.sparsity != "kl")
    kind_word = KIND_WORDS.get(cfg.kind, cfg.kind)
    title = f"{'An' if kind_word[0] in 'aeiou' else 'A'} {kind_word} {ARCH_WORDS.get(cfg.arch, cfg.arch)} autoencoder"
    text = f'''"""{title}, written out by `aestudio code`.

{summary}

Needs only torch and safetensors. Load a run's weights (the names match exactly):

    python model.py RUN_FOLDER     # loads RUN_FOLDER/weights.safetensors strictly, prints the parameter count

    from model import Autoencoder
    from safetensors.torch import load_file
    model = Autoencoder()
    model.load_state_dict(load_file("RUN_FOLDER/weights.safetensors"), strict=True)
    model.eval()
    codes = model.encode(images)     # images: (N, {c}, {h}, {wd}) floats in [0, 1]
    images = model.decode(codes)
"""
import sys
from pathlib import Path

import torch
from torch import nn
{"from torch.nn import functional as F" + chr(10) if needs_f else ""}{"" if not helpers else chr(10) + helpers}

class Autoencoder(nn.Module):
    """{title}: {_shape(cfg.input_shape)} images <-> {cfg.latent}-dimensional codes."""

    def __init__(self):
        super().__init__()
{"".join(body)}{methods}

def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python model.py RUN_FOLDER  (the folder holding weights.safetensors)", file=sys.stderr)
        return 2
    from safetensors.torch import load_file

    path = Path(argv[0])
    weights = path / "weights.safetensors" if path.is_dir() else path
    model = Autoencoder()
    model.load_state_dict(load_file(str(weights)), strict=True)
    model.eval()
    count = sum(p.numel() for p in model.parameters())
    print(f"loaded {{weights}} strictly: {{count:,}} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''
    if verify:
        with torch.random.fork_rng(devices=[]):  # building the written model draws initial weights
            verify_code(text, model)
    return text


def _shapes(model: Autoencoder, cfg: ModelConfig) -> dict[str, Any]:
    """Per-block (input shape, output shape) of one image, from a dummy pass."""
    out: dict[str, Any] = {"enc": [], "dec": []}
    with torch.no_grad():
        h = torch.zeros(2, *cfg.input_shape)
        h = model.normalize_input(h)
        for block in model.enc_blocks:
            g = block(h)
            out["enc"].append((tuple(h.shape[1:]), tuple(g.shape[1:])))
            h = g
        out["features"] = int(h.flatten(1).shape[1])
        z = torch.zeros(2, cfg.latent)
        g = model.from_code(z).reshape(2, *model.feat_shape)
        out["from_code"] = tuple(g.shape[1:])
        dec = [None] * len(model.dec_blocks)
        for i in reversed(range(len(model.dec_blocks))):
            f = model.dec_blocks[i](g)
            dec[i] = (tuple(g.shape[1:]), tuple(f.shape[1:]))
            g = f
        out["dec"] = dec
    return out


def _summary(cfg: ModelConfig, shapes: dict[str, Any]) -> str:
    parts = [_shape(cfg.input_shape)] + [_shape(b) for _a, b in shapes["enc"]]
    enc = " -> ".join(parts)
    lines = [f"Encoder: {enc} -> code of {cfg.latent}",
             f"Decoder: code -> {_shape(shapes['from_code'])}"
             + "".join(f" -> {_shape(b)}" for _a, b in reversed(shapes["dec"]))]
    acts = ", ".join(cfg.layer_activations) or "none"
    extras = [f"hidden activations: {acts}", f"output: {cfg.output}"]
    if cfg.batch_norm:
        extras.append("batch norm")
    if cfg.dropout > 0:
        extras.append(f"dropout {cfg.dropout:g}")
    if cfg.tied:
        extras.append("tied weights")
    if cfg.stacked:
        extras.append("trained layer-wise first (stacked); the network itself is the same")
    if cfg.arch == "recurrent":
        extras.append(f"{cfg.rnn_cell.upper()} cells")
    if cfg.kind in ("sparse", "contractive", "vae", "aae"):
        extras.append({"sparse": f"sparse code ({cfg.sparsity} penalty in training)",
                       "contractive": "contractive penalty in training (no extra layers)",
                       "vae": "variational code (mean and log-variance)",
                       "aae": "adversarial: a discriminator shapes the codes in training"}[cfg.kind])
    lines.append("; ".join(extras) + ".")
    return "\n".join(textwrap.fill(line, 100, subsequent_indent="    ") for line in lines)


def verify_code(text: str, model: Autoencoder) -> None:
    """Execute `text`, load `model`'s weights into its Autoencoder strictly and compare the outputs
    on random images; CodegenError when anything differs."""
    namespace: dict[str, Any] = {"__name__": "aestudio_generated_model"}
    try:
        exec(compile(text, "<aestudio code>", "exec"), namespace)  # our own text, never user input
        written = namespace["Autoencoder"]()
        written.load_state_dict(model.state_dict(), strict=True)
    except Exception as e:  # noqa: BLE001 - any failure means the writer is wrong
        raise CodegenError(f"the written code does not match the model: {type(e).__name__}: "
                           f"{' '.join(str(e).split())[:300]}") from None
    written.eval()
    model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand((3, *model.config.input_shape), generator=g)
    with torch.no_grad():
        want = model(x)
        got = written(x)
    diff = float((want - got).abs().max()) if want.shape == got.shape else math.inf
    if not diff <= VERIFY_TOLERANCE:
        raise CodegenError(f"the written code does not reproduce the model (outputs differ by {diff:.3g})")
