"""Folder loading speed: ``load_dataset(folder)`` against a plain sequential Pillow loop.

Writes 10,000 small grayscale PNGs (28x28, 5 class folders) into a temporary folder, then
times, in the same run and on the same warm files, the loop a user would write (open,
convert, resize, ``np.asarray``) and ``aestudio.core.datasets.load_dataset``.  Each is timed
``--repeats`` times, alternating, and the best run is kept.  The goal is a ratio of at least 1.0.
``--source-size`` writes larger files (resized to ``--size`` on loading), where decoding
dominates and ``load_dataset`` switches to its thread pool.

    .venv/bin/python benchmarks/folder_loading.py [--images 10000] [--size 28] [--source-size 28] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aestudio.core.datasets import load_dataset


def write_images(root: Path, count: int, size: int, classes: int = 5) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir()
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
        pixels[rng.random((size, size)) < 0.6] = 0  # MNIST-like: mostly black background
        Image.fromarray(pixels).save(root / f"class{i % classes}" / f"{i:05d}.png")


def plain_loop(root: Path, size: int) -> np.ndarray:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".png")
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("L").resize((size, size), Image.Resampling.LANCZOS)))
    return np.stack(images)


def best_times(runs: list[Callable[[], object]], repeats: int) -> list[float]:
    """Best wall time of each run; the runs alternate so that machine load hits them alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=28, help="loaded image side")
    parser.add_argument("--source-size", type=int, default=28, help="side of the written PNGs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="aestudio-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_images(root, args.images, args.source_size)
        print(
            f"wrote {args.images:,} PNGs ({args.source_size}x{args.source_size} gray) "
            f"in {time.perf_counter() - start:.1f} s; "
            f"{os.cpu_count()} CPUs"
        )
        dataset = load_dataset(str(root), image_size=args.size)  # also warms the file cache
        assert dataset.n == args.images and not dataset.skipped, dataset.summary()
        difference = np.abs(plain_loop(root, args.size)[:, None].astype(int) - dataset.images)
        assert difference.mean() < 1.0, "both loaders should produce the same pixels"

        plain, ours = best_times(
            [lambda: plain_loop(root, args.size), lambda: load_dataset(str(root), image_size=args.size)],
            args.repeats,
        )
    print(f"plain sequential PIL loop: {args.images / plain:10,.0f} images/s")
    print(f"load_dataset(folder):      {args.images / ours:10,.0f} images/s")
    print(f"ratio: {plain / ours:.2f}x (goal >= 1.0)")


if __name__ == "__main__":
    main()
