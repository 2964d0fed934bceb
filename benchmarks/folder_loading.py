"""Folder loading: ``load_dataset(folder)`` against a lean Pillow loop, and reopening from the cache.

    python3 dev.py bench folder_loading [--images 10000] [--size 28] [--source-size 28] [--repeats 5]

Writes ``--images`` small grayscale PNGs (5 class folders) into a temporary folder, then times, in
the same process and on the same warm files:

* the loop a competent user writes: walk the folder, open each file, ``convert("L")``, stack
  (no resizing when the files already have the loaded size; with ``--source-size`` larger, it
  resizes too, as it must);
* ``load_dataset(folder, image_size=...)`` with the decoded-folder cache switched off: the first
  load of a folder (listing, checks, decoding in worker processes, transparency and colour rules);
* ``load_dataset`` again with the cache on and filled: reopening an unchanged folder.

The three alternate, ``--repeats`` times; the median and the spread (min-max) are printed, with
the per-round ratios. The very first decoding load of the process also pays for starting the
worker processes' fork server; it is printed on its own line. Goals: first load >= 1.5x the
lean loop on 2 cores; reopening >= 10x faster than the first load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aestudio.core.datasets import load_dataset  # noqa: E402
from aestudio.core.datasets.folder import list_folder  # noqa: E402


def write_images(root: Path, count: int, size: int, classes: int = 5) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir()
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
        pixels[rng.random((size, size)) < 0.6] = 0  # MNIST-like: mostly black background
        Image.fromarray(pixels).save(root / f"class{i % classes}" / f"{i:05d}.png")


def lean_loop(root: Path, size: int) -> np.ndarray:
    """Walk, open, convert, (resize only when needed), stack."""
    paths = sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names if f.endswith(".png"))
    images = []
    for path in paths:
        with Image.open(path) as image:
            gray = image.convert("L")
            if gray.size != (size, size):
                gray = gray.resize((size, size), Image.Resampling.LANCZOS)
            images.append(np.asarray(gray))
    return np.stack(images)


def spread(values: list[float], fmt: str) -> str:
    return f"median {fmt.format(statistics.median(values))} (min {fmt.format(min(values))}, max {fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=28, help="loaded image side")
    parser.add_argument("--source-size", type=int, default=28, help="side of the written PNGs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="aestudio-bench-") as tmp:
        root, cache = Path(tmp) / "images", Path(tmp) / "cache"
        root.mkdir()
        start = time.perf_counter()
        write_images(root, args.images, args.source_size)
        print(f"wrote {args.images:,} PNGs ({args.source_size}x{args.source_size} gray) in "
              f"{time.perf_counter() - start:.1f} s; {os.cpu_count()} CPUs", flush=True)

        def first_load():
            os.environ["AESTUDIO_FOLDER_CACHE"] = "off"
            return load_dataset(str(root), image_size=args.size)

        def cached_load():
            os.environ["AESTUDIO_FOLDER_CACHE"] = str(cache)
            return load_dataset(str(root), image_size=args.size)

        lean_loop(root, args.size)  # warm the file cache for everybody
        t = time.perf_counter()
        dataset = first_load()
        print(f"first decoding load of this process (starts the worker processes): {time.perf_counter() - t:.2f} s",
              flush=True)
        assert dataset.n == args.images and not dataset.skipped, dataset.summary()
        difference = np.abs(lean_loop(root, args.size)[:, None].astype(int) - dataset.images)
        assert difference.mean() < 1.0, "both loaders should produce the same pixels"
        assert np.array_equal(cached_load().images, dataset.images)  # fills the cache

        runs = {"lean": lambda: lean_loop(root, args.size), "first": first_load, "cached": cached_load}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for r in range(args.repeats):
            names = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in names:
                t = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - t)
            print(f"  round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.3f} s" for k in runs), flush=True)
        os.environ["AESTUDIO_FOLDER_CACHE"] = "off"  # no remembered listing: the first load's own listing
        listing = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            list_folder(root.resolve())
            listing.append(time.perf_counter() - t)
    n = args.images
    print(f"listing the folder (part of the first load): {spread([1e3 * t for t in listing], '{:.0f}')} ms")
    speed = {k: [n / t for t in v] for k, v in times.items()}
    print(f"lean PIL loop:               {spread(speed['lean'], '{:,.0f}')} images/s")
    print(f"load_dataset, first load:    {spread(speed['first'], '{:,.0f}')} images/s")
    print(f"load_dataset, cached reopen: {spread(speed['cached'], '{:,.0f}')} images/s")
    first_vs_lean = [a / b for a, b in zip(times["lean"], times["first"])]
    reopen_vs_first = [a / b for a, b in zip(times["first"], times["cached"])]
    print(f"first load / lean loop:      {spread(first_vs_lean, '{:.2f}')}x (goal >= 1.5 on 2 cores)")
    print(f"reopen / first load:         {spread(reopen_vs_first, '{:.1f}')}x faster (goal >= 10)")


if __name__ == "__main__":
    main()
