"""What the studio's per-epoch model snapshot costs the training thread.

    python3 dev.py bench snapshot_cost [--data fashion-10k] [--rounds 7] [--threads 2]

After each epoch the studio's training worker hands the panels a snapshot: the trained model as
one value plus the codes of up to 10,000 validation images for the latent map
(`workers.training.make_snapshot`). The training thread makes it, so its time is taken from
training. The codes come from the epoch's validation pass, which encodes those images anyway
(`Trainer.keep_val_codes`, `Trainer.val_codes`); the baseline is what the snapshot did before,
and what a straightforward implementation does: encode the validation images a second time.

The default conv model trains one epoch on the data set; then the two ways alternate for
`--rounds` rounds, each timed whole (weights copied, model built, codes gathered). Prints the
median milliseconds with their spread (min-max), the ratio of the medians, and the epoch's own
time for scale.
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
from aestudio.core.training import EpochEnd, Trainer  # noqa: E402
from aestudio.workers.training import MAX_MAP_POINTS, make_snapshot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-10k")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the studio trains with every core)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    trainer = Trainer(ModelConfig(input_shape=data.shape), TrainConfig(epochs=1, batch_size=32, lr=2e-3), data)
    trainer.keep_val_codes = MAX_MAP_POINTS
    t0 = time.perf_counter()
    epoch_s = None
    for event in trainer.run():
        if isinstance(event, EpochEnd):
            epoch_s = event.seconds
    assert epoch_s is not None and trainer.val_codes(1) is not None
    n = min(len(trainer.val_idx), MAX_MAP_POINTS)
    print(f"{args.data}: one epoch of the default conv model in {epoch_s:.2f} s ({time.perf_counter() - t0:.1f} s "
          f"with set-up); snapshot of {n:,} validation codes; {args.threads} threads", flush=True)

    kept = trainer._val_codes
    times: dict[str, list[float]] = {"codes from validation": [], "encode again (before)": []}
    for r in range(args.rounds):
        order = list(times) if r % 2 == 0 else list(reversed(times))
        for name in order:
            trainer._val_codes = kept if name.startswith("codes") else None
            t = time.perf_counter()
            snap = make_snapshot(trainer, 1)
            times[name].append((time.perf_counter() - t) * 1e3)
            assert snap.codes.shape[0] == n
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in times.items()), flush=True)
    trainer._val_codes = kept
    for name, v in times.items():
        print(f"{name:<24}{statistics.median(v):>7.0f} ms ({min(v):.0f}-{max(v):.0f})")
    a, b = (statistics.median(v) for v in times.values())
    print(f"time codes-from-validation / encode-again: {a / b:.2f}x; saved per epoch: {b - a:.0f} ms "
          f"({(b - a) / 1e3 / epoch_s:.1%} of this epoch)")


if __name__ == "__main__":
    main()
