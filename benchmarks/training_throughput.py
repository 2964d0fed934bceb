"""Training speed: the aestudio engine against a bare PyTorch loop, timed over the same window.

    python3 dev.py bench training_throughput [--model mlp|conv|conv-dense] [--threads 2] [--epochs 2] [--repeats 5]

Both sides do the same job on the same data (by default 70,000 random 1x28x28 images: 60,000 to train on,
10,000 held out) with the same model, batch size, optimiser (the one the engine builds for the setting `--optimizer`:
by default Muon for convolution kernels and PyTorch's fused Adam for the rest; `--optimizer adam`:
fused Adam for all) and threads:

* the bare loop is what a competent user writes: the float32 images in one in-memory tensor,
  batches as index slices of a fresh permutation each epoch, and the validation loss at the end of
  each epoch under ``torch.no_grad()``;
* the engine is ``Trainer(...)`` and ``run()`` to its ``Finished`` event, with everything it adds
  (uint8 to float per batch, the training doctor, the per-epoch weight copy, events).

Each side is timed from before it builds its model to after its last epoch's validation (the
same window; nothing is left out of either). The two run alternately, ``--repeats`` times, so
machine load hits both alike; the median, the spread (min-max) of each side and of the per-pair
ratio are printed, and the same ratio in CPU seconds of this process (``time.process_time``),
which moves less than wall time on a machine shared with other jobs. The goal is engine / bare >= 0.95. A ratio above 1 would mean the benchmark
is wrong: the engine does strictly more work. Both sides run with subnormal numbers flushed to
zero (``torch.set_flush_denormal``), so that neither is slowed by its weights' luck.
"""
from __future__ import annotations

import argparse
import statistics
import time

import aestudio  # noqa: F401  (first: sets OpenMP's spin-wait before torch loads)
import numpy as np
import torch

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import ImageSet, split_indices
from aestudio.core.models import Autoencoder
from aestudio.core.optim import OPTIMIZERS, make_optimizer
from aestudio.core.training import Finished, Trainer

N_TOTAL, VAL_FRACTION = 70_000, 1 / 7


def bare_loop(cfg: ModelConfig, x_train: torch.Tensor, x_val: torch.Tensor, epochs: int, batch: int,
              lr: float, optimizer: str) -> tuple[float, float]:
    """(wall, CPU) seconds for a plain training loop with a validation pass per epoch."""
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    model = Autoencoder(cfg)
    opt = make_optimizer(model.parameters(), lr, torch.device("cpu"), optimizer)  # the engine's optimiser
    n = x_train.shape[0]
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            xb = x_train[perm[i:i + batch]]
            loss = ((model(xb) - xb) ** 2).flatten(1).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = sum(float(((model(xv) - xv) ** 2).flatten(1).sum(1).sum()) for xv in x_val.split(1024)) / len(x_val)
    assert np.isfinite(val)
    return time.perf_counter() - t0, time.process_time() - c0


def engine(cfg: ModelConfig, data: ImageSet, epochs: int, batch: int, lr: float, optimizer: str) -> tuple[float, float]:
    """(wall, CPU) seconds for the engine, from building the Trainer to its Finished event."""
    t0, c0 = time.perf_counter(), time.process_time()
    trainer = Trainer(cfg, TrainConfig(epochs=epochs, batch_size=batch, lr=lr, val_fraction=VAL_FRACTION,
                                       optimizer=optimizer), data)
    for event in trainer.run():
        last = event
    assert isinstance(last, Finished) and last.reason == "completed", last
    return time.perf_counter() - t0, time.process_time() - c0


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    return f"median {fmt.format(statistics.median(values))} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--model", choices=["mlp", "conv", "conv-dense"], default="mlp",
                    help="mlp: 784-512-128-32; conv: conv 32-64, code 16, no dense layer; conv-dense: the default "
                         "conv model (with its dense layer of 256 units)")
    ap.add_argument("--images", type=int, default=N_TOTAL, help="images in all (1/7 held out), default 70,000")
    ap.add_argument("--optimizer", choices=OPTIMIZERS, default="auto",
                    help="the optimizer setting, for both sides (default auto: Muon for conv kernels, Adam for the rest)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # Subnormal floats flushed to zero on both sides: otherwise a side's speed depends on how many of
    # its numbers happen to go subnormal. The bare loop's model (without the engine's data-driven
    # start) went subnormal in its second epoch and took 8.8 s instead of 7.1 s (mlp, one thread),
    # which put the ratio at 1.12, above what a loop doing more work can reach.
    torch.set_flush_denormal(True)
    rng = np.random.default_rng(0)
    images = (rng.random((args.images, 1, 28, 28)) * 255).astype(np.uint8)
    data = ImageSet(f"random-{args.images}", images, None, [])
    train_idx, val_idx = split_indices(args.images, VAL_FRACTION, 0)  # the engine's own split
    x = torch.from_numpy(images).float().div_(255)
    x_train, x_val = x[torch.from_numpy(train_idx)], x[torch.from_numpy(val_idx)]
    if args.model == "mlp":
        cfg = ModelConfig(arch="dense", input_shape=(1, 28, 28), latent=32, hidden=[512, 128])
    else:
        cfg = ModelConfig(arch="conv", input_shape=(1, 28, 28), latent=16,
                          dense_layers=[] if args.model == "conv" else None)
    # one-time costs of the process, paid before the timed rounds so neither side carries them:
    # torch imports its compiler stack (torch._dynamo, seconds) when the first optimizer is built
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    bare, eng, ratios, cpu_ratios = [], [], [], []
    for r in range(args.repeats):  # alternate, and alternate which side goes first
        pair, cpu = {}, {}
        order = ("bare", "engine") if r % 2 == 0 else ("engine", "bare")
        for side in order:
            if side == "bare":
                pair[side], cpu[side] = bare_loop(cfg, x_train, x_val, args.epochs, args.batch_size, 1e-3, args.optimizer)
            else:
                pair[side], cpu[side] = engine(cfg, data, args.epochs, args.batch_size, 1e-3, args.optimizer)
        bare.append(pair["bare"])
        eng.append(pair["engine"])
        ratios.append(pair["bare"] / pair["engine"])
        cpu_ratios.append(cpu["bare"] / cpu["engine"])
        print(f"  repeat {r + 1}: bare {pair['bare']:.2f} s (CPU {cpu['bare']:.2f}), engine {pair['engine']:.2f} s "
              f"(CPU {cpu['engine']:.2f}), ratio {ratios[-1]:.3f} (CPU time {cpu_ratios[-1]:.3f})", flush=True)
    images_done = args.epochs * len(train_idx)
    print(f"model={args.model} threads={args.threads} batch={args.batch_size} epochs={args.epochs} "
          f"repeats={args.repeats} (each side timed whole: model built, trained, validated each epoch)")
    print(f"bare PyTorch loop : {spread([images_done / t for t in bare])} training images/s")
    print(f"aestudio engine   : {spread([images_done / t for t in eng])} training images/s")
    print(f"ratio engine/bare : {spread(ratios, '{:.3f}')}  (goal >= 0.95)")
    print(f"same, CPU seconds : {spread(cpu_ratios, '{:.3f}')}  (this process's CPU time: less sensitive to other "
          "jobs on a shared machine)")


if __name__ == "__main__":
    main()
