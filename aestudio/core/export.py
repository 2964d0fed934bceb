"""Taking results out of aestudio: codes, projector files, reconstructions, ONNX and TorchScript.

    codes = encode_set(model, data)                        # (N, latent) float32; a VAE's mean code
    write_codes("codes.csv", codes, data)                  # file,label,z1..zk   (or codes.npy + codes.meta.csv)
    write_projector("proj/", codes, data)                  # TensorBoard Embedding Projector files
    write_reconstructions("recon/", model, data)           # one PNG per image, named after its source
    export_onnx(model, "onnx/")                            # encoder.onnx + decoder.onnx, checked
    export_torchscript(model, "ts/")                       # encoder.pt + decoder.pt, checked

Everything here works on CPU copies of the model (the caller's model is never put in another mode
or on another device) and takes an optional `progress(done, total)` callback and a `cancel`
event, so the studio can run it on a worker thread. Every file is written to a temporary name in
its folder and renamed into place once complete, so an interrupted export leaves no half file.
User mistakes (wrong image shape, an unwritable folder, a missing optional package) raise
`ExportError`, a `RunError`: one line meant for users.

Exported graphs take and give what aestudio's own model does: the encoder reads `images`
(N x C x H x W floats in [0, 1]; the input standardisation is inside the graph) and returns
`codes` (N x latent; for a VAE the mean code); the decoder reads `codes` and returns `images`
in [0, 1] (unbounded for a linear output). The batch size is free in both.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import io
import math
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import RunError
from .config import ModelConfig
from .datasets import ImageSet
from .latent import dim_name
from .models import Autoencoder
from .noise import Noise, parse_noise

Progress = Callable[[int, int], None]

BATCH = 512
#: ONNX / TorchScript outputs must match PyTorch within this (absolute, on [0, 1] images and codes).
TOLERANCE = 1e-4
#: The Embedding Projector refuses sprites larger than this on a side.
SPRITE_MAX_SIDE = 8192
CHECK_BATCH = 5  # images used to check an exported graph; not the batch it was traced with
TRACE_BATCH = 2
INSTALL_HINT = "pip install 'aestudio[export]'"


class ExportError(RunError):
    """An export that cannot be done as asked. The message is one line meant for users."""


class Cancelled(ExportError):
    """The user cancelled an export (the `cancel` event was set)."""


# ---- checks --------------------------------------------------------------------------------------
def check_data_shape(model_config: ModelConfig, data: ImageSet, what: str | None = None) -> None:
    """ExportError unless the images have the shape the model was built for."""
    want, have = tuple(int(v) for v in model_config.input_shape), tuple(data.shape)
    if want != have:
        raise ExportError(f"the model expects images of shape {'x'.join(map(str, want))} (channels x height x width) "
                          f"but {what or data.name} has {'x'.join(map(str, have))}")


def prepare_dir(path: str | os.PathLike) -> Path:
    """Create the output folder if needed and prove it is writable; ExportError otherwise."""
    p = Path(os.path.abspath(os.fspath(path)))
    if os.path.lexists(p) and not p.is_dir():
        raise ExportError(f"cannot write into {p}: it exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".aestudio-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ExportError(f"cannot write into {p}: {e.strerror or e}") from None
    return p


def prepare_file(path: str | os.PathLike) -> Path:
    """The absolute output file path, its folder created and writable; ExportError otherwise."""
    p = Path(os.path.abspath(os.fspath(path)))
    if p.is_dir():
        raise ExportError(f"cannot write {p}: it is a folder; give a file name")
    prepare_dir(p.parent)
    return p


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` through a temporary file in the same folder and one rename (a reader
    sees the old file or the whole new one). `durable=False` skips the fsync, for thousands of small
    files where one fsync each would cost most of the time."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:  # also Ctrl-C: never leave a temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ExportError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("export cancelled")


def cpu_copy(model: Autoencoder) -> Autoencoder:
    """An eval-mode float32 CPU copy, so exporting never touches the caller's model."""
    m = copy.deepcopy(model).to("cpu").float().eval()
    return m


# ---- names and labels ------------------------------------------------------------------------------
def item_names(data: ImageSet) -> list[str]:
    """One name per image: the file's path relative to the folder for folder sets (with '/'),
    else `<set>-<index>` (index zero-padded)."""
    if data.files:
        root = data.source if data.source and os.path.isdir(data.source) else os.path.commonpath(data.files)
        out = []
        for f in data.files:
            try:
                rel = os.path.relpath(f, root)
            except ValueError:
                rel = os.path.basename(f)
            out.append(rel.replace(os.sep, "/"))
        return out
    width = max(5, len(str(max(data.n - 1, 0))))
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in data.name) or "image"
    return [f"{safe}-{i:0{width}d}" for i in range(data.n)]


def item_labels(data: ImageSet) -> list[str]:
    """Each image's class name ('' for unlabelled sets)."""
    if data.labels is None:
        return [""] * data.n
    return [data.class_names[int(v)] for v in data.labels]


# ---- model passes ------------------------------------------------------------------------------------
def _batches(n: int, batch: int):
    for i in range(0, n, batch):
        yield i, min(n, i + batch)


def encode_set(model: Autoencoder, data: ImageSet, *, batch: int = BATCH, progress: Progress | None = None,
               cancel: threading.Event | None = None) -> np.ndarray:
    """Codes (N, latent) float32 of every image: the deterministic code, or a VAE's mean code."""
    check_data_shape(model.config, data)
    m = cpu_copy(model)
    out = np.empty((data.n, model.config.latent), np.float32)
    with torch.no_grad():
        for a, b in _batches(data.n, batch):
            _check_cancel(cancel)
            x = torch.from_numpy(data.images[a:b]).float().div_(255.0)
            out[a:b] = m.encode(x).mu.numpy()
            if progress is not None:
                progress(b, data.n)
    return out


def reconstruct_set(model: Autoencoder, data: ImageSet, noise: str | Noise | None = None, *, seed: int = 0,
                    batch: int = BATCH, progress: Progress | None = None,
                    cancel: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, inputs) as float32 (N, C, H, W) in [0, 1]: the model's output for each image,
    after corrupting it with `noise` when given (a denoising model's denoised images)."""
    check_data_shape(model.config, data)
    noise = noise if isinstance(noise, Noise) else parse_noise(noise)
    m = cpu_copy(model)
    gen = torch.Generator().manual_seed(int(seed))
    outs = np.empty(data.images.shape, np.float32)
    ins = np.empty(data.images.shape, np.float32)
    with torch.no_grad():
        for a, b in _batches(data.n, batch):
            _check_cancel(cancel)
            x = torch.from_numpy(data.images[a:b]).float().div_(255.0)
            x = noise.apply(x, gen)
            ins[a:b] = x.numpy()
            outs[a:b] = m.decode(m.encode(x).mu).clamp(0.0, 1.0).numpy()
            if progress is not None:
                progress(b, data.n)
    return outs, ins


# ---- codes ---------------------------------------------------------------------------------------------
CODE_FORMATS = ("npy", "csv", "projector")


def code_format(out: str | os.PathLike, fmt: str | None = None) -> str:
    """The format to write: `fmt` if given, else from the extension of `out` (.npy or .csv)."""
    if fmt:
        if fmt not in CODE_FORMATS:
            raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(CODE_FORMATS)}")
        return fmt
    ext = Path(out).suffix.lower()
    if ext in (".npy", ".csv"):
        return ext[1:]
    raise ExportError(f"cannot tell the format from {Path(out).name!r}: name the file .npy or .csv, "
                      "or pass --format projector with a folder")


def meta_path(npy_path: str | os.PathLike) -> Path:
    """The file beside `codes.npy` that names each row's image and label: `codes.meta.csv`."""
    p = Path(npy_path)
    return p.with_name(p.stem + ".meta.csv")


def _csv_text(header: Sequence[str], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_codes(out: str | os.PathLike, codes: np.ndarray, data: ImageSet, fmt: str | None = None) -> list[Path]:
    """Write codes as .npy (plus `NAME.meta.csv`: file,label per row) or .csv (file,label,z1..zk).
    Returns the files written."""
    fmt = code_format(out, fmt)
    if fmt == "projector":
        return write_projector(out, codes, data)
    path = prepare_file(out)
    names, labels = item_names(data), item_labels(data)
    codes = np.asarray(codes, np.float32)
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, codes, allow_pickle=False)
        meta = meta_path(path)
        write_atomic(meta, _csv_text(["file", "label"], zip(names, labels)).encode("utf-8"))
        write_atomic(path, buf.getvalue())
        return [path, meta]
    header = ["file", "label", *(dim_name(d) for d in range(codes.shape[1]))]
    rows = ([n, lab, *(f"{float(v):.9g}" for v in row)] for n, lab, row in zip(names, labels, codes))
    write_atomic(path, _csv_text(header, rows).encode("utf-8"))
    return [path]


def _tsv_field(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


def sprite_layout(n: int, height: int, width: int) -> tuple[int, int, int]:
    """(columns, thumbnail height, thumbnail width) of a square-ish sprite grid no wider than
    SPRITE_MAX_SIDE pixels: full-size thumbnails when they fit, else shrunk."""
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    scale = min(1.0, SPRITE_MAX_SIDE / (cols * width), SPRITE_MAX_SIDE / (rows * height))
    th, tw = max(1, int(height * scale)), max(1, int(width * scale))
    return cols, th, tw


def sprite_image(images: np.ndarray) -> np.ndarray:
    """A uint8 sprite (H, W) or (H, W, 3) of the images (N, C, H, W uint8), row-major from the top left."""
    from PIL import Image

    n, c, h, w = images.shape
    cols, th, tw = sprite_layout(n, h, w)
    rows = max(1, math.ceil(n / cols))
    thumbs = images
    if (th, tw) != (h, w):
        mode = "L" if c == 1 else "RGB"
        small = []
        for img in images:
            arr = img[0] if c == 1 else img.transpose(1, 2, 0)
            pic = Image.fromarray(np.ascontiguousarray(arr), mode).resize((tw, th), Image.Resampling.BILINEAR)
            a = np.asarray(pic)
            small.append(a[None] if c == 1 else a.transpose(2, 0, 1))
        thumbs = np.stack(small) if small else np.zeros((0, c, th, tw), np.uint8)
    grid = np.zeros((rows * cols, c, th, tw), np.uint8)
    grid[:n] = thumbs
    grid = grid.reshape(rows, cols, c, th, tw).transpose(0, 3, 1, 4, 2).reshape(rows * th, cols * tw, c)
    return grid[:, :, 0] if c == 1 else grid


PROJECTOR_FILES = ("vectors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt")


def write_projector(out_dir: str | os.PathLike, codes: np.ndarray, data: ImageSet,
                    tensor_name: str = "aestudio codes") -> list[Path]:
    """The Embedding Projector's files in `out_dir`: vectors.tsv (one code per line), metadata.tsv
    (a header `file<TAB>label`, then one line per image), sprite.png and projector_config.pbtxt."""
    from PIL import Image

    codes = np.asarray(codes, np.float32)
    if len(codes) != data.n:
        raise ExportError(f"{len(codes)} codes for {data.n} images")
    folder = prepare_dir(out_dir)
    vectors = "".join("\t".join(f"{float(v):.9g}" for v in row) + "\n" for row in codes)
    meta = "file\tlabel\n" + "".join(f"{_tsv_field(n)}\t{_tsv_field(lab)}\n"
                                     for n, lab in zip(item_names(data), item_labels(data)))
    sprite = sprite_image(data.images)
    buf = io.BytesIO()
    Image.fromarray(sprite).save(buf, format="PNG")
    _cols, th, tw = sprite_layout(data.n, data.height, data.width)
    config = (
        "embeddings {\n"
        f"  tensor_name: \"{tensor_name}\"\n"
        "  tensor_path: \"vectors.tsv\"\n"
        "  metadata_path: \"metadata.tsv\"\n"
        "  sprite {\n"
        "    image_path: \"sprite.png\"\n"
        f"    single_image_dim: {tw}\n"
        f"    single_image_dim: {th}\n"
        "  }\n"
        "}\n"
    )
    paths = [folder / name for name in PROJECTOR_FILES]
    for path, payload in zip(paths, (vectors.encode(), meta.encode("utf-8"), buf.getvalue(), config.encode())):
        write_atomic(path, payload)
    return paths


# ---- reconstructions ----------------------------------------------------------------------------------
def png_names(data: ImageSet) -> list[str]:
    """Relative PNG paths named after each image's source (`a/b.jpg` -> `a/b.png`), unique."""
    out, seen = [], set()
    for name in item_names(data):
        stem, ext = os.path.splitext(name) if data.files else (name, "")
        candidate = stem + ".png"
        if candidate.casefold() in seen:
            candidate = f"{stem}_{ext.lstrip('.') or 'png'}.png"
            k = 2
            while candidate.casefold() in seen:
                candidate = f"{stem}_{k}.png"
                k += 1
        seen.add(candidate.casefold())
        out.append(candidate)
    return out


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    arr = np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
    pic = Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return buf.getvalue()


def write_reconstructions(out_dir: str | os.PathLike, model: Autoencoder, data: ImageSet,
                          noise: str | Noise | None = None, *, seed: int = 0, progress: Progress | None = None,
                          cancel: threading.Event | None = None) -> list[Path]:
    """One PNG per image in `out_dir`, named after its source: the model's reconstruction, or with
    `noise` the denoised image of a corrupted copy (the corrupted inputs go to `out_dir/noisy/`)."""
    check_data_shape(model.config, data)
    noise = noise if isinstance(noise, Noise) else parse_noise(noise)
    folder = prepare_dir(out_dir)
    names = png_names(data)
    written: list[Path] = []
    made: set[Path] = set()
    total = data.n
    for a, b in _batches(data.n, BATCH):
        part = data.subset(slice(a, b))
        outs, ins = reconstruct_set(model, part, noise, seed=seed + a, cancel=cancel)
        for k in range(b - a):
            _check_cancel(cancel)
            targets = [(folder / names[a + k], outs[k])]
            if noise.active:
                targets.append((folder / "noisy" / names[a + k], ins[k]))
            for path, img in targets:
                if path.parent not in made:
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                    except OSError as e:
                        raise ExportError(f"cannot write into {path.parent}: {e.strerror or e}") from None
                    made.add(path.parent)
                write_atomic(path, _png_bytes(img), durable=False)
            written.append(targets[0][0])
        if progress is not None:
            progress(b, total)
    return written


# ---- graphs: ONNX and TorchScript ------------------------------------------------------------------------
class EncoderGraph(nn.Module):
    """images (N, C, H, W) in [0, 1] -> codes (N, latent); a VAE's mean code."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(images).mu


class DecoderGraph(nn.Module):
    """codes (N, latent) -> images (N, C, H, W)."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.model = model

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode(codes)


@dataclass
class GraphCheck:
    """How closely an exported file reproduces PyTorch."""

    path: Path
    max_abs_diff: float | None  # None: not checked (no runtime to run it)
    batch: int
    note: str = ""

    def text(self) -> str:
        if self.max_abs_diff is None:
            return f"{self.path.name}: written, not checked ({self.note})"
        return (f"{self.path.name}: max |exported - PyTorch| = {self.max_abs_diff:.3g} on a batch of {self.batch} "
                f"(tolerance {TOLERANCE:g})")


def check_inputs(config: ModelConfig, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, codes) to check exported graphs with: seeded random images in [0, 1], and codes
    spread like a unit Gaussian (a VAE's prior; other codes are of that order too)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand((CHECK_BATCH, *config.input_shape), generator=g)
    codes = torch.randn((CHECK_BATCH, config.latent), generator=g)
    return images, codes


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return math.inf
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _require(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{what} needs the {module} package, which is not installed; "
                          f"install it with: {INSTALL_HINT}") from None


def _tmp_path(folder: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def _staged(folder: Path):
    """Yields `stage(name) -> temporary path` in `folder`. When the block ends normally every staged
    file is renamed to its name; when it raises, every staged file is removed (nothing half-written)."""
    tmp_files: list[tuple[Path, Path]] = []

    def stage(name: str) -> Path:
        tmp = _tmp_path(folder, name)
        tmp_files.append((tmp, folder / name))
        return tmp

    try:
        yield stage
        for tmp, final in tmp_files:
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        tmp_files.clear()
    finally:
        for tmp, _final in tmp_files:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _checked(folder: Path, name: str, diff: float, n: int) -> "GraphCheck":
    """The check of one exported graph; raises ExportError (so nothing is written) above TOLERANCE."""
    if not diff <= TOLERANCE:
        raise ExportError(f"the exported {name} differs from PyTorch by {diff:.3g} (tolerance "
                          f"{TOLERANCE:g}); nothing was written")
    return GraphCheck(folder / name, diff, n)


def export_onnx(model: Autoencoder, out_dir: str | os.PathLike, *, progress: Progress | None = None,
                opset: int = 17) -> list[GraphCheck]:
    """Write encoder.onnx (input `images`, output `codes`) and decoder.onnx (input `codes`, output
    `images`) with a free batch size, after checking each against PyTorch on a batch of another
    size than the one it was traced with (with onnxruntime when installed). Nothing is written when
    a check fails."""
    _require("onnx", "ONNX export")
    folder = prepare_dir(out_dir)
    try:
        ort = __import__("onnxruntime")
    except ImportError:
        ort = None
    m = cpu_copy(model)
    images, codes = check_inputs(m.config)
    graphs = (("encoder.onnx", EncoderGraph(m).eval(), "images", "codes", images),
              ("decoder.onnx", DecoderGraph(m).eval(), "codes", "images", codes))
    checks: list[GraphCheck] = []
    with _staged(folder) as stage:
        for i, (name, graph, in_name, out_name, x) in enumerate(graphs):
            tmp = stage(name)
            example = x[:TRACE_BATCH]
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                try:
                    torch.onnx.export(graph, (example,), str(tmp), input_names=[in_name], output_names=[out_name],
                                      dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
                                      opset_version=opset, dynamo=False)
                except ImportError as e:
                    raise ExportError(f"ONNX export needs a package that is not installed ({e.name}); "
                                      f"install it with: {INSTALL_HINT}") from None
            with torch.no_grad():
                want = graph(x).numpy()
            if ort is None:
                import onnx

                onnx.checker.check_model(str(tmp))
                checks.append(GraphCheck(folder / name, None, len(x), "onnxruntime is not installed"))
            else:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = 1
                opts.inter_op_num_threads = 1
                sess = ort.InferenceSession(str(tmp), opts, providers=["CPUExecutionProvider"])
                got = sess.run([out_name], {in_name: x.numpy()})[0]
                checks.append(_checked(folder, name, _max_diff(got, want), len(x)))
            if progress is not None:
                progress(i + 1, len(graphs))
    return checks


def export_torchscript(model: Autoencoder, out_dir: str | os.PathLike, *,
                       progress: Progress | None = None) -> list[GraphCheck]:
    """Write encoder.pt and decoder.pt (TorchScript, traced), after checking each, reloaded from its
    file, against PyTorch on a batch of another size than the one it was traced with.

    These files are for the user's own code (`torch.jit.load`); aestudio never loads .pt files
    given to it (they can run code)."""
    folder = prepare_dir(out_dir)
    m = cpu_copy(model)
    images, codes = check_inputs(m.config)
    graphs = (("encoder.pt", EncoderGraph(m).eval(), images), ("decoder.pt", DecoderGraph(m).eval(), codes))
    checks: list[GraphCheck] = []
    with _staged(folder) as stage:
        for i, (name, graph, x) in enumerate(graphs):
            tmp = stage(name)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(graph, (x[:TRACE_BATCH],), check_trace=False)
                torch.jit.save(traced, str(tmp))
                reloaded = torch.jit.load(str(tmp))  # the file we just wrote ourselves
                diff = _max_diff(reloaded(x).numpy(), graph(x).numpy())
            checks.append(_checked(folder, name, diff, len(x)))
            if progress is not None:
                progress(i + 1, len(graphs))
    return checks
