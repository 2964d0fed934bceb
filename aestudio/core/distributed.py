"""Training on several processes with PyTorch's own tools: torchrun starts the processes, DDP
averages the gradients. Nothing here starts processes itself except `torchrun_command`, which
builds the torchrun command line that `aestudio train --nproc N` runs.

    torchrun --nproc-per-node 2 -m aestudio train --data FOLDER --out runs/big

Under torchrun every process (a *rank*) runs the same `aestudio train`. They

* build the same model from the same seed (DDP also copies rank 0's weights to the others);
* shuffle the training images with the same seeded permutation and each take their own part of
  every global batch (`rank_slice`): `--batch-size` stays the global batch, so a run on N
  processes follows the same optimisation as one process with that batch;
* agree, at every check (`agree`), on whether to stop (Ctrl-C on any rank) and whether the loss
  went non-finite, so they all leave the loop at the same batch;
* leave logging, validation, the training doctor and every file write to rank 0.

A rank that dies ends the others: torchrun's agent stops them, and a rank blocked in a collective
gets an error from the backend, which `DistributedError` turns into one line.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sys
from dataclasses import dataclass

import numpy as np
import torch


class DistributedError(RuntimeError):
    """Another training process failed or could not be reached. The message is meant for users."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def env_info() -> DistInfo:
    """The rank layout torchrun put in the environment (a single process when there is none)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise DistributedError("RANK, LOCAL_RANK and WORLD_SIZE must be whole numbers (they are set by torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"RANK {rank} does not fit WORLD_SIZE {world} (they are set by torchrun)")
    return DistInfo(rank, world, local)


def under_torchrun() -> bool:
    return env_info().enabled


def current() -> DistInfo:
    """The layout of the initialised process group, or a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return DistInfo(torch.distributed.get_rank(), torch.distributed.get_world_size(), env_info().local_rank)
    return SINGLE


def init(device_name: str = "auto", timeout_s: float = 600.0) -> tuple[DistInfo, str]:
    """Join torchrun's process group: NCCL when training on CUDA, else gloo.

    Returns the layout and the device this rank trains on (`cuda:LOCAL_RANK` on GPUs). A single
    process (no torchrun) returns (SINGLE, device_name) and initialises nothing."""
    info = env_info()
    if not info.enabled:
        return info, device_name
    if not torch.distributed.is_available():
        raise DistributedError("this PyTorch build has no distributed support; train in one process")
    base = device_name.split(":")[0]
    cuda = torch.cuda.is_available() and base in ("auto", "cuda")
    if base == "mps":
        raise DistributedError("several processes cannot share an Apple GPU (mps); use --device cpu with torchrun")
    if cuda:
        count = torch.cuda.device_count()
        if info.local_rank >= count:
            raise DistributedError(f"process {info.local_rank} on this machine has no GPU of its own "
                                   f"({count} found); start at most {count} processes per machine")
        torch.cuda.set_device(info.local_rank)
        device = f"cuda:{info.local_rank}"
    else:
        device = "cpu"
    if not torch.distributed.is_initialized():
        try:
            with signals_to_main_thread():  # the backend's threads start here
                torch.distributed.init_process_group("nccl" if cuda else "gloo",
                                                     timeout=datetime.timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"could not join the other training processes: {' '.join(str(e).split())[:300]}") from None
    return current(), device


@contextlib.contextmanager
def signals_to_main_thread():
    """Threads started inside this block (the backend's I/O and worker threads) never receive Ctrl-C
    or torchrun's SIGTERM: a thread inherits its creator's signal mask, and with SIGINT and SIGTERM
    blocked there, the kernel delivers them to the main thread, where Python's handlers run. A signal
    landing in a backend thread would interrupt its blocking socket call instead."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:  # pragma: no cover - Windows: no per-thread masks
        yield
        return
    old = mask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)


def end_rank(code: int) -> None:
    """End a torchrun rank's process with `code` once its work is done, without the interpreter's
    teardown. The process group lives on in the DistributedDataParallel wrapper after
    `destroy_process_group`; tearing the interpreter down under gloo's threads can abort the process
    (SIGABRT, "terminate called without an active exception"), which torchrun reports as a failed
    job although the run was saved. Every file is written and closed by now; stdio is flushed here."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            torch.distributed.destroy_process_group()
        except Exception:  # noqa: BLE001 - a peer already gone: nothing left to tidy
            pass


def rank_slice(batch_indices: np.ndarray | torch.Tensor, info: DistInfo):
    """This rank's part of one global batch (as equal as possible, in order)."""
    n = len(batch_indices)
    lo = (n * info.rank) // info.world_size
    hi = (n * (info.rank + 1)) // info.world_size
    return batch_indices[lo:hi]


def agree(flags: list[float], device: torch.device | str, info: DistInfo) -> list[float]:
    """The maximum of each flag over all ranks (one small all_reduce). Every rank must call it
    at the same point; a single process returns `flags` unchanged."""
    if not info.enabled:
        return flags
    t = torch.tensor(flags, dtype=torch.float32, device=device)
    try:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    except Exception as e:  # noqa: BLE001 - the backend raises several types when a peer is gone
        raise lost_peer(e) from None
    return [float(v) for v in t.cpu()]


def all_sum(values: list[float], device: torch.device | str, info: DistInfo) -> list[float]:
    """The sum of each value over all ranks (one all_reduce); unchanged in a single process."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64 if device == "cpu" or str(device) == "cpu" else torch.float32,
                     device=device)
    try:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    except Exception as e:  # noqa: BLE001
        raise lost_peer(e) from None
    return [float(v) for v in t.cpu()]


def broadcast_state(model: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (after rank 0 alone restored weights)."""
    if not info.enabled:
        return
    try:
        for t in model.state_dict().values():
            torch.distributed.broadcast(t, src=0)
    except Exception as e:  # noqa: BLE001
        raise lost_peer(e) from None


def barrier(info: DistInfo) -> None:
    if not info.enabled:
        return
    try:
        torch.distributed.barrier()
    except Exception as e:  # noqa: BLE001
        raise lost_peer(e) from None


def lost_peer(e: BaseException) -> DistributedError:
    import re

    detail = re.sub(r"\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", " ".join(str(e).split()))  # no C++ source paths
    detail = detail.split(". This is typically")[0][:160] or type(e).__name__
    return DistributedError(f"another training process stopped or cannot be reached, so this one stops too "
                            f"(rank {current().rank}: {detail}); the run folder keeps its last complete save")


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """`torchrun --standalone --nproc-per-node N -m aestudio ARGV...` with this Python interpreter."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(nproc)}",
            "-m", "aestudio", *argv]


def _children(pid: int) -> list[int]:
    """Child processes of `pid` (Linux /proc; empty elsewhere)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return out


def _kill_job(agent: int) -> None:
    """End a torchrun job at once. Its agent starts every training process in a session of its own,
    so each is killed with its group, then the agent's group; quietly (SIGTERM would make the agent
    print a traceback). Where /proc cannot list the processes, SIGTERM asks the agent to end them."""
    workers = _children(agent)
    for pid in workers:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    try:
        os.killpg(agent, signal.SIGKILL if workers else signal.SIGTERM)
    except OSError:
        pass


#: Environment variable naming the file whose appearance asks every rank to stop (set by `launch`).
STOP_FILE_ENV = "AESTUDIO_STOP_FILE"


def stop_requested() -> bool:
    """Whether the launcher asked this torchrun rank to stop (its stop file exists)."""
    path = os.environ.get(STOP_FILE_ENV)
    return bool(path) and os.path.exists(path)


def launch(nproc: int, argv: list[str], say) -> tuple[int, bool]:
    """Run `torchrun_command(nproc, argv)` and wait. Returns (exit status, whether Ctrl-C was pressed).

    torchrun runs in its own session with Ctrl-C ignored, so the terminal's Ctrl-C reaches this
    process only. It asks the training processes to stop through a file (`STOP_FILE_ENV`) that
    every rank looks for after each batch: they agree on a batch to stop at and rank 0 saves. A
    signal would reach a process that is still starting (importing torch, or torchrun's agent
    before it has started any) as a KeyboardInterrupt with a traceback, and torchrun would report
    the job as failed. A second Ctrl-C ends them at once (SIGKILL: every save is atomic, so the run
    folder keeps its last complete one)."""
    import shutil
    import subprocess
    import tempfile
    import threading
    import time

    posix = os.name == "posix"
    pressed: list[float] = []
    folder = tempfile.mkdtemp(prefix="aestudio-stop-")
    stop_file = os.path.join(folder, "stop")
    proc: subprocess.Popen | None = None

    def on_sigint(signum, frame) -> None:  # noqa: ARG001
        pressed.append(time.monotonic())
        if len(pressed) == 1:
            say("stopping every training process after its current batch (Ctrl-C again to abort without saving) ...")
            with open(stop_file, "w"):
                pass
        elif posix:
            _kill_job(proc.pid)
        else:  # pragma: no cover
            proc.kill()

    handles = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    old = signal.getsignal(signal.SIGINT) if handles else None
    try:
        if handles:  # the children inherit an ignored Ctrl-C (Python then installs no KeyboardInterrupt for it)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        proc = subprocess.Popen(torchrun_command(nproc, argv), start_new_session=posix,
                                env={**os.environ, STOP_FILE_ENV: stop_file})
        if handles:
            signal.signal(signal.SIGINT, on_sigint)
        rc = proc.wait()
        if len(pressed) > 1:
            say("aborted without saving; the run folder keeps its last complete save")
            return 130, True
        return rc, bool(pressed)
    finally:
        if handles and old is not None:
            signal.signal(signal.SIGINT, old)
        shutil.rmtree(folder, ignore_errors=True)
