"""Image folders of other kinds than the bundled set, made on the spot for tests and benchmarks.

The defaults must work on data nobody tuned them on, so the robustness benchmark and the tests
write folders of very different character and load them through the same folder loader a user
would use:

* ``strokes``: sparse thin bright strokes (lines, arcs, polylines, letters) on black, 1 channel,
  one subfolder per stroke kind;
* ``photos``: RGB patches cut from scikit-learn's two sample photographs (JPEG files);
* ``icons``: RGBA PNGs whose background is mostly transparent (coloured glyphs);
* ``tiny``: a flat folder of about 200 gray blobs and rings;
* ``text``: lines of random letters, dark on white, shrunk until the glyphs are a few pixels high
  (a fine texture, like a scanned page at low resolution); ``lower`` and ``upper`` subfolders.

Every generator depends only on its arguments (seeded), writes real image files with Pillow and
returns the folder.
"""
from __future__ import annotations

import math
import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

STROKE_KINDS = ("line", "arc", "zigzag", "letter", "circle", "cross")
_LETTERS = "AEFHKLMNTVWXYZ"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _stroke(draw: ImageDraw.ImageDraw, kind: str, size: int, rng: np.random.Generator) -> None:
    s = size
    width = max(1, int(round(s / 14 * rng.uniform(0.7, 1.4))))
    fill = int(rng.integers(180, 256))

    def pt(lo: float = 0.15, hi: float = 0.85) -> tuple[float, float]:
        return (float(rng.uniform(lo, hi) * s), float(rng.uniform(lo, hi) * s))

    if kind == "line":
        draw.line([pt(), pt()], fill=fill, width=width)
    elif kind == "arc":
        c, r = pt(0.35, 0.65), rng.uniform(0.18, 0.32) * s
        start = rng.uniform(0, 360)
        draw.arc([c[0] - r, c[1] - r, c[0] + r, c[1] + r], start, start + rng.uniform(90, 220), fill=fill, width=width)
    elif kind == "zigzag":
        draw.line([pt() for _ in range(int(rng.integers(3, 6)))], fill=fill, width=width, joint="curve")
    elif kind == "circle":
        c, r = pt(0.35, 0.65), rng.uniform(0.12, 0.3) * s
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], outline=fill, width=width)
    elif kind == "cross":
        c, r = pt(0.3, 0.7), rng.uniform(0.12, 0.28) * s
        a = rng.uniform(0, math.pi / 2)
        for t in (a, a + math.pi / 2):
            dx, dy = r * math.cos(t), r * math.sin(t)
            draw.line([(c[0] - dx, c[1] - dy), (c[0] + dx, c[1] + dy)], fill=fill, width=width)
    else:  # a letter made of straight strokes, so no font file is needed
        letter = _LETTERS[int(rng.integers(len(_LETTERS)))]
        x0, y0 = rng.uniform(0.15, 0.3) * s, rng.uniform(0.15, 0.3) * s
        w, h = rng.uniform(0.4, 0.6) * s, rng.uniform(0.45, 0.65) * s
        for seg in _letter_segments(letter):
            draw.line([(x0 + seg[0] * w, y0 + seg[1] * h), (x0 + seg[2] * w, y0 + seg[3] * h)], fill=fill, width=width)


def _letter_segments(letter: str) -> list[tuple[float, float, float, float]]:
    return {
        "A": [(0, 1, 0.5, 0), (0.5, 0, 1, 1), (0.25, 0.55, 0.75, 0.55)],
        "E": [(0, 0, 0, 1), (0, 0, 1, 0), (0, 0.5, 0.8, 0.5), (0, 1, 1, 1)],
        "F": [(0, 0, 0, 1), (0, 0, 1, 0), (0, 0.5, 0.8, 0.5)],
        "H": [(0, 0, 0, 1), (1, 0, 1, 1), (0, 0.5, 1, 0.5)],
        "K": [(0, 0, 0, 1), (0, 0.5, 1, 0), (0, 0.5, 1, 1)],
        "L": [(0, 0, 0, 1), (0, 1, 1, 1)],
        "M": [(0, 1, 0, 0), (0, 0, 0.5, 0.6), (0.5, 0.6, 1, 0), (1, 0, 1, 1)],
        "N": [(0, 1, 0, 0), (0, 0, 1, 1), (1, 1, 1, 0)],
        "T": [(0, 0, 1, 0), (0.5, 0, 0.5, 1)],
        "V": [(0, 0, 0.5, 1), (0.5, 1, 1, 0)],
        "W": [(0, 0, 0.25, 1), (0.25, 1, 0.5, 0.4), (0.5, 0.4, 0.75, 1), (0.75, 1, 1, 0)],
        "X": [(0, 0, 1, 1), (0, 1, 1, 0)],
        "Y": [(0, 0, 0.5, 0.5), (1, 0, 0.5, 0.5), (0.5, 0.5, 0.5, 1)],
        "Z": [(0, 0, 1, 0), (1, 0, 0, 1), (0, 1, 1, 1)],
    }[letter]


def make_strokes(folder: str | Path, n: int = 3000, size: int = 28, seed: int = 0) -> Path:
    """Sparse strokes: about 6% of the pixels lit; one class subfolder per stroke kind."""
    folder = Path(folder)
    rng = _rng(seed)
    for kind in STROKE_KINDS:
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        kind = STROKE_KINDS[i % len(STROKE_KINDS)]
        big = size * 4  # draw large, then shrink: anti-aliased strokes like scanned pen lines
        image = Image.new("L", (big, big), 0)
        _stroke(ImageDraw.Draw(image), kind, big, rng)
        image.resize((size, size), Image.Resampling.LANCZOS).save(folder / kind / f"{i:05d}.png")
    return folder


def make_photos(folder: str | Path, n: int = 2000, size: int = 32, seed: int = 0) -> Path:
    """RGB patches of scikit-learn's sample photographs, at random positions and scales, as JPEG."""
    from sklearn.datasets import load_sample_images

    folder = Path(folder)
    rng = _rng(seed)
    photos = load_sample_images().images  # two 427x640 RGB photographs
    names = ("china", "flower")
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        k = i % len(photos)
        photo = photos[k]
        side = int(rng.integers(size, 4 * size))
        y, x = int(rng.integers(0, photo.shape[0] - side)), int(rng.integers(0, photo.shape[1] - side))
        patch = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.Resampling.LANCZOS)
        patch.save(folder / names[k] / f"{i:05d}.jpg", quality=92)
    return folder


def make_icons(folder: str | Path, n: int = 600, size: int = 32, seed: int = 0) -> Path:
    """RGBA PNGs: a coloured glyph on a fully transparent background (most pixels transparent)."""
    folder = Path(folder)
    rng = _rng(seed)
    kinds = ("disc", "ring", "bar", "star")
    for kind in kinds:
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        image = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,)
        s = size * 2
        c = rng.uniform(0.35, 0.65, 2) * s
        r = rng.uniform(0.15, 0.3) * s
        box = [c[0] - r, c[1] - r, c[0] + r, c[1] + r]
        if kind == "disc":
            draw.ellipse(box, fill=colour)
        elif kind == "ring":
            draw.ellipse(box, outline=colour, width=max(2, int(r / 3)))
        elif kind == "bar":
            draw.rectangle([c[0] - r, c[1] - r / 3, c[0] + r, c[1] + r / 3], fill=colour)
        else:
            pts = []
            for j in range(10):
                rad = r if j % 2 == 0 else r * 0.45
                t = j * math.pi / 5 + rng.uniform(0, 0.3)
                pts.append((c[0] + rad * math.cos(t), c[1] + rad * math.sin(t)))
            draw.polygon(pts, fill=colour)
        image.resize((size, size), Image.Resampling.LANCZOS).save(folder / kind / f"{i:05d}.png")
    return folder


def make_tiny(folder: str | Path, n: int = 200, size: int = 28, seed: int = 0) -> Path:
    """A flat, unlabelled folder of ``n`` gray blobs and rings on a mid-gray background."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(n):
        cx, cy = rng.uniform(0.3, 0.7, 2)
        r = rng.uniform(0.1, 0.25)
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        if i % 2:
            blob = np.exp(-((d - r) ** 2) / (2 * 0.03 ** 2))
        else:
            blob = np.exp(-(d ** 2) / (2 * r ** 2))
        sign = 1 if rng.random() < 0.5 else -1
        img = np.clip(0.5 + sign * 0.45 * blob + rng.normal(0, 0.02, blob.shape), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"img{i:04d}.png")
    return folder


def _font(size: int):
    """Pillow's own scalable font (Pillow >= 10.1 with FreeType), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def make_text(folder: str | Path, n: int = 2000, size: int = 28, seed: int = 0) -> Path:
    """Two to four lines of random letters (3 to 8 each), gray 0..79 on white, drawn at 4x the size
    and shrunk: glyphs of about 5 px. Odd images are upper case (``upper``), even ones lower."""
    folder = Path(folder)
    rng = _rng(seed)
    font = _font(22)
    for kind in ("lower", "upper"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        kind, letters = ("upper", string.ascii_uppercase) if i % 2 else ("lower", string.ascii_lowercase)
        big = size * 4
        image = Image.new("L", (big, big), 255)
        draw = ImageDraw.Draw(image)
        for line in range(int(rng.integers(2, 5))):
            word = "".join(rng.choice(list(letters), int(rng.integers(3, 9))))
            xy = (int(rng.integers(-10, 20)), 8 + line * 28 + int(rng.integers(-4, 4)))
            draw.text(xy, word, fill=int(rng.integers(0, 80)), font=font)
        image.resize((size, size), Image.Resampling.LANCZOS).save(folder / kind / f"{i:05d}.png")
    return folder


MAKERS = {"strokes": make_strokes, "photos": make_photos, "icons": make_icons, "tiny": make_tiny, "text": make_text}
