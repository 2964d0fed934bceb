"""Which validation images to show (no Qt): a spread of classes and cases, not the first few.

Validation indices are sorted, so on a folder with one subfolder per class the first eight
validation images are usually eight images of the same class. `pick_spread` picks instead:

- labelled images: round-robin over the classes (class order), a seeded random member of each
  class per round, so n images cover min(n, classes) classes;
- unlabelled images: evenly spaced over the whole set (the first, the last and between).

    idx = pick_spread(val_labels, 8)          # indices into the validation set
    idx = pick_spread(None, 8, total=n_val)   # unlabelled
"""
from __future__ import annotations

import numpy as np

DEFAULT_SEED = 0


def pick_spread(labels: np.ndarray | None, n: int, seed: int = DEFAULT_SEED, total: int | None = None) -> np.ndarray:
    """Up to `n` distinct indices into a set of `total` images (default len(labels)), spread over
    the classes in `labels` (round-robin, seeded) or, without labels, evenly over the set.

    Deterministic: the same labels, n and seed give the same indices. Returns int64 (k,), k <= n.
    """
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        total = len(labels) if total is None else min(int(total), len(labels))
        labels = labels[:total]
    total = 0 if total is None else max(int(total), 0)
    n = max(0, min(int(n), total))
    if n == 0:
        return np.zeros(0, np.int64)
    if labels is None:
        return np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))
    rng = np.random.default_rng(seed)
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    out: list[int] = []
    for r in range(max(len(m) for m in members)):
        for m in members:
            if r < len(m):
                out.append(int(m[r]))
                if len(out) == n:
                    return np.asarray(out, np.int64)
    return np.asarray(out, np.int64)


__all__ = ["DEFAULT_SEED", "pick_spread"]
