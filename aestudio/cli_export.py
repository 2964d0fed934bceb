"""The export commands of `aestudio`: encode, reconstruct, export and code (see aestudio/core/export.py
and aestudio/core/codegen.py). `aestudio.cli` registers them and runs them; like the rest of the
command line they never import Qt, and a user mistake is one `aestudio: error: ...` line and status 2.

    aestudio encode RUN --data SPEC --out codes.csv           # or codes.npy, or --format projector --out DIR
    aestudio reconstruct RUN --data SPEC --out DIR [--noise gaussian:0.5]
    aestudio encode RUN --out codes.csv                       # without --data: the set the run was trained on
    aestudio export RUN --onnx DIR [--torchscript DIR]
    aestudio code RUN > model.py
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

COMMANDS = ("encode", "reconstruct", "export", "code")


def add_parsers(sub: Any) -> None:
    """Add the export subcommands to the `aestudio` subparsers."""

    def data_flags(p: argparse.ArgumentParser) -> None:
        from aestudio.cli import _name_list

        p.add_argument("--data", metavar="SPEC",
                       help="digits, shapes, fashion-10k, mnist, fashion-mnist or a folder of images; a folder is "
                            "resized to the model's image size, a named set must already have it (default: the "
                            "whole set the run was trained on, with its classes, size and background)")
        p.add_argument("--trust-data", action="store_true",
                       help="without --data: read the run's recorded data set even where it points outside the run "
                            "folder's rules (a relative path that leaves the folder, a system location)")
        p.add_argument("--classes", type=_name_list, metavar="A,B,...", help="keep only these classes (names or indices)")
        p.add_argument("--image-size", type=int, metavar="N", help="resize the images to N x N first")
        p.add_argument("--channels", type=int, choices=(1, 3), help="convert the images to 1 (gray) or 3 (RGB) channels first")
        p.add_argument("--background", metavar="{auto,white,black,COLOUR}",
                       help="where transparent pixels of folder images are composited (default: as the run was trained)")
        p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")

    e = sub.add_parser("encode", help="write the codes of a data set (.npy, .csv or Embedding Projector files)",
                       description="Encode every image of a data set with a trained run and write the codes with "
                                   "each image's file name and label: FILE.csv (file,label,z1..zk), FILE.npy (the "
                                   "code matrix, with FILE.meta.csv beside it), or with --format projector a folder "
                                   "of TensorBoard Embedding Projector files. A VAE writes its mean codes.")
    e.add_argument("run", metavar="RUN", help="run folder written by `aestudio train` or the studio")
    data_flags(e)
    e.add_argument("--out", required=True, metavar="FILE", help="output file (.npy or .csv), or a folder with --format projector")
    e.add_argument("--format", choices=("npy", "csv", "projector"),
                   help="output format (default: from the extension of --out)")

    r = sub.add_parser("reconstruct", help="write the model's reconstructions (or denoised images) as PNG files",
                       description="Run each image of a data set through a trained run and write the output as a "
                                   "PNG named after its source image. With --noise the images are corrupted first "
                                   "and the outputs are the denoised images (the noisy inputs go to DIR/noisy/).")
    r.add_argument("run", metavar="RUN", help="run folder written by `aestudio train` or the studio")
    data_flags(r)
    r.add_argument("--out", required=True, metavar="DIR", help="folder to write the PNG files into")
    r.add_argument("--noise", metavar="SPEC",
                   help="corrupt the inputs first: none, gaussian:SIGMA, saltpepper:P, mask:P, or 'run' for the "
                        "run's training noise (default none)")
    r.add_argument("--seed", type=int, default=0, metavar="N", help="seed for the noise (default 0)")

    x = sub.add_parser("export", help="write the encoder and decoder as ONNX or TorchScript files",
                       description="Export a run's encoder and decoder with a free batch size, each checked against "
                                   "PyTorch before it is written. ONNX: encoder.onnx (input 'images', N x C x H x W "
                                   "in [0, 1]; output 'codes', a VAE's mean code) and decoder.onnx (input 'codes'). "
                                   "TorchScript: encoder.pt and decoder.pt. ONNX needs `pip install 'aestudio[export]'`.")
    x.add_argument("run", metavar="RUN", help="run folder written by `aestudio train` or the studio")
    x.add_argument("--onnx", metavar="DIR", help="folder for encoder.onnx and decoder.onnx")
    x.add_argument("--torchscript", metavar="DIR", help="folder for encoder.pt and decoder.pt")
    x.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch")

    c = sub.add_parser("code", help="print a standalone PyTorch file with the run's architecture",
                       description="Print a readable, standalone PyTorch file (torch and safetensors only) that "
                                   "defines the run's exact model. Run it with the run folder as its argument: it "
                                   "loads the weights strictly and prints the parameter count.")
    c.add_argument("run", metavar="RUN", help="run folder written by `aestudio train` or the studio")


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _run(path: str):
    from aestudio.core.checkpoint import load_run

    run = load_run(path, device="cpu")
    for warning in run.warnings:
        _err(f"note: {warning}")
    return run


def _is_named_set(spec: str) -> bool:
    from aestudio.core.checkpoint import BUNDLED_SPECS, DOWNLOADABLE_SPECS

    return spec.strip().lower() in BUNDLED_SPECS + DOWNLOADABLE_SPECS


def _own_data_spec(args: argparse.Namespace, run) -> str:
    """Without --data: the data set the run records (untrusted input: aestudio.core.checkpoint's rules)."""
    from aestudio.cli import UsageError
    from aestudio.core.checkpoint import UntrustedDataError, resolve_data_spec

    if args.image_size or args.channels or args.classes:
        raise UsageError("--image-size, --channels and --classes need --data (without it the run's own set is "
                         "read as it was trained)")
    try:
        spec = resolve_data_spec(run.meta.get("data"), run.path, trust=args.trust_data)
    except UntrustedDataError as e:
        raise UsageError(f"{e}; pass --trust-data to read it anyway, or --data SPEC") from None
    if not spec:
        raise UsageError("this run does not record its data set; pass --data SPEC")
    return spec


def _data(args: argparse.Namespace, run):
    """The --data set (default: the run's own), checked against the model's image shape. Folders are
    loaded at the model's size and channels (their images are cropped and resized anyway); a named set
    keeps its own unless --image-size / --channels ask otherwise."""
    from aestudio.cli import UsageError, _check_flags, _load
    from aestudio.core.export import check_data_shape

    _check_flags(args, ("image_size",))
    if args.data is None:
        args.data = _own_data_spec(args, run)
        args.classes = run.meta.get("classes")
        _err(f"data: {args.data} (the run's own set; --data SPEC for another)")
    c, h, w = (int(v) for v in run.model_config.input_shape)
    size, channels = args.image_size, args.channels
    if not _is_named_set(args.data):
        size = size or (h if h == w else None)
        channels = channels or c
    background = args.background or run.meta.get("background") or "auto"
    data = _load(args.data, size, channels, args.classes, background=background)
    try:
        check_data_shape(run.model_config, data, args.data)
    except Exception as e:
        hint = "" if args.image_size or args.channels else " (--image-size and --channels convert a set)"
        raise UsageError(f"{e}{hint}") from None
    _err(data.summary())
    return data


def _progress(label: str):
    from aestudio.cli import _data_progress

    return _data_progress(label)


def _finish_progress(cb) -> None:
    from aestudio.cli import _clear_line

    if getattr(cb, "dirty", False):
        _clear_line()


def cmd_encode(args: argparse.Namespace) -> int:
    from aestudio.core.export import code_format, encode_set, prepare_dir, prepare_file, write_codes

    fmt = code_format(args.out, args.format)
    # the output must be writable before anything is loaded or computed
    prepare_dir(args.out) if fmt == "projector" else prepare_file(args.out)
    run = _run(args.run)
    data = _data(args, run)
    progress = _progress("encoding")
    codes = encode_set(run.model, data, progress=progress)
    _finish_progress(progress)
    paths = write_codes(args.out, codes, data, fmt)
    what = "Embedding Projector files" if fmt == "projector" else f"{fmt} codes"
    print(f"wrote {data.n:,} codes of {codes.shape[1]} dimensions ({what}): {', '.join(str(p) for p in paths)}",
          flush=True)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from aestudio.cli import _check_flags
    from aestudio.core.export import prepare_dir, write_reconstructions
    from aestudio.core.noise import parse_noise

    _check_flags(args, ("eval_seed",))
    noise_spec = args.noise
    out = prepare_dir(args.out)
    run = _run(args.run)
    if noise_spec is not None and noise_spec.strip().lower() == "run":
        noise_spec = run.train_config.noise
    noise = parse_noise(noise_spec)
    data = _data(args, run)
    progress = _progress("reconstructing")
    paths = write_reconstructions(out, run.model, data, noise, seed=args.seed, progress=progress)
    _finish_progress(progress)
    what = f"denoised images of {noise.spec()} inputs (inputs in {out / 'noisy'})" if noise.active else "reconstructions"
    print(f"wrote {len(paths):,} {what} to {out}", flush=True)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from aestudio.cli import UsageError
    from aestudio.core.export import export_onnx, export_torchscript, prepare_dir

    if not args.onnx and not args.torchscript:
        raise UsageError("say what to export: --onnx DIR and/or --torchscript DIR")
    for folder in (args.onnx, args.torchscript):
        if folder:
            prepare_dir(folder)
    if args.onnx:
        from aestudio.core.export import _require

        _require("onnx", "ONNX export")
    run = _run(args.run)
    checks = []
    if args.onnx:
        checks += export_onnx(run.model, args.onnx)
    if args.torchscript:
        checks += export_torchscript(run.model, args.torchscript)
    for check in checks:
        print(f"{check.path}: {check.text().split(': ', 1)[1]}", flush=True)
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    from aestudio.core.checkpoint import read_config
    from aestudio.core.codegen import generate_code

    model_config, _train, _meta = read_config(_run_config_path(args.run))
    sys.stdout.write(generate_code(model_config))
    sys.stdout.flush()
    return 0


def _run_config_path(path: str):
    """The config.json of a run folder (or the file itself); RunError when it is not a run."""
    import os
    from pathlib import Path

    from aestudio.core.checkpoint import CONFIG_NAME, WEIGHTS_NAME, RunError

    p = Path(path)
    if p.is_file() and p.name in (CONFIG_NAME, WEIGHTS_NAME):
        p = p.parent
    if not p.is_dir():
        raise RunError(f"no run folder at {path}")
    if not (p / CONFIG_NAME).is_file() or not os.path.lexists(p / WEIGHTS_NAME):
        raise RunError(f"{path} is not an aestudio run: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    return p / CONFIG_NAME


def run_command(args: argparse.Namespace) -> int:
    return {"encode": cmd_encode, "reconstruct": cmd_reconstruct, "export": cmd_export, "code": cmd_code}[args.command](args)
