"""`aestudio train --resume RUN`: continue a run folder, or fork it with changed settings.

    aestudio train --resume runs/conv-ae-16 --epochs 5            # 5 more epochs, saved back into the run
    aestudio train --resume runs/conv-ae-16 --epochs 5 --lr 5e-4  # a fork: runs/conv-ae-16-2 names its parent

The run's weights, optimizer state (optimizer.safetensors; an older run without it continues with a
fresh optimizer and says so), train / validation split and history are those of the run folder
(core.trained). Only the flags given on the command line change a setting; any change other than
--epochs and --device makes a fork, saved in --out (default: beside the run as RUN-2, RUN-3, ...)
whose config.json names the run as its "parent". Without a change the continued run replaces RUN
(or goes to --out); a stopped or failed continuation never replaces RUN.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import Any

from aestudio.cli import (PROG, UsageError, _err, _fmt_terms, _fmt_time, _kl_warmup, _load, _Progress,
                          make_parser)

#: Flags that name the data; a continued model trains on its own data and split.
DATA_FLAGS = ("data", "classes", "image_size", "channels", "background")
#: Flags that do not apply to a continued run.
UNSUPPORTED = ("nproc", "memory_budget", "cache_dir", "tensorboard")


def explicit_flags(argv: list[str]) -> set[str]:
    """The `train` options given on the command line (argparse fills the others with defaults)."""
    parser = make_parser()
    sub = next(a for a in parser._subparsers._group_actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    train = sub.choices["train"]
    for action in train._actions:  # noqa: SLF001
        action.default = argparse.SUPPRESS
        action.required = False
    ns = train.parse_args(argv[argv.index("train") + 1:] if "train" in argv else argv)
    return set(vars(ns))


def cmd_resume(args: argparse.Namespace) -> int:
    from aestudio.core.checkpoint import RunError, UntrustedDataError, beside_name, load_run, resolve_data_spec
    from aestudio.core.config import ConfigError, ModelConfig, TrainConfig
    from aestudio.core.datasets import DatasetError
    from aestudio.core.trained import (from_run, from_trainer, parent_record, resume_trainer, save_trained,
                                       settings_changes)
    from aestudio.core.training import BatchEnd, Diagnosis, EpochEnd, Finished

    given = explicit_flags(list(getattr(args, "argv", None) or []))
    bad = [f for f in DATA_FLAGS if f in given]
    if bad:
        raise UsageError(f"--resume continues on the run's own data and split; --{bad[0].replace('_', '-')} cannot "
                         "change them (train a new run instead)")
    bad = [f for f in UNSUPPORTED if f in given]
    if bad:
        raise UsageError(f"--{bad[0].replace('_', '-')} is not available with --resume")
    try:
        run = load_run(args.resume)
    except RunError as e:
        raise UsageError(str(e)) from None
    meta = run.meta
    try:  # the run folder's data spec is untrusted (see aestudio.core.checkpoint)
        spec = resolve_data_spec(run.data_spec, run.path)
    except UntrustedDataError as e:
        raise UsageError(f"{e}; resume it where its data is trusted, or train a new run") from None
    if not spec:
        raise UsageError("the run does not record its data set, so it cannot continue")
    c, h, w = run.model_config.input_shape
    try:
        data = _load(spec, meta.get("image_size") or (h if h == w else None), meta.get("channels") or c,
                     meta.get("classes"), allow_download=False, background=meta.get("background", "auto"))
    except DatasetError as e:
        raise UsageError(f"cannot load the run's data set {spec}: {e}") from None
    _err(data.summary())
    trained = from_run(run, data, spec)
    for note in trained.notes:
        _err(f"note: {note}")

    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"kl_warmup"}
    model_cfg = dataclasses.replace(trained.model_config,
                                    **{k: getattr(args, k) for k in given & model_fields if k != "input_shape"})
    train_cfg = dataclasses.replace(trained.train_config, **{k: getattr(args, k) for k in given & train_fields})
    if "kl_warmup" in given:
        train_cfg = _kl_warmup(train_cfg, args.kl_warmup)
    try:
        model_cfg.validate()
        train_cfg.validate()
    except ConfigError as e:
        raise UsageError(str(e)) from None
    changes = settings_changes(trained, model_cfg, train_cfg)
    parent = parent_record(trained) if changes else (dict(trained.parent) if trained.parent else None)
    if args.out:
        out = Path(args.out)
    else:
        out = beside_name(run.path) if changes else Path(run.path)
    try:
        trainer = resume_trainer(trained, model_cfg, train_cfg, data)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    what = f"forking {run.path.name} (changed: {', '.join(changes)})" if changes else f"continuing {run.path.name}"
    _err(f"{what} from epoch {trained.epoch}: {train_cfg.epochs} more epoch(s) on {trainer.device}")

    progress = _Progress(quiet=args.quiet)
    finished: Finished | None = None
    last = None  # the value after the last completed epoch (a stop mid-epoch keeps those weights)
    interrupts = [0]

    def on_sigint(signum, frame) -> None:  # noqa: ARG001
        interrupts[0] += 1
        if interrupts[0] > 1:
            raise KeyboardInterrupt
        trainer.control.stop()
        progress.clear()
        _err("stopping after this batch (Ctrl-C again to abort without saving) ...")

    try:
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        old_handler = None
    t0 = time.monotonic()
    value: dict[str, Any] = {"data_spec": spec, "parent": parent}
    try:
        for ev in trainer.run():
            if isinstance(ev, BatchEnd):
                progress.batch(ev)
            elif isinstance(ev, EpochEnd):
                val = f" | val {_fmt_terms(ev.val)}" if ev.val else ""
                progress.line(f"{ev.stage} epoch {ev.epoch}/{ev.epochs}  train {_fmt_terms(ev.train)}{val}  "
                              f"({ev.seconds:.1f} s, {ev.images_per_sec:,.0f} img/s)")
                last = from_trainer(trainer, **value)
            elif isinstance(ev, Diagnosis):
                progress.line(f"diagnosis: {ev.text()}")
            elif isinstance(ev, Finished):
                finished = ev
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
        progress.clear()
    assert finished is not None
    good = finished.reason == "completed"
    if good:
        final = from_trainer(trainer, **value)
    else:  # the weights of the last completed epoch (or the run's own), with that epoch's optimizer state
        epoch = finished.epochs_done
        optimizer = last.optimizer if last is not None and last.epoch == epoch else trained.optimizer
        final = from_trainer(trainer, epoch=epoch, optimizer=optimizer, kept=f"the weights after epoch {epoch}",
                             **value)
    same_folder = Path(os.path.abspath(out)) == Path(os.path.abspath(run.path))
    replace = good and (same_folder or bool(args.overwrite))
    try:
        saved = save_trained(final, out, overwrite=replace, beside=not replace, classes=meta.get("classes"),
                             finished=finished.reason, seconds=round(time.monotonic() - t0, 2))
    except RunError as e:
        raise UsageError(str(e)) from None
    if Path(saved) != Path(os.path.abspath(out)):
        _err(f"note: {out} already holds a run; saved this one beside it as {saved}")
    if finished.reason == "nan":
        _err(f"{PROG}: {finished.message}")
        print(f"saved the last finite weights to {saved}", flush=True)
        return 1
    if finished.reason == "stopped":
        _err(finished.message)
        print(f"saved the partly trained run to {saved}", flush=True)
        return 130
    verb = "Forked" if changes else "Continued"
    print(f"{verb} {run.path.name} from epoch {trained.epoch} to epoch {final.epoch}. Saved the run to {saved} "
          f"({_fmt_time(time.monotonic() - t0)})", flush=True)
    return 0
