"""Training images/second: the aestudio engine vs a bare PyTorch loop, same model, batch and threads.

    python3 dev.py bench training_throughput [--threads 2] [--epochs 2] [--model mlp|conv]

Both train the same architecture on the same preloaded tensor (Fashion-MNIST-sized random
data, 60,000 x 1 x 28 x 28), interleaved and repeated so machine noise hits both alike; the
ratio engine / bare is what matters (goal >= 0.95).
"""
from __future__ import annotations

import argparse
import statistics
import time

import aestudio  # noqa: F401  (first: sets OpenMP's spin-wait before torch loads)
import numpy as np
import torch

from aestudio.core.config import ModelConfig, TrainConfig
from aestudio.core.datasets import ImageSet
from aestudio.core.models import Autoencoder
from aestudio.core.training import BatchEnd, Trainer


def bare_loop(cfg: ModelConfig, x: torch.Tensor, epochs: int, batch: int, lr: float) -> float:
    torch.manual_seed(0)
    model = Autoencoder(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = x.shape[0]
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            xb = x[perm[i:i + batch]]
            loss = ((model(xb) - xb) ** 2).flatten(1).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epochs * n / (time.perf_counter() - t0)


def engine(cfg: ModelConfig, data: ImageSet, epochs: int, batch: int, lr: float) -> float:
    """Training images per wall-clock second from the end of the first batch to the end of the last
    (with one epoch this leaves out the validation pass the engine adds and the bare loop lacks)."""
    trainer = Trainer(cfg, TrainConfig(epochs=epochs, batch_size=batch, lr=lr, val_fraction=1 / 7), data)
    marks: list[tuple[float, int]] = []
    images = 0
    for e in trainer.run():
        if isinstance(e, BatchEnd):
            images += min(batch, trainer.x_train.shape[0] - (e.batch - 1) * batch)
            marks.append((time.perf_counter(), images))
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    return (n1 - n0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--model", choices=["mlp", "conv"], default="mlp")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_total = 70_000  # the engine holds out 1/7 for validation, leaving 60,000 to train on
    rng = np.random.default_rng(0)
    images = (rng.random((n_total, 1, 28, 28)) * 255).astype(np.uint8)
    data = ImageSet("random-70k", images, None, [])
    if args.model == "mlp":
        cfg = ModelConfig(arch="dense", input_shape=(1, 28, 28), latent=32, hidden=[512, 128])
    else:
        cfg = ModelConfig(arch="conv", input_shape=(1, 28, 28), latent=16)
    x = torch.from_numpy(images[:60_000]).float().div_(255)
    bare, eng = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(cfg, x, args.epochs, args.batch_size, 1e-3))
        eng.append(engine(cfg, data, args.epochs, args.batch_size, 1e-3))
    b, e = statistics.median(bare), statistics.median(eng)
    print(f"model={args.model} threads={args.threads} batch={args.batch_size} epochs={args.epochs} repeats={args.repeats}")
    print(f"bare PyTorch loop : {b:10,.0f} images/s")
    print(f"aestudio engine   : {e:10,.0f} images/s (training batches only, wall clock)")
    print(f"ratio engine/bare : {e / b:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
