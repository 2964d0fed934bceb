"""Logging a training run to TensorBoard, for users who already live there (`aestudio train --tensorboard DIR`).

    log = TensorBoardLog("tb/run1")          # ExportError (one line) when tensorboard is not installed
    for ev in trainer.run():
        if isinstance(ev, EpochEnd):
            log.epoch(ev, trainer)
    log.finish(trainer)

What it writes, with the optimizer step as TensorBoard's step (so stacked pretraining and fine-tuning
follow each other on one axis):

* scalars `train/<term>` and `val/<term>` for every loss term of every epoch (total, recon, kl, ...),
  and `speed/images_per_sec`;
* an image `reconstructions` each epoch: a fixed row of validation images over the model's
  reconstructions of them;
* at the end, the codes of up to `max_codes` validation images as an embedding (with their labels
  and thumbnails), for TensorBoard's Projector tab.

It only reads the trainer between events (the training generator is paused then), in eval mode
and without gradients, and puts the model back in the mode it found it in.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .export import INSTALL_HINT, ExportError, item_labels, prepare_dir


def check_available() -> None:
    """ExportError (one line saying how to install it) unless TensorBoard logging can work here."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ExportError(f"--tensorboard needs the tensorboard package, which is not installed; "
                          f"install it with: {INSTALL_HINT}") from None


class TensorBoardLog:
    def __init__(self, logdir: str | os.PathLike, images: int = 8, max_codes: int = 1000):
        check_available()
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = prepare_dir(logdir)
        self.writer = SummaryWriter(log_dir=str(self.logdir))
        self.images = int(images)
        self.max_codes = int(max_codes)
        self.closed = False

    # ---- per epoch ----------------------------------------------------------------------------
    def epoch(self, ev: Any, trainer: Any) -> None:
        """Scalars and the reconstruction grid of one EpochEnd event."""
        step = int(ev.step)
        for split, terms in (("train", ev.train), ("val", ev.val)):
            for key, value in (terms or {}).items():
                self.writer.add_scalar(f"{split}/{key}", float(value), step)
        self.writer.add_scalar("speed/images_per_sec", float(ev.images_per_sec), step)
        grid = self._grid(trainer)
        if grid is not None:
            self.writer.add_image("reconstructions", grid, step, dataformats="CHW")
        self.writer.flush()

    def _grid(self, trainer: Any) -> np.ndarray | None:
        """(C, 2H, n*W) float in [0, 1]: validation images on top, reconstructions below."""
        val = trainer.val_set
        n = min(self.images, val.n)
        if n == 0:
            return None
        x = torch.from_numpy(val.images[:n]).float().div_(255.0)
        out = _run_model(trainer.model, x, lambda m, xb: m.decode(m.encode(xb).mu).clamp(0.0, 1.0))
        top, bottom = x.numpy(), out
        c, h, w = top.shape[1:]
        rows = np.concatenate([top, bottom], axis=2)  # (n, C, 2H, W)
        return rows.transpose(1, 2, 0, 3).reshape(c, 2 * h, n * w)

    # ---- at the end ---------------------------------------------------------------------------
    def finish(self, trainer: Any, step: int | None = None) -> None:
        """The codes of (up to max_codes) validation images as an embedding, then close."""
        if self.closed:
            return
        val = trainer.val_set
        n = min(self.max_codes, val.n)
        if n:
            x = torch.from_numpy(val.images[:n]).float().div_(255.0)
            codes = _run_model(trainer.model, x, lambda m, xb: m.encode(xb).mu)
            sub = val.subset(slice(0, n))
            labels = item_labels(sub) if sub.labels is not None else None
            self.writer.add_embedding(torch.from_numpy(codes), metadata=labels, label_img=x, global_step=step,
                                      tag="codes")
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.flush()
            self.writer.close()


def _run_model(model: torch.nn.Module, x: torch.Tensor, fn, batch: int = 512) -> np.ndarray:
    """`fn(model, batch)` over x on the model's device, in eval mode without gradients; the model's
    mode is restored after."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    outs = []
    try:
        with torch.no_grad():
            for i in range(0, x.shape[0], batch):
                outs.append(fn(model, x[i:i + batch].to(device)).float().cpu().numpy())
    finally:
        model.train(was)
    return np.concatenate(outs)
