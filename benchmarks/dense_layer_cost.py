"""What the conv model's default dense layer (or its default activation) costs in training time.

    python3 dev.py bench dense_layer_cost [--threads 1] [--rounds 3] [--epochs 2] [--data fashion-10k]
    python3 dev.py bench dense_layer_cost --what activation   # leaky ReLU (the default) against ReLU

Trains the default conv autoencoder (code 16) twice per round at the CLI's batch size and learning
rate: once as built by default (a dense layer of 256 units between the conv features and the code,
see `config.default_dense`) and once with `dense_layers=[]` (the code layer reads the conv
features directly, the default before). The two alternate in order from round to round; each is
timed whole, from building the Trainer to its last event (validation included). Prints the
median seconds with their spread and the ratio of the medians. What the layer buys in quality is
measured by `robustness.py`. With ``--what activation`` the two sides are the default model with
its default activation (leaky ReLU) and with ReLU, the default before.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aestudio  # noqa: E402,F401  (first: sets OpenMP's spin-wait before torch loads)
import torch  # noqa: E402

from aestudio.core.config import ModelConfig, TrainConfig  # noqa: E402
from aestudio.core.datasets import load_dataset  # noqa: E402
from aestudio.core.training import Trainer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--data", default="fashion-10k")
    ap.add_argument("--what", choices=("dense", "activation"), default="dense")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    if args.what == "dense":
        sides = {"dense 256 (default)": {"dense_layers": None}, "no dense layer": {"dense_layers": []}}
    else:
        sides = {"leaky ReLU (default)": {"activation": "leaky_relu"}, "ReLU": {"activation": "relu"}}
    base = ModelConfig(arch="conv", latent=16, input_shape=data.shape)
    print(f"{data.summary()}; conv AE-16, batch 32, {args.epochs} epochs, {args.threads} thread(s), "
          f"{args.rounds} rounds; default dense layers here: {base.dense_sizes}", flush=True)
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            cfg = ModelConfig(arch="conv", latent=16, input_shape=data.shape, **sides[name])
            t0 = time.perf_counter()
            for _ in Trainer(cfg, TrainConfig(epochs=args.epochs, batch_size=32, lr=2e-3, device="cpu"), data).run():
                pass
            seconds[name].append(time.perf_counter() - t0)
            print(f"  round {r + 1} {name:<20} {seconds[name][-1]:6.1f} s", flush=True)
    for name, v in seconds.items():
        print(f"{name:<20} {statistics.median(v):6.1f} s ({min(v):.1f}-{max(v):.1f})")
    a, b = (statistics.median(v) for v in seconds.values())
    first, second = list(sides)
    print(f"time {first} / {second}: {a / b:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
