"""The `aestudio` command: the studio window, or headless training and evaluation.

    aestudio                                   # the studio window (same as `aestudio studio`)
    aestudio studio --data fashion-10k
    aestudio train --data fashion-10k --arch conv --kind ae --latent 16 --epochs 10 --out runs/ae16
    aestudio evaluate runs/ae16 --json         # one JSON object of quality measures on stdout

`train` and `evaluate` never import Qt. User mistakes (bad flags, impossible configs, missing
files) print one line `aestudio: error: ...` on stderr and exit with status 2; a training run
that diverges (NaN) saves its last finite weights and exits with 1; Ctrl-C during training stops
after the current batch, saves, and exits with 130 (a second Ctrl-C aborts at once).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

PROG = "aestudio"

# Training defaults of the command line. They differ from TrainConfig's (batch 128, lr 1e-3, tuned for
# quick interactive runs in the studio). Epochs are not fixed: by default training gets about
# `step_budget(shape)` optimizer steps whatever the number of images (`suggest_epochs`), so a 200-image folder
# is not left with 40 steps and a big set does not take hours. benchmarks/robustness.py measures these
# defaults on seven data sets of different character.
CLI_BATCH_SIZE = 32
CLI_LR = 2e-3
STUDIO_MISSING = "The studio window is not available in this build; use `aestudio train` / `aestudio evaluate`."


class UsageError(Exception):
    """A bad command line; exits with status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (`aestudio: error: ...`) raised as UsageError, not printed usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ---- argument parsing -----------------------------------------------------------------------
def _int_list(text: str) -> list[int]:
    if text.strip().lower() == "none":  # no hidden layer (dense): input -> code -> output
        return []
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _name_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("expected at least one class (names or indices separated by commas)")
    return values


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("aestudio")
    except Exception:  # noqa: BLE001
        return "unknown"


def make_parser() -> argparse.ArgumentParser:
    from aestudio.core.config import ACTIVATIONS, ARCHS, INITS, KINDS, LOSSES, OUTPUTS, SPARSITY_PENALTIES

    p = _Parser(prog=PROG, description="A desktop studio for building, training and exploring autoencoders.")
    p.add_argument("--version", action="version", version=f"aestudio {_version()}")
    sub = p.add_subparsers(dest="command", metavar="{studio,train,evaluate,compare,encode,reconstruct,export,code,questions}", parser_class=_Parser)

    s = sub.add_parser("studio", help="open the studio window (the default)")
    s.add_argument("--data", metavar="SPEC", help="data set to open: digits, shapes, fashion-10k, mnist, fashion-mnist or a folder")

    t = sub.add_parser("train", help="train an autoencoder and save a run folder",
                       description="Train an autoencoder on a data set and save the run folder "
                                   "(config.json, weights.safetensors, history.json).")
    g = t.add_argument_group("data")
    g.add_argument("--data", metavar="SPEC", default="fashion-10k",
                   help="digits, shapes, fashion-10k, mnist, fashion-mnist or a folder of images (default fashion-10k)")
    g.add_argument("--classes", type=_name_list, metavar="A,B,...", help="train on these classes only (names or indices)")
    g.add_argument("--image-size", type=int, metavar="N", help="resize images to N x N")
    g.add_argument("--channels", type=int, choices=(1, 3), help="convert images to 1 (gray) or 3 (RGB) channels")
    g.add_argument("--background", default="auto", metavar="{auto,white,black,COLOUR}",
                   help="where transparent pixels of folder images are composited: auto (white behind mostly dark "
                        "content, else black), white, black, or a colour such as '#ff8800' or gray (default auto)")
    g.add_argument("--val-fraction", type=float, metavar="F", help="fraction of images held out for validation (default 0.2)")

    g = t.add_argument_group("model")
    g.add_argument("--arch", choices=ARCHS, default="conv", help="network type (default conv)")
    g.add_argument("--kind", choices=KINDS, default="ae", help="bottleneck kind (default ae)")
    g.add_argument("--latent", type=int, default=16, metavar="N", help="code size (default 16)")
    g.add_argument("--hidden", type=_int_list, metavar="N,N,...",
                   help="hidden layer sizes: units (dense, recurrent) or channels (conv); default depends on the "
                        "architecture; dense: 'none' for no hidden layer (input -> code -> output)")
    g.add_argument("--dense-layers", type=_int_list, metavar="N,N,...",
                   help="conv only: units of dense layers between the conv layers and the code, mirrored in the "
                        "decoder; default one of 256 for 28 to 64 px images; 'none' for no dense layer")
    g.add_argument("--activation", choices=ACTIVATIONS, help="hidden activation (default leaky_relu)")
    g.add_argument("--init", choices=INITS, help="weight initialisation: he (Kaiming) or xavier (default he)")
    g.add_argument("--output", choices=OUTPUTS, help="output activation (default sigmoid)")
    g.add_argument("--loss", choices=LOSSES, help="reconstruction loss (default mse)")
    g.add_argument("--dropout", type=float, metavar="P", help="dropout after each hidden layer (default 0)")
    g.add_argument("--batch-norm", action="store_true", default=None, help="batch normalisation in hidden layers")
    g.add_argument("--tied", action="store_true", default=None, help="dense: decoder reuses the encoder weights, transposed")
    g.add_argument("--stacked", action="store_true", default=None, help="greedy layer-wise pretraining, then fine-tuning")
    g.add_argument("--beta", type=float, metavar="X", help="vae: weight on the KL term (default 1)")
    g.add_argument("--free-bits", type=float, metavar="NATS",
                   help="vae: each latent dimension's KL counts as at least NATS in the loss (default 0: off)")
    g.add_argument("--sparsity", choices=SPARSITY_PENALTIES, help="sparse: l1 activity penalty or kl to a target rate")
    g.add_argument("--sparsity-weight", type=float, metavar="X", help="sparse: penalty weight (default 1e-3)")
    g.add_argument("--sparsity-target", type=float, metavar="RHO", help="sparse kl: target mean activation (default 0.05)")
    g.add_argument("--contractive-weight", type=float, metavar="X", help="contractive: penalty weight (default 1e-2)")
    g.add_argument("--weight-decay", type=float, metavar="X", help="L2 penalty on the weights (default 0)")

    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=int, metavar="N",
                   help="training epochs (default: enough for about 4,000 optimizer steps on 28x28 gray images, "
                        "up to twice that on larger ones)")
    g.add_argument("--batch-size", type=int, default=CLI_BATCH_SIZE, metavar="N",
                   help=f"images per batch (default {CLI_BATCH_SIZE})")
    g.add_argument("--lr", type=float, default=CLI_LR, metavar="X", help=f"learning rate (default {CLI_LR:g})")
    g.add_argument("--optimizer", choices=("auto", "adam"), default=None,
                   help="auto: Muon (orthogonalised momentum) for convolution kernels and Adam for the other weights; "
                        "adam: Adam for all (default auto; dense and recurrent models train with Adam either way)")
    g.add_argument("--noise", metavar="SPEC", help="denoising: none, gaussian:SIGMA, saltpepper:P or mask:P (default none)")
    g.add_argument("--augment", choices=("auto", "shift", "none"), default=None,
                   help="random shifts of the training images: auto (small sets of 16 px or larger, in runs long "
                        "enough to memorise them), shift or none (default auto)")
    g.add_argument("--lr-decay", type=float, metavar="F",
                   help="share of the run, at its end, over which the learning rate falls linearly towards 0 "
                        "(default 0.3; 0: constant)")
    g.add_argument("--pretrain-epochs", type=int, metavar="N", help="stacked: epochs per layer (default 2)")
    g.add_argument("--grad-clip", type=float, metavar="X", help="clip the gradient norm (default 0: off)")
    g.add_argument("--kl-warmup", type=float, metavar="EPOCHS",
                   help="vae: epochs over which the KL weight ramps from 0 to beta (default: the first 20%% of the run; 0: off)")
    g.add_argument("--seed", type=int, metavar="N", help="random seed for split, weights, batches and noise (default 0)")
    g.add_argument("--device", metavar="NAME", help="auto, cpu, cuda or mps (default auto)")
    g.add_argument("--amp", action="store_true", default=None,
                   help="mixed precision: on CUDA bfloat16, else float16 with loss scaling; on a CPU with bfloat16 "
                        "instructions (AVX512-BF16, AMX) bfloat16; ignored with a note elsewhere")
    g.add_argument("--channels-last", action="store_true", default=None,
                   help="channels-last memory for conv models on CUDA; ignored otherwise")
    g.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    g.add_argument("--out", metavar="DIR", help="run folder to write (required unless --resume)")
    g.add_argument("--resume", metavar="RUN",
                   help="continue training the run folder RUN: its weights, optimizer state, split and history "
                        "(--epochs more epochs; saved back into RUN unless --out). Changing any other setting "
                        "makes a fork: a new run (--out, or RUN-2, ...) whose config.json names RUN as its parent")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a run already in --out (default: save beside it as DIR-2, DIR-3, ...)")
    g.add_argument("--quiet", action="store_true", help="no per-batch progress line")
    g.add_argument("--tensorboard", metavar="DIR",
                   help="also log to TensorBoard in DIR: loss terms, image grids and the codes "
                        "(needs `pip install 'aestudio[export]'`)")

    g = t.add_argument_group("scaling out (see README, Scaling out)")
    g.add_argument("--memory-budget", metavar="SIZE",
                   help="memory the data set may take, e.g. 512MB or 4GB; a folder that needs more is decoded once "
                        "into a cache and streamed (default: half of the free memory)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="where streamed folders are cached (default: the folder loader's cache, $AESTUDIO_FOLDER_CACHE "
                        "or the user cache folder)")
    g.add_argument("--nproc", type=int, metavar="N",
                   help="train on N processes of this machine with DistributedDataParallel (runs torchrun for you; "
                        "one per GPU on a GPU server); --batch-size stays the global batch")

    e = sub.add_parser("evaluate", help="measure a trained run (reconstruction, baselines, probes, ...)",
                       description="Evaluate a run folder. Without --data: on the run's own validation split "
                                   "(PCA and probes fitted on its training split). With --data: on that whole set.")
    e.add_argument("run", metavar="DIR", help="run folder written by `aestudio train` or the studio")
    e.add_argument("--data", metavar="SPEC", help="evaluate on this whole data set instead of the run's validation split")
    e.add_argument("--classes", type=_name_list, metavar="A,B,...", help="with --data: keep only these classes")
    e.add_argument("--background", metavar="{auto,white,black,COLOUR}",
                   help="with --data: where transparent pixels are composited (default: as the run was trained)")
    e.add_argument("--noise", metavar="SPEC", help="corruption for the denoising measures (default: the run's training noise)")
    e.add_argument("--normal-classes", type=_name_list, metavar="A,B,...",
                   help="anomaly detection: images of other classes are anomalies (names or indices)")
    e.add_argument("--labels-per-class", type=int, default=10, metavar="N",
                   help="labelled examples per class for the probes (default 10; 0: all)")
    e.add_argument("--seed", type=int, default=0, metavar="N", help="seed for probe examples and noise (default 0)")
    e.add_argument("--device", default="auto", metavar="NAME", help="auto, cpu, cuda or mps (default auto)")
    e.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    e.add_argument("--trust-data", action="store_true",
                   help="read the run's data even when its config points outside the run folder or into a system folder")
    e.add_argument("--allow-download", action="store_true",
                   help="download the run's data set (mnist, fashion-mnist) when it is not on this computer")
    from aestudio.cli_compare import add_compare_parser

    add_compare_parser(sub)
    from aestudio.cli_export import add_parsers as add_export_parsers

    add_export_parsers(sub)  # encode, reconstruct, export, code
    from aestudio.cli_questions import add_questions_parser

    add_questions_parser(sub)
    return p


# ---- helpers -----------------------------------------------------------------------------------
#: Set on the ranks other than 0 of a torchrun job: they print errors only (rank 0 reports the rest).
_SILENT_RANK = False


def _err(*parts: Any) -> None:
    if _SILENT_RANK and not (parts and str(parts[0]).startswith(f"{PROG}:")):
        return
    print(*parts, file=sys.stderr, flush=True)


def _images(n: int) -> str:
    return f"{n:,} image" + ("" if n == 1 else "s")


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_terms(terms: dict[str, float]) -> str:
    order = ["total", "recon", "kl", "sparsity", "contractive", "disc", "gen", "weight_decay"]
    keys = [k for k in order if k in terms] + [k for k in terms if k not in order]
    return " ".join(f"{k} {terms[k]:.4g}" for k in keys)


def _data_progress(label: str):
    """A progress callback for load_dataset that tolerates (done, total) or (fraction, message)."""
    last = [0.0]
    tty = sys.stderr.isatty()

    def cb(*args: Any) -> None:
        now = time.monotonic()
        if not tty or now - last[0] < 0.2:
            return
        last[0] = now
        cb.dirty = True
        if len(args) >= 2 and isinstance(args[0], (int, float)) and isinstance(args[1], (int, float)) and args[1]:
            text = f"{label}: {100.0 * args[0] / args[1]:.0f}%"
        elif len(args) == 2 and args[1] == 0:  # a folder still being listed
            text = f"{label}…"
        else:
            text = f"{label}: " + " ".join(str(a) for a in args)
        sys.stderr.write("\r" + text[:_term_width()].ljust(_term_width()))
        sys.stderr.flush()

    cb.dirty = False
    return cb


def _term_width() -> int:
    """Usable width of the terminal line (one less than the columns, so the line never wraps)."""
    return max(20, shutil.get_terminal_size((100, 24)).columns - 1)


def _clear_line() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * _term_width() + "\r")
        sys.stderr.flush()


def _select_classes(data, classes: list[str] | None):
    """Filter by class names or indices (a token that is not a class name but a number is an index)."""
    if not classes:
        return data
    names = [n.casefold() for n in (data.class_names or [])]
    wanted: list[int | str] = []
    for c in classes:
        if c.casefold() not in names and c.removeprefix("-").isdecimal():
            wanted.append(int(c))
        else:
            wanted.append(c)
    return data.filter_classes(wanted)


def _load(spec: str, image_size: int | None, channels: int | None, classes: list[str] | None,
          allow_download: bool = True, background: str = "auto", memory_budget: int | None = None,
          cache_dir: str | None = None):
    from aestudio.core.datasets import load_dataset

    progress = _data_progress(f"loading {spec}")

    def note(text: str) -> None:
        if progress.dirty:
            _clear_line()
        _err(f"note: {text}")

    data = load_dataset(spec, image_size=image_size, channels=channels, progress=progress,
                        allow_download=allow_download, background=background, memory_budget=memory_budget,
                        decode_cache_dir=cache_dir, note=note)
    if progress.dirty:
        _clear_line()
    return _select_classes(data, classes)


def _flag_fields() -> dict[str, tuple[str, Any]]:
    from aestudio.core.config import MODEL_LABELS, TRAIN_LABELS
    from aestudio.core.schema import MAX_SEED, MODEL_FIELDS, TRAIN_FIELDS, Field

    fields: dict[str, tuple[str, Any]] = {}
    for name, spec in {**MODEL_FIELDS, **TRAIN_FIELDS}.items():
        fields[name] = ({**MODEL_LABELS, **TRAIN_LABELS}.get(name, name.replace("_", " ")), spec)
    fields["image_size"] = ("image size", Field("int", 2, 1024))
    fields["kl_warmup"] = ("KL warm-up epochs", Field("float", 0.0, 1_000_000))  # the flag counts epochs
    fields["threads"] = ("threads", Field("int", 1, _max_threads()))
    fields["labels_per_class"] = ("labels per class", Field("int", 0, 1_000_000))
    fields["eval_seed"] = ("seed", Field("int", 0, MAX_SEED))
    return fields


def _max_threads() -> int:
    return min(256, 4 * (os.cpu_count() or 1))


_TRAIN_FLAGS = ("latent", "hidden", "dense_layers", "dropout", "beta", "sparsity_weight", "sparsity_target", "contractive_weight",
                "weight_decay", "free_bits", "kl_warmup", "epochs", "batch_size", "lr", "pretrain_epochs", "grad_clip", "lr_decay", "seed",
                "val_fraction", "image_size", "threads")
_EVAL_FLAGS = ("labels_per_class", "eval_seed", "threads")


def _check_flags(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Range-check numeric flags (NaN and infinity included) before doing anything."""
    from aestudio.core.schema import field_problem

    fields = _flag_fields()
    for name in names:
        attr = "seed" if name == "eval_seed" else name
        value = getattr(args, attr, None)
        if value is None:
            continue
        label, spec = fields[name]
        problem = field_problem(label, value, spec)
        if problem:
            raise UsageError(f"{problem} (--{attr.replace('_', '-')})")


def _data_spec_for_run(spec: str) -> str:
    """Folder specs are stored as absolute paths so the run can find its data from anywhere."""
    p = Path(spec).expanduser()
    if os.sep in spec or (os.altsep and os.altsep in spec) or spec.startswith(".") or p.is_dir():
        if p.exists():
            return str(p.resolve())
    return spec


# ---- commands --------------------------------------------------------------------------------
def cmd_studio(args: argparse.Namespace) -> int:
    try:
        from aestudio.app import run_studio
    except ModuleNotFoundError as e:
        if e.name in ("aestudio.app",):
            _err(STUDIO_MISSING)
            return 1
        _err(f"{PROG}: error: the studio needs a package that is not installed: {e.name} "
             "(`aestudio train` / `aestudio evaluate` work without it)")
        return 1
    result = run_studio(data=getattr(args, "data", None))
    return int(result or 0)


def _model_config(args: argparse.Namespace, input_shape: tuple[int, int, int]):
    from aestudio.core.config import ModelConfig

    optional = {
        "hidden": args.hidden, "dense_layers": args.dense_layers, "activation": args.activation, "init": args.init, "output": args.output, "loss": args.loss,
        "dropout": args.dropout, "batch_norm": args.batch_norm, "tied": args.tied, "stacked": args.stacked,
        "beta": args.beta, "sparsity": args.sparsity, "sparsity_weight": args.sparsity_weight,
        "sparsity_target": args.sparsity_target, "contractive_weight": args.contractive_weight,
        "weight_decay": args.weight_decay, "free_bits": args.free_bits,
    }
    cfg = ModelConfig(arch=args.arch, kind=args.kind, input_shape=tuple(input_shape), latent=args.latent,
                      **{k: v for k, v in optional.items() if v is not None})
    return cfg.validate()


def _train_config(args: argparse.Namespace):
    from aestudio.core.config import TrainConfig

    optional = {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "noise": args.noise, "augment": getattr(args, "augment", None),
        "optimizer": getattr(args, "optimizer", None), "val_fraction": args.val_fraction, "seed": args.seed, "device": args.device,
        "pretrain_epochs": args.pretrain_epochs, "grad_clip": args.grad_clip, "lr_decay": getattr(args, "lr_decay", None),
        "amp": getattr(args, "amp", None), "channels_last": getattr(args, "channels_last", None),
    }
    return TrainConfig(**{k: v for k, v in optional.items() if v is not None}).validate()


def _auto_epochs(train_cfg, n_images: int, shape):
    """The default epochs: about `step_budget(shape)` optimizer steps on this data's training split."""
    import dataclasses

    from aestudio.core.training import default_epochs

    d = default_epochs(n_images, shape, train_cfg.batch_size, train_cfg.val_fraction)
    batch = min(train_cfg.batch_size, max(d.n_train, 1))
    capped = " (the most epochs the default gives)" if d.steps < 0.9 * d.budget else ""
    _err(f"epochs: {d.epochs}{capped} (about {d.steps:,} optimizer steps of {_images(batch)}; set --epochs to change)")
    return dataclasses.replace(train_cfg, epochs=d.epochs)


def _kl_warmup(train_cfg, epochs: float):
    """--kl-warmup EPOCHS as TrainConfig.kl_warmup, the fraction of the run's epochs."""
    import dataclasses

    if epochs > train_cfg.epochs:
        raise UsageError(f"--kl-warmup {epochs:g} is longer than the run ({train_cfg.epochs} epochs); "
                         f"give at most {train_cfg.epochs}")
    return dataclasses.replace(train_cfg, kl_warmup=float(epochs) / train_cfg.epochs)


class _Progress:
    """Terminal progress: an updating batch line (stderr, ~5/s) and one line per epoch (stdout)."""

    def __init__(self, quiet: bool = False):
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self.last = 0.0
        self.interval = 0.2 if self.tty else 30.0
        self.dirty = False

    def batch(self, ev) -> None:
        now = time.monotonic()
        if self.quiet or not ev.terms or now - self.last < self.interval:
            return  # the engine reports loss values at its sync points only
        self.last = now
        text = (f"{ev.stage} epoch {ev.epoch}/{ev.epochs} batch {ev.batch}/{ev.batches}  {_fmt_terms(ev.terms)}  "
                f"{ev.images_per_sec:,.0f} img/s  ETA {_fmt_time(ev.eta_s)}")
        if self.tty:
            width = _term_width()
            sys.stderr.write("\r" + text[:width].ljust(width))
            self.dirty = True
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def clear(self) -> None:
        if self.dirty:
            _clear_line()
            self.dirty = False

    def line(self, text: str) -> None:
        self.clear()
        print(text, flush=True)


def _memory_budget(args: argparse.Namespace) -> int | None:
    text = getattr(args, "memory_budget", None)
    if text is None:
        return None
    from aestudio.core.datasets.stream import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise UsageError(f"{e} (--memory-budget)") from None


def _launch_torchrun(args: argparse.Namespace) -> int:
    """`--nproc N`: run this same command under torchrun with N processes, and wait for it."""
    from aestudio.core.distributed import launch, under_torchrun

    if under_torchrun():
        raise UsageError("--nproc starts torchrun itself; leave it out when you run torchrun")
    if args.nproc < 1 or args.nproc > 1024:
        raise UsageError(f"--nproc must be a whole number from 1 to 1024, got {args.nproc}")
    argv, skip = [], False
    for a in getattr(args, "argv", None) or sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    _err(f"starting {args.nproc} training processes: torchrun --standalone --nproc-per-node={args.nproc} "
         f"-m aestudio {' '.join(argv)}")
    try:
        rc, interrupted = launch(args.nproc, argv, _err)
    except OSError as e:
        raise UsageError(f"cannot start torchrun: {e.strerror or e}") from None
    if interrupted and rc == 0:
        return 130  # stopped by Ctrl-C; rank 0 saved the partly trained run
    if rc not in (0, 1, 2, 130):
        _err(f"{PROG}: error: a training process failed (torchrun exited with status {rc}); "
             "the run folder keeps its last complete save")
    return rc


def _join_ranks(args: argparse.Namespace):
    """Join torchrun's process group when started by torchrun (else a single process)."""
    global _SILENT_RANK
    from aestudio.core.distributed import init

    rank, device = init(args.device or "auto")
    args.rank_device = device
    if rank.enabled and not rank.is_main:
        _SILENT_RANK = True
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - per-epoch lines come from rank 0 only
        args.quiet = True
    return rank


def _rank_train_config(train_cfg, rank, device: str):
    """The config this rank trains with: its own GPU under torchrun (the saved config keeps the user's)."""
    if not rank.enabled:
        return train_cfg
    import dataclasses

    return dataclasses.replace(train_cfg, device=device)


def _stop_on_sigterm(rank) -> None:
    """torchrun's agent sends SIGTERM to the other ranks when one fails: end with one line, not a traceback
    (the run folder keeps its last complete save: rank 0 writes atomically)."""
    from aestudio.core.distributed import DistributedError

    def on_sigterm(signum, frame) -> None:  # noqa: ARG001
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise DistributedError(f"rank {rank.rank} was stopped by torchrun (another training process failed or the "
                               "job was cancelled); the run folder keeps its last complete save")

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread
        pass


def _run_meta(args: argparse.Namespace, data) -> dict[str, Any]:
    """The run-level fields of config.json that describe the data."""
    classes = None
    if args.classes:
        present = sorted(set(int(v) for v in data.labels)) if data.labels is not None else []
        classes = [data.class_names[i] for i in present]
    from aestudio.core.trained import data_fingerprint

    return {"data": _data_spec_for_run(args.data), "classes": classes,
            "image_size": data.height if data.height == data.width else None, "channels": data.channels,
            "background": args.background, "data_fingerprint": data_fingerprint(data)}


def _history(trainer) -> list[dict[str, Any]]:
    from aestudio.core.distributed import current

    world = current().world_size
    return [{**h, "world_size": h.get("world_size", world)} for h in trainer.history]


def _live_save(saver, model_cfg, train_cfg, trainer, meta: dict[str, Any], t0: float):
    """Save the run folder while training (followers see it grow). A failed live save is reported once
    and switches live saving off; the final save still happens."""
    from aestudio.core.checkpoint import RunError

    try:
        saver.save(model_cfg, train_cfg, trainer.model, history=_history(trainer),
                   diagnoses=getattr(trainer, "diagnoses", None), seconds=round(time.monotonic() - t0, 2), **meta)
    except RunError as e:
        _err(f"note: live saving stopped ({e}); the run is saved when training ends")
        saver.live = False
        return saver
    if saver.saves == 1 and saver.folder != saver.out:
        _err(f"note: {saver.out} already holds a run; this one is saved as it trains in {saver.folder}")
    return saver


def cmd_train(args: argparse.Namespace) -> int:
    from aestudio.core.training import BatchEnd, Diagnosis, EpochEnd, Finished, StageStarted, Trainer

    from aestudio.core.checkpoint import RunError, check_writable, estimated_run_bytes

    _check_flags(args, _TRAIN_FLAGS)
    if getattr(args, "resume", None):
        from aestudio.cli_resume import cmd_resume

        return cmd_resume(args)
    if not args.out:
        raise UsageError(f"the following arguments are required: --out (see `{PROG} train --help`)")
    from aestudio.core.datasets import parse_background

    parse_background(args.background)  # an unknown --background fails before anything else happens
    if getattr(args, "tensorboard", None):
        from aestudio.core.tblog import check_available

        check_available()  # a missing tensorboard package fails before the data loads
    budget = _memory_budget(args)
    if getattr(args, "nproc", None) is not None:
        return _launch_torchrun(args)
    rank = _join_ranks(args)  # under torchrun: this process's place (rank 0 alone reports and writes)
    out = Path(args.out)
    if rank.is_main:
        try:
            check_writable(out)  # before loading anything: an unwritable --out would waste the training
        except RunError as e:
            raise UsageError(str(e)) from None
    train_cfg = _train_config(args)  # cheap checks before loading data
    data = _load(args.data, args.image_size, args.channels, args.classes, background=args.background,
                 memory_budget=budget, cache_dir=getattr(args, "cache_dir", None))
    _err(data.summary())
    if args.epochs is None:
        train_cfg = _auto_epochs(train_cfg, data.n, data.shape)
    if args.kl_warmup is not None:
        train_cfg = _kl_warmup(train_cfg, args.kl_warmup)
    model_cfg = _model_config(args, data.shape)
    for warning in model_cfg.warnings():
        _err(f"{PROG}: warning: {warning}")
    try:
        if rank.is_main:
            check_writable(out, estimated_run_bytes(model_cfg))  # free space for the weights, before training
    except RunError as e:
        raise UsageError(str(e)) from None
    trainer = Trainer(model_cfg, _rank_train_config(train_cfg, rank, args.rank_device), data)
    if rank.enabled:
        _err(f"distributed: {rank.world_size} processes ({trainer.device.type}), global batch {train_cfg.batch_size}")
    _err(f"model: {model_cfg.arch} {model_cfg.kind}, latent {model_cfg.latent}, hidden {model_cfg.hidden_sizes}"
         + (f", dense {model_cfg.dense_sizes}" if model_cfg.dense_sizes else "")
         + (f", {', '.join(sorted(set(model_cfg.layer_activations)))}" if model_cfg.layer_activations else "") + "; "
         f"{len(trainer.train_idx):,} training / {len(trainer.val_idx):,} validation images on {trainer.device}")
    if trainer.augment_line and rank.is_main:
        _err(f"augment: {trainer.augment_line} (--augment none: off)")
    elif trainer.augment_skipped and rank.is_main:
        _err(f"augment: {trainer.augment_skipped} (--augment shift: on)")
    for note in trainer.notes:
        _err(f"note: {note}")

    progress = _Progress(quiet=args.quiet)
    finished = None
    interrupts = [0]

    first_interrupt = [0.0]

    def stop_after_batch() -> None:  # the first Ctrl-C, by signal or (under `--nproc`) the launcher's stop file
        trainer.control.stop()  # under torchrun the ranks agree on the batch to stop at; rank 0 saves
        progress.clear()
        _err("stopping after this batch (Ctrl-C again to abort without saving) ...")

    def on_sigint(signum, frame) -> None:  # noqa: ARG001
        if rank.enabled and interrupts[0] and time.monotonic() - first_interrupt[0] < 2.0:
            return  # torchrun passes the terminal's Ctrl-C on to its workers: the same one, twice
        interrupts[0] += 1
        first_interrupt[0] = first_interrupt[0] or time.monotonic()
        if interrupts[0] > 1:
            raise KeyboardInterrupt
        stop_after_batch()

    old_handler = None
    try:
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        old_handler = None
    if rank.enabled:
        _stop_on_sigterm(rank)
    t0 = time.monotonic()
    from aestudio.core.follow import LiveSaver, safe_final

    saver = LiveSaver(out, overwrite=bool(args.overwrite)) if rank.is_main else None
    tb_log = _tensorboard_log(args) if rank.is_main else None  # --tensorboard DIR (aestudio/core/tblog.py)
    from aestudio.core.distributed import stop_requested

    launched = rank.enabled  # under `--nproc`, Ctrl-C arrives as the launcher's stop file (distributed.launch)
    try:
        for ev in trainer.run():
            if isinstance(ev, BatchEnd):
                if launched and stop_requested():
                    launched = False
                    stop_after_batch()
                progress.batch(ev)
            elif isinstance(ev, StageStarted):
                if ev.count > 1:
                    progress.line(f"== {ev.name} ({ev.epochs} epochs) ==")
            elif isinstance(ev, EpochEnd):
                val = f" | val {_fmt_terms(ev.val)}" if ev.val else ""
                progress.line(f"{ev.stage} epoch {ev.epoch}/{ev.epochs}  train {_fmt_terms(ev.train)}{val}  "
                              f"({ev.seconds:.1f} s, {ev.images_per_sec:,.0f} img/s)")
                if tb_log is not None:
                    tb_log.epoch(ev, trainer)
                if saver is not None and saver.due():
                    saver = _live_save(saver, model_cfg, train_cfg, trainer, _run_meta(args, data), t0)
            elif isinstance(ev, Diagnosis):
                progress.line(f"diagnosis: {ev.text()}")
            elif isinstance(ev, Finished):
                finished = ev
    except RuntimeError as e:  # under torchrun: a collective that failed because another rank is gone
        if rank.enabled and _user_message(e) is None:
            from aestudio.core.distributed import lost_peer

            raise lost_peer(e) from None
        raise
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
        progress.clear()
        if tb_log is not None:
            tb_log.finish(trainer) if finished is not None else tb_log.close()
    trainer.model.eval()
    if not rank.is_main:  # rank 0 saves the run and reports how it ended; the others only trained
        from aestudio.core.distributed import barrier, shutdown

        barrier(rank)  # wait for rank 0's save: a rank that ends first with a failure would make torchrun stop it
        shutdown()
        return 0 if finished is not None else 1
    # A failed, NaN or interrupted run never replaces a run already there: it goes beside it.
    good = finished is not None and finished.reason == "completed"
    from aestudio.core.trained import optimizer_files

    # the optimizer state of a completed run, for `--resume` (a stopped run's weights are an epoch behind it)
    opt_files = optimizer_files(trainer.optimizer.state_dict()) if good and trainer.optimizer is not None else None
    saved = safe_final(saver, model_cfg, train_cfg, trainer.model, history=_history(trainer),
                       diagnoses=getattr(trainer, "diagnoses", None), **_run_meta(args, data),
                       finished=finished.reason if finished else "unknown",
                       seconds=round(time.monotonic() - t0, 2), completed=good, extra_files=opt_files)
    if rank.enabled:
        from aestudio.core.distributed import barrier, shutdown

        barrier(rank)  # the run is saved: the other ranks may end now
        shutdown()
    if Path(saved) != Path(os.path.abspath(out)):
        why = "" if good or not args.overwrite else f" (a {finished.reason if finished else 'failed'} run never replaces one)"
        _err(f"note: {out} already holds a run; saved this one beside it as {saved}{why}")
        out = Path(saved)
    from aestudio.core.runs import remember_run

    remember_run(saved)  # the studio's Runs panel lists it
    assert finished is not None
    if finished.reason == "nan":
        _err(f"{PROG}: {finished.message}")
        print(f"saved the last finite weights to {out}", flush=True)
        return 1
    if finished.reason == "stopped":
        _err(finished.message)
        print(f"saved the partly trained run to {out}", flush=True)
        return 0 if rank.enabled else 130  # torchrun reports any other status as a failed job
    print(f"{finished.message} Saved the run to {out} ({_fmt_time(time.monotonic() - t0)})", flush=True)
    return 0


def _tensorboard_log(args: argparse.Namespace):
    """The TensorBoard writer for --tensorboard DIR, or None; one clear error when tensorboard is missing."""
    if not getattr(args, "tensorboard", None):
        return None
    from aestudio.core.tblog import TensorBoardLog

    return TensorBoardLog(args.tensorboard)


def _eval_data(args: argparse.Namespace, run) -> tuple[Any, Any, str]:
    """(data evaluated, training images for baselines/probes or None, description)."""
    from aestudio.core.checkpoint import DOWNLOADABLE_SPECS, UntrustedDataError, resolve_data_spec
    from aestudio.core.datasets import DatasetError

    meta = run.meta
    c, h, w = run.model_config.input_shape
    own_spec = meta.get("data")
    own_size = meta.get("image_size") or (h if h == w else None)
    own_channels = meta.get("channels") or c
    own_background = meta.get("background", "auto")  # reload transparent images the way training did

    def own_split():
        # the run folder's data spec is untrusted: see aestudio.core.checkpoint for the rules
        try:
            spec = resolve_data_spec(own_spec, run.path, trust=args.trust_data)
        except UntrustedDataError as e:
            raise UsageError(f"{e}; pass --trust-data to read it anyway") from None
        try:
            data = _load(spec, own_size, own_channels, meta.get("classes"), allow_download=args.allow_download,
                         background=own_background)
        except DatasetError as e:
            if spec in DOWNLOADABLE_SPECS and not args.allow_download:
                raise UsageError(f"the run's data set {spec} is not on this computer; pass --allow-download "
                                 f"to download it ({' '.join(str(e).split())})") from None
            raise
        from aestudio.core.trained import data_fingerprint, from_run

        recorded = meta.get("data_fingerprint")
        if isinstance(recorded, str) and recorded != data_fingerprint(data):
            _err(f"note: {spec} is not what this run was trained on (its images or labels changed since), so "
                 "the run's split of it no longer separates the images the model trained on from the others")
        train_idx, val_idx = from_run(run, data, spec).split  # the split the model was trained with
        return data.subset(train_idx), data.subset(val_idx)

    if args.data is None:
        if not own_spec:
            raise UsageError("this run does not record its data set; pass --data SPEC")
        train, val = own_split()
        return val, train, f"{own_spec} validation split ({_images(val.n)})"
    data = _load(args.data, h if h == w else None, c, args.classes, background=args.background or own_background)
    train = None
    if own_spec:
        try:
            train, _ = own_split()
        except (DatasetError, UsageError) as e:
            _err(f"note: cannot load the run's own data ({e}); fitting baselines and probes on the evaluated set")
    return data, train, f"{args.data} ({_images(data.n)})"


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from aestudio.core.checkpoint import load_run
    from aestudio.core.evaluation import evaluate_run
    from aestudio.core.training import resolve_device

    _check_flags(args, _EVAL_FLAGS)
    if args.classes and not args.data:
        raise UsageError("--classes needs --data (without it the run's own classes are used)")
    device = resolve_device(args.device)
    run = load_run(args.run, device=device)
    for warning in run.warnings:
        _err(f"note: {warning}")
    data, train, what = _eval_data(args, run)
    if tuple(data.shape) != tuple(run.model_config.input_shape):
        from aestudio.core.config import ConfigError

        raise ConfigError(f"the model expects images of shape {tuple(run.model_config.input_shape)} "
                          f"but {what} has {tuple(data.shape)}")
    _err(f"evaluating {run.path} on {what}")
    t0 = time.monotonic()
    with torch.no_grad():
        result = evaluate_run(run, None, None, data, train_data=train, noise=args.noise,
                              normal_classes=args.normal_classes, labels_per_class=args.labels_per_class,
                              seed=args.seed, progress=lambda msg: _err(f"  {msg} ..."))
    _err(f"done in {time.monotonic() - t0:.1f} s")
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        width = max(len(k) for k in result) if result else 0
        for k, v in result.items():
            print(f"{k:<{width}}  {v:.6g}")
    return 0


# ---- entry point -------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = make_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help / --version
            return int(e.code or 0)
        if getattr(args, "threads", None) is not None:
            _check_flags(args, ("threads",))
            import torch

            torch.set_num_threads(args.threads)
        if args.command in (None, "studio"):
            return cmd_studio(args)
        from aestudio.cli_export import COMMANDS as EXPORT_COMMANDS, run_command as run_export

        if args.command in EXPORT_COMMANDS:
            return run_export(args)
        from aestudio.core.training import subnormals_flushed

        with subnormals_flushed():  # these train or evaluate: fast past the first epochs too (core/training.py)
            if args.command == "train":
                args.argv = argv  # `--nproc` starts torchrun with these arguments
                return cmd_train(args)
            if args.command == "compare":
                from aestudio.cli_compare import cmd_compare

                return cmd_compare(args)
            if args.command == "questions":
                from aestudio.cli_questions import cmd_questions

                return cmd_questions(args)
            return cmd_evaluate(args)
    except UsageError as e:
        _err(f"{PROG}: error: {e}")
        return 2
    except KeyboardInterrupt:
        _err(f"{PROG}: interrupted")
        return 130
    except Exception as e:  # noqa: BLE001
        message = _user_message(e)
        if message is None:
            raise
        _err(f"{PROG}: error: {' '.join(message.split())}")
        return 2


def _user_message(e: BaseException) -> str | None:
    try:
        from aestudio.core.errors import user_message
    except ImportError:  # pragma: no cover
        return None
    return user_message(e)


if __name__ == "__main__":
    sys.exit(main())
