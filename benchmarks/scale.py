"""Streamed versus in-memory training: peak memory as the data set grows, and throughput.

Writes 60,000 generated 32x32 RGB PNGs (5 class folders) and a 20,000-image folder of hard links
to the first of them, then trains one epoch on each folder in a fresh child process per case:

* ``memory``: today's path, the decoded set in memory (``--memory-budget`` huge);
* ``stream``: the folder decoded once into the uint8 cache and streamed (``--memory-budget 1``),
  with a background prefetch thread. The first streamed run of a folder builds its cache.

Each child prints its peak resident memory (``ru_maxrss``, the whole process: loading, cache
building and training) and its training throughput (training images / wall seconds of the
epoch loop, validation included). The figure of merit:

* peak RSS of the 60k run minus that of the 20k run, per path (goal: at most 64 MB streamed,
  against about 550 MB in memory);
* streamed throughput / in-memory throughput on the same folder (goal: at least 0.8), measured in
  one process that alternates epochs of the two paths (best epoch of each), since the per-case
  children above run at different times of a shared machine's load.

Run it single-threaded at low priority; it takes a few minutes:

    nice -n 10 .venv/bin/python benchmarks/scale.py [--sizes 20000 60000] [--work /tmp/aestudio-scale]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZE = 32
CLASSES = 5


def write_images(root: Path, count: int) -> None:
    """`count` PNGs: smooth random colour blobs (compressible like photos, not pure noise)."""
    rng = np.random.default_rng(0)
    have = sum(1 for _ in root.rglob("*.png")) if root.exists() else 0
    if have >= count:
        return
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    from PIL import Image

    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    for i in range(count):
        cx, cy, r = rng.random(3)
        colour = rng.integers(0, 256, 3)
        blob = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (0.02 + 0.1 * r)))[..., None]
        pixels = (blob * colour + (1 - blob) * 40 + rng.normal(0, 8, (SIZE, SIZE, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"class{i % CLASSES}" / f"{i:06d}.png")


def link_subset(src: Path, dst: Path, count: int) -> None:
    if dst.exists() and sum(1 for _ in dst.rglob("*.png")) == count:
        return
    files = sorted(src.rglob("*.png"), key=lambda p: p.name)[:count]
    for f in files:
        target = dst / f.parent.name / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(f, target)


def child(mode: str, folder: str, cache: str, epochs: int) -> None:
    """One measured case (runs in its own process, so its peak RSS is its own)."""
    import torch

    torch.set_num_threads(1)
    from aestudio.core.config import ModelConfig, TrainConfig
    from aestudio.core.datasets import is_streamed, load_dataset
    from aestudio.core.training import EpochEnd, Trainer

    t0 = time.perf_counter()
    budget = 1 if mode == "stream" else 1 << 50
    data = load_dataset(folder, image_size=SIZE, channels=3, memory_budget=budget, decode_cache_dir=cache)
    load_s = time.perf_counter() - t0
    assert is_streamed(data) == (mode == "stream")
    model = ModelConfig(arch="conv", latent=16, hidden=(16, 32), dense_layers=(), input_shape=(3, SIZE, SIZE))
    train = TrainConfig(epochs=epochs, batch_size=128, lr=2e-3, device="cpu", val_fraction=0.1)
    trainer = Trainer(model, train, data)
    n_train = len(trainer.train_idx)
    t1 = time.perf_counter()
    last = None
    for ev in trainer.run():
        if isinstance(ev, EpochEnd):
            last = ev
    train_s = time.perf_counter() - t1
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "n": data.n, "load_s": round(load_s, 2), "train_s": round(train_s, 2),
                      "images_per_s": round(n_train * epochs / train_s, 1), "peak_rss_mb": round(peak_kb / 1024, 1),
                      "val_total": last.val.get("total") if last else None}))


def throughput(folder: str, cache: str, rounds: int) -> None:
    """Training images per second of the batch loop, streamed and in memory, on the same folder in one
    process, alternating epochs so that the machine's load hits both alike; the best epoch of each."""
    import torch

    torch.set_num_threads(1)
    from aestudio.core.config import ModelConfig, TrainConfig
    from aestudio.core.datasets import load_dataset
    from aestudio.core.training import BatchEnd, Trainer

    model = ModelConfig(arch="conv", latent=16, hidden=(16, 32), dense_layers=(), input_shape=(3, SIZE, SIZE))
    train = TrainConfig(epochs=1, batch_size=128, lr=2e-3, device="cpu", val_fraction=0.1)
    sets = {"stream": load_dataset(folder, image_size=SIZE, channels=3, memory_budget=1, decode_cache_dir=cache),
            "memory": load_dataset(folder, image_size=SIZE, channels=3, memory_budget=1 << 50)}
    best = {k: 0.0 for k in sets}
    for _ in range(rounds):
        for mode, data in sets.items():
            trainer = Trainer(model, train, data)
            first = last = None
            images = 0
            for ev in trainer.run():
                if isinstance(ev, BatchEnd):
                    now = time.perf_counter()
                    if first is None:
                        first = now
                    else:
                        images += trainer.train_config.batch_size
                    last = now
            best[mode] = max(best[mode], images / (last - first))
    print(json.dumps({"throughput": {k: round(v, 1) for k, v in best.items()},
                      "ratio": round(best["stream"] / best["memory"], 3)}))


def run_child(mode: str, folder: Path, cache: Path, epochs: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), str(cache), str(epochs)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} on {folder} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--throughput":
        throughput(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[20_000, 60_000])
    ap.add_argument("--work", default="/tmp/aestudio-scale")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="alternating epochs per path for the throughput figure")
    args = ap.parse_args()
    work = Path(args.work)
    small, large = sorted(args.sizes)
    t = time.perf_counter()
    write_images(work / f"img{large}", large)
    link_subset(work / f"img{large}", work / f"img{small}", small)
    print(f"folders ready ({time.perf_counter() - t:.0f} s)", flush=True)
    cache = work / "cache"
    os.environ["AESTUDIO_FOLDER_CACHE"] = str(cache)  # the loader's cache too: nothing lands in the user's cache
    results = {}
    for n in (small, large):
        for mode in ("stream", "memory"):
            r = run_child(mode, work / f"img{n}", cache, args.epochs)
            results[(mode, n)] = r
            print(json.dumps(r), flush=True)
    d_stream = results[("stream", large)]["peak_rss_mb"] - results[("stream", small)]["peak_rss_mb"]
    d_memory = results[("memory", large)]["peak_rss_mb"] - results[("memory", small)]["peak_rss_mb"]
    print(f"peak RSS growth {small:,} -> {large:,} images: streamed {d_stream:+.0f} MB, in memory {d_memory:+.0f} MB")
    out = subprocess.run([sys.executable, __file__, "--throughput", str(work / f"img{small}"), str(cache),
                          str(args.rounds)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"throughput failed:\n{out.stderr[-3000:]}")
    tp = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"training throughput on {small:,} images (best of {args.rounds} alternating epochs): streamed "
          f"{tp['throughput']['stream']:,.0f} img/s, in memory {tp['throughput']['memory']:,.0f} img/s, "
          f"ratio {tp['ratio']:.2f}")


if __name__ == "__main__":
    main()
