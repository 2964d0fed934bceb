"""What the Trainer needs to train on a streamed data set and on several processes (DDP).

Kept out of training.py so that the engine's loop only has small hooks:

* `StreamRows` stands in for the Trainer's uint8 image tensors (`u8_train`, `u8_val`) when the
  data set is a `StreamedImageSet`: indexing it reads the rows from the decode cache, and after
  `plan(batches)` a background `Prefetcher` reads the planned batches ahead, so reading
  overlaps with training. Memory stays a few batches, whatever the size of the set.
* `RankPlan` shards every global batch of the shared seeded permutation between the ranks
  (rank r takes the r-th equal part), so N processes with per-rank batch B/N follow the
  optimisation of one process with batch B. A final global batch too small to give every rank
  an image is left out of that epoch (at most N-1 images; the next shuffle brings them back).
* `ddp_step` runs a stage's step function inside DistributedDataParallel, which averages the
  gradients over the ranks during backward.
* `Agreement` makes every rank leave the loop at the same batch: at the engine's look points
  (deterministic under DDP) the ranks all_reduce [stop asked, non-finite loss seen].
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from . import distributed as dist
from .datasets.stream import Prefetcher, StreamedImageSet, is_streamed

#: Images read for the statistics of a streamed set (input standardisation, the doctor's probe).
STATS_SAMPLE = 4096
#: Validation images read for the training doctor's probe of a streamed set (it uses 256 of them).
PROBE_SAMPLE = 1024
#: A streamed run keeps the first this many validation images in memory for the studio's views
#: (the latent map shows at most this many points; see workers/training.py MAX_MAP_POINTS).
VAL_SET_LIMIT = 10_000
#: Images the doctor's data check looks at (doctor.image_stats samples this many).
DOCTOR_IMAGES = 4000


class StreamRows:
    """Rows `indices` of a StreamedImageSet, indexable like a (N, C, H, W) uint8 tensor on `device`."""

    def __init__(self, data: StreamedImageSet, indices: np.ndarray, device: torch.device, prefetch: int = 4,
                 sample_limit: int = STATS_SAMPLE):
        self.data, self.indices, self.device = data, np.asarray(indices, dtype=np.int64), device
        self.sample_limit = sample_limit
        self.shape = torch.Size((len(self.indices), *data.shape))
        self.prefetch = prefetch
        self._pin = device.type == "cuda"
        self._queue: list[np.ndarray] = []
        self._stream: Prefetcher | None = None
        self._iter = None

    def __len__(self) -> int:
        return int(self.shape[0])

    def _to_device(self, rows: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(rows)
        if self._pin:
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def plan(self, batches: list[np.ndarray]) -> None:
        """The batches (positions into this split) the next `__getitem__` calls will ask for, in order."""
        self.close()
        if not batches:
            return
        self._queue = [np.asarray(b, dtype=np.int64) for b in batches]
        planned = list(self._queue)  # the consumer pops from _queue while the thread reads this
        self._stream = Prefetcher(self.data, (self.indices[b] for b in planned), depth=self.prefetch)
        self._iter = iter(self._stream)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream, self._iter, self._queue = None, None, []

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, slice):
            pos = np.arange(len(self))[idx]
        else:
            pos = np.asarray(idx.cpu() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64).reshape(-1)
        if self._queue and len(self._queue[0]) == len(pos) and np.array_equal(self._queue[0], pos):
            self._queue.pop(0)
            rows = next(self._iter)  # read ahead by the prefetch thread
            if not self._queue:
                self.close()
            return self._to_device(rows)
        return self._to_device(self.data.read_rows(self.indices[pos]))

    def sample(self, limit: int | None = None) -> torch.Tensor:
        """At most `limit` (default `sample_limit`) evenly spaced rows as float in [0, 1] (statistics, probes)."""
        limit = self.sample_limit if limit is None else limit
        n = len(self)
        if n == 0:
            return torch.zeros((0, *self.shape[1:]), device=self.device)
        pos = np.unique(np.linspace(0, n - 1, min(n, limit)).astype(np.int64))
        return self[pos].float().div_(255.0)


def doctor_view(data):
    """What the doctor's data check reads (`transparent_fraction`, `images`): a streamed set gives the
    evenly spaced images the check samples, read with file reads, so the check does not fault the
    memory map's pages of the whole cache file into memory."""
    if not is_streamed(data):
        return data
    from types import SimpleNamespace

    n = data.n
    idx = np.unique(np.linspace(0, n - 1, min(n, DOCTOR_IMAGES)).astype(np.int64))
    return SimpleNamespace(transparent_fraction=data.transparent_fraction, images=data.read_rows(idx))


def sample_float(rows, limit: int | None = None) -> torch.Tensor:
    """At most `limit` (default STATS_SAMPLE) evenly spaced rows as float images in [0, 1], for statistics.

    The same rule for a streamed split and an in-memory one: the input standardisation, the initial
    output and the doctor's mean image come from a few thousand images, not from a float copy of the
    whole split (60,000 Fashion-MNIST images: 190 MB and 0.4 s before the first batch)."""
    if isinstance(rows, StreamRows):
        return rows.sample(limit)
    limit = STATS_SAMPLE if limit is None else limit
    n = int(rows.shape[0])
    if n > limit:
        pos = torch.from_numpy(np.unique(np.linspace(0, n - 1, limit).astype(np.int64))).to(rows.device)
        rows = rows.index_select(0, pos)
    return rows.float().div_(255.0)


def stream_sources(data, train_idx: np.ndarray, val_idx: np.ndarray, device: torch.device, val_data=None):
    """(u8_train, u8_val) stand-ins for a streamed set (None when `data` is in memory)."""
    if not is_streamed(data):
        return None
    val_src = val_data if val_data is not None else data
    if val_data is not None and not is_streamed(val_data):
        val = torch.from_numpy(val_data.images[val_idx]).to(device)
    else:
        val = StreamRows(val_src, val_idx, device, sample_limit=PROBE_SAMPLE)
    return StreamRows(data, train_idx, device), val


class RankPlan:
    """This rank's batches of one epoch (see the module documentation)."""

    def __init__(self, info: dist.DistInfo, batch_size: int, n_train: int):
        self.info, self.global_batch, self.n = info, int(batch_size), int(n_train)
        starts = range(0, self.n, self.global_batch)
        sizes = [min(self.global_batch, self.n - s) for s in starts]
        self.batches_per_epoch = sum(1 for m in sizes if m >= info.world_size)

    def split(self, order: torch.Tensor) -> list[torch.Tensor]:
        """This rank's part of each global batch of the permutation `order`."""
        out = []
        for s in range(0, self.n, self.global_batch):
            batch = order[s:s + self.global_batch]
            if len(batch) < self.info.world_size:
                break
            out.append(dist.rank_slice(batch, self.info))
        return out


class _StepModule(torch.nn.Module):
    """The model plus the step function of the current stage, as one module DDP can wrap."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.fn: Callable | None = None

    def forward(self, x_in: torch.Tensor, target: torch.Tensor):
        return self.fn(x_in, target)


def ddp_step(model: torch.nn.Module, fn: Callable, device: torch.device, unused_parameters: bool):
    """`fn(x_in, target)` run through DistributedDataParallel (gradients averaged over the ranks)."""
    from torch.nn.parallel import DistributedDataParallel

    inner = _StepModule(model)
    inner.fn = fn
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    with dist.signals_to_main_thread():  # any thread the wrapper starts leaves Ctrl-C to the main thread
        wrapped = DistributedDataParallel(inner, device_ids=ids, find_unused_parameters=unused_parameters)

    def step(x_in: torch.Tensor, target: torch.Tensor):
        try:
            return wrapped(x_in, target)
        except RuntimeError as e:  # a peer that died during the gradient all_reduce
            if "NCCL" in str(e) or "Gloo" in str(e) or "Connection" in str(e) or "peer" in str(e).lower():
                raise dist.lost_peer(e) from None
            raise

    return step


class Agreement:
    """Whether to stop, agreed by all ranks at the engine's look points (a no-op in one process)."""

    def __init__(self, info: dist.DistInfo, device: torch.device):
        self.info, self.device = info, device
        self.stop = False

    def look(self, stop_asked: bool, bad: tuple[int, float] | None, batch: int) -> tuple[bool, tuple[int, float] | None]:
        """(stop, non-finite loss) over all ranks; a rank whose own losses were finite reports the batch."""
        if not self.info.enabled:
            return stop_asked, bad
        stop, nan = dist.agree([1.0 if stop_asked else 0.0, 1.0 if bad is not None else 0.0], self.device, self.info)
        self.stop = self.stop or stop > 0
        if nan > 0 and bad is None:
            bad = (batch, math.nan)  # another rank saw it; the weights are restored on every rank alike
        return self.stop, bad


def share_validation(val_terms: dict[str, float], info: dist.DistInfo, device) -> dict[str, float]:
    """Rank 0 validates; every rank learns whether its loss was finite (so all restore and stop alike)."""
    if not info.enabled:
        return val_terms
    bad = 1.0 if val_terms and not math.isfinite(val_terms.get("total", 0.0)) else 0.0
    (flag,) = dist.agree([bad], device, info)
    if flag > 0 and not info.is_main:
        return {"total": math.nan}
    return val_terms


def global_means(means: dict[str, float], seen: int, info: dist.DistInfo, device) -> dict[str, float]:
    """Per-image means over all ranks from each rank's means and image count."""
    if not info.enabled or not means:
        return means
    keys = sorted(means)
    sums = dist.all_sum([means[k] * seen for k in keys] + [float(seen)], device, info)
    total = max(sums[-1], 1.0)
    return {k: v / total for k, v in zip(keys, sums[:-1])}
