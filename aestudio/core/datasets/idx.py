"""Reader for the IDX format used by MNIST and Fashion-MNIST (plain or gzip-compressed)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .base import DatasetError

__all__ = ["parse_idx", "read_idx"]

# IDX type byte -> big-endian numpy dtype.
_IDX_TYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, what: str) -> np.ndarray:
    """Decode IDX bytes (gzip detected from the content) into a native-endian, writable array.

    ``what`` names the source in error messages.
    """
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{what} is a damaged gzip file ({exc}).") from None
    if len(data) < 4:
        raise DatasetError(f"{what} is not an IDX file: it is only {len(data)} bytes long.")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or data[3] == 0:
        raise DatasetError(f"{what} is not an IDX file (bad magic number 0x{data[:4].hex()}).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{what} is truncated: its IDX header is incomplete.")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise DatasetError(
            f"{what} is {problem}: dimensions {'x'.join(map(str, dims))} need "
            f"{expected:,} bytes of data, found {found:,}."
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Validates the magic number, the element type and that the data length matches the
    dimensions; any problem raises :class:`DatasetError` naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"IDX file {path} does not exist.") from None
    except OSError as exc:
        raise DatasetError(f"Cannot read IDX file {path}: {exc.strerror or exc}.") from None
    return parse_idx(data, str(path))
