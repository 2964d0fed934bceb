"""Image datasets for aestudio (no Qt here).

``load_dataset(spec)`` accepts

* ``"fashion-10k"`` (the default set): the 10,000-image Fashion-MNIST test split bundled with
  aestudio, 1x28x28, decoded once per process;
* ``"digits"``: scikit-learn's 1,797 8x8 digits scaled to 0..255;
* ``"shapes"``: a procedural dSprites-like set with known generative factors (:func:`make_shapes`);
* ``"mnist"``, ``"fashion-mnist"``: the full 70,000 images (60,000 train then 10,000 test),
  found in the user cache or a system copy, or downloaded (see :mod:`.mnist`);
* anything else: a folder of image files (see :mod:`.folder`).  Names take precedence over
  folders, so a folder called ``digits`` in the working directory is loaded as ``./digits``.

``background`` (``"auto"``, ``"white"``, ``"black"`` or a colour such as ``"#ff8800"``) is where
transparent pixels of folder images are composited (see :mod:`.folder`, "Transparency"); it is
checked for every spec, and named sets have no transparency.

``image_size`` and ``channels`` resize and convert any set.  When they are None, named sets keep
their native size and channels, and folders default to 28x28 with 3 channels if any image has
colour, else 1.  ``shapes`` is rendered directly at ``image_size``.

Module-level settings tests may monkeypatch: :data:`.mnist.MIRRORS`, :data:`.mnist.RESOURCES`,
:data:`.mnist.SYSTEM_DIRS`, :data:`.folder.THREAD_THRESHOLD_S`, and the folder limits
:data:`.folder.MAX_IMAGE_PIXELS`, :data:`.folder.FILE_TIMEOUT_S`, :data:`.folder.DECODE_BUDGET_BYTES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from numbers import Integral
from pathlib import Path

from .base import DatasetError, ImageSet, convert_channels, resize_images, split_indices, validation_count
from .folder import DEFAULT_IMAGE_SIZE, IMAGE_EXTENSIONS, IMAGE_FORMATS, load_folder, parse_background
from .idx import read_idx
from .mnist import load_fashion10k, load_mnist_family
from .stream import StreamedImageSet, is_streamed, load_folder_budgeted
from .synthetic import load_digits, make_shapes

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "IMAGE_EXTENSIONS",
    "IMAGE_FORMATS",
    "BACKGROUNDS",
    "DatasetError",
    "ImageSet",
    "StreamedImageSet",
    "bundled_names",
    "is_streamed",
    "load_dataset",
    "make_shapes",
    "parse_background",
    "read_idx",
    "split_indices",
    "validation_count",
]

_BUNDLED = ("fashion-10k", "digits", "shapes")
_DOWNLOADABLE = ("mnist", "fashion-mnist")
_MAX_SIZE = 1024
#: The named backgrounds; any colour Pillow's ImageColor knows is accepted too.
BACKGROUNDS = ("auto", "white", "black")


def bundled_names() -> list[str]:
    """Sets available offline without any files: ``["fashion-10k", "digits", "shapes"]``."""
    return list(_BUNDLED)


def load_dataset(
    spec: str,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache_dir: str | Path | None = None,
    allow_download: bool = True,
    background: str = "auto",
    memory_budget: int | None = None,
    decode_cache_dir: str | Path | None = None,
    note: Callable[[str], None] | None = None,
) -> ImageSet:
    """Load a named set or a folder of images (see the module documentation).

    ``progress(done, total)`` is called from the calling thread while loading a folder (in
    images) or downloading (in bytes); it must be cheap and may raise to abort.  Sets that load
    instantly do not call it.  ``cache_dir`` replaces the user cache root used for
    ``mnist``/``fashion-mnist``; ``allow_download=False`` forbids the network.  ``background``
    composites transparent folder images (``"auto"``, ``"white"``, ``"black"`` or a colour).
    A folder whose training would need more than ``memory_budget`` bytes (default: half the free
    memory) is decoded into a cache in ``decode_cache_dir`` and returned as a
    :class:`StreamedImageSet` (see :mod:`.stream`); ``note(text)`` hears about that.
    Any problem a user can fix raises :class:`DatasetError` with a one-sentence message.
    """
    if image_size is not None:
        if isinstance(image_size, bool) or not isinstance(image_size, Integral) or not 2 <= image_size <= _MAX_SIZE:
            raise DatasetError(f"The image size must be a whole number from 2 to {_MAX_SIZE}, got {image_size!r}.")
        image_size = int(image_size)
    if channels not in (None, 1, 3):
        raise DatasetError(f"Images can have 1 (gray) or 3 (RGB) channels, not {channels!r}.")
    parse_background(background)  # an unknown value fails before anything loads
    key = str(spec).strip().lower()
    if key == "shapes":
        dataset = make_shapes(size=image_size or 32)
    elif key == "digits":
        dataset = load_digits()
    elif key == "fashion-10k":
        dataset = load_fashion10k()
    elif key in _DOWNLOADABLE:
        dataset = load_mnist_family(key, cache_dir=cache_dir, allow_download=allow_download, progress=progress)
    elif key and Path(spec).expanduser().exists():
        return load_folder_budgeted(
            spec, image_size=image_size or DEFAULT_IMAGE_SIZE, channels=channels, progress=progress,
            background=background, budget=memory_budget, cache_dir=decode_cache_dir, note=note, loader=load_folder,
        )
    else:
        names = ", ".join(_BUNDLED + _DOWNLOADABLE)
        raise DatasetError(f"Unknown dataset {spec!r}: it is not one of {names}, nor an existing folder.")

    images = dataset.images
    if channels == 1:  # convert before resizing: less to resize
        images = convert_channels(images, channels)
    if image_size is not None:
        images = resize_images(images, image_size)
    if channels == 3:
        images = convert_channels(images, channels)
    return dataset if images is dataset.images else replace(dataset, images=images)
