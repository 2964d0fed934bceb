"""Which exceptions carry a message meant for users (shown as-is, without a traceback)."""
from __future__ import annotations

import sys


def user_error_types() -> tuple[type[BaseException], ...]:
    from .checkpoint import RunError
    from .config import ConfigError
    from .datasets import DatasetError
    from .distributed import DistributedError
    from .noise import NoiseError
    from .schema import SchemaError
    from .training import DeviceError

    return (ConfigError, DatasetError, RunError, DeviceError, NoiseError, SchemaError, DistributedError)


OUT_OF_MEMORY = "Out of memory: try a smaller batch size, image size or data set."


def user_message(error: BaseException) -> str | None:
    """The user-facing message of a known error, or None for a bug (which deserves a traceback)."""
    if isinstance(error, user_error_types()):
        return str(error)
    if isinstance(error, MemoryError):
        return OUT_OF_MEMORY
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(error, oom):
        return OUT_OF_MEMORY.replace("Out of memory", "Out of device memory")
    return None
