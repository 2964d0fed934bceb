"""Declarative, JSON-serialisable configuration for every model and training run.

`ModelConfig` says what network to build; `TrainConfig` says how to train it. Both validate
themselves: `problems()` lists every reason a config cannot work (for inline help in the
studio), `validate()` raises `ConfigError` with them (for the CLI).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from .schema import MAX_JSON_DEPTH, MODEL_FIELDS, TRAIN_FIELDS, check_fields, field_problem, json_depth

ARCHS = ("dense", "conv", "recurrent")
KINDS = ("ae", "vae", "sparse", "contractive")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid")
OUTPUTS = ("sigmoid", "linear")
LOSSES = ("mse", "bce")
INITS = ("he", "xavier")
SPARSITY_PENALTIES = ("l1", "kl")
RNN_CELLS = ("lstm", "gru")

FORMAT_VERSION = 1


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


@dataclass
class ModelConfig:
    """What autoencoder to build. Every field is plain JSON data."""

    arch: str = "conv"
    kind: str = "ae"
    input_shape: tuple[int, int, int] = (1, 28, 28)
    latent: int = 16
    hidden: list[int] | None = None  # None: default_hidden(); dense: units, conv: channels, recurrent: units
    activation: str = "relu"  # used for every hidden layer unless `activations` is given
    activations: list[str] | None = None  # one per hidden layer
    output: str = "sigmoid"
    loss: str = "mse"
    init: str = "he"
    dropout: float = 0.0
    batch_norm: bool = False
    tied: bool = False  # dense only: decoder weights are the transposed encoder weights
    stacked: bool = False  # greedy layer-wise pretraining before end-to-end fine-tuning
    beta: float = 1.0  # vae: weight on the KL term
    sparsity: str = "kl"  # sparse: "l1" activity penalty or "kl" to a target activation rho
    sparsity_weight: float = 1e-3
    sparsity_target: float = 0.05
    contractive_weight: float = 1e-2
    weight_decay: float = 0.0  # L2 penalty, reported as its own loss term
    rnn_cell: str = "lstm"

    # ---- derived -------------------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    @property
    def hidden_sizes(self) -> list[int]:
        return list(self.hidden) if self.hidden else default_hidden(self.arch, self.input_shape, self.latent)

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
        if self.hidden is not None and len(hidden) == 0:
            p.append(f"hidden sizes must be positive whole numbers, got {self.hidden}")
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
            if h % factor or w % factor:
                p.append(
                    f"a conv model with {len(hidden)} stride-2 layers needs image sides divisible by {factor}; "
                    f"{h}x{w} is not (use image size {max(factor, h // factor * factor)} or fewer conv layers)"
                )
        return p

    def validate(self) -> "ModelConfig":
        p = self.problems()
        if p:
            raise ConfigError("; ".join(p))
        return self

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, d, tuple_fields={"input_shape"})


@dataclass
class TrainConfig:
    """How to train: optimiser settings, noise for denoising, split and device."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    noise: str = "none"  # none | gaussian:SIGMA | saltpepper:P | mask:P
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    pretrain_epochs: int = 2  # per layer, for stacked models
    grad_clip: float = 0.0  # 0: off
    kl_warmup: float = 0.2  # vae: fraction of the run over which the KL weight ramps from 0 to beta (0: off)

    def problems(self) -> list[str]:
        from .noise import NoiseError, parse_noise

        p: list[str] = _typed_problems(self, TRAIN_FIELDS, TRAIN_LABELS)
        if p:
            return p
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            p.append(f"device must be auto, cpu, cuda or mps, got {self.device!r}")
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
    return ModelConfig.from_dict(model_d), TrainConfig.from_dict(train_d), extra


# ---- helpers -------------------------------------------------------------------------------
def _choice(p: list[str], what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        p.append(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


MODEL_LABELS = {
    "input_shape": "input shape", "latent": "latent size", "hidden": "hidden sizes", "batch_norm": "batch norm",
    "sparsity_weight": "sparsity weight", "sparsity_target": "target activation rho",
    "contractive_weight": "contractive weight", "weight_decay": "weight decay", "rnn_cell": "recurrent cell",
}
TRAIN_LABELS = {
    "batch_size": "batch size", "lr": "learning rate", "val_fraction": "validation fraction",
    "pretrain_epochs": "pretraining epochs", "grad_clip": "gradient clipping",
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


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


__all__ = [
    "ACTIVATIONS", "ARCHS", "INITS", "KINDS", "LOSSES", "OUTPUTS", "RNN_CELLS", "SPARSITY_PENALTIES",
    "ConfigError", "ModelConfig", "TrainConfig", "default_hidden", "dumps", "from_json", "loads",
]
