"""Figures for the Questions guide, drawn with Pillow (no matplotlib, no Qt).

Every function returns an RGB uint8 array (H, W, 3); `stack` and `side_by_side` combine them.

    fig = stack([
        image_rows([("original", originals), ("reconstruction", recons)], title="Dense 784-32-784"),
        bars("Validation MSE", ["AE", "PCA"], [0.011, 0.019]),
    ])
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BG = (255, 255, 255)
INK = (30, 30, 30)
MUTED = (110, 110, 110)
GRID = (225, 225, 225)
#: Series colours (colour-blind friendly: Okabe–Ito).
COLOURS = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233),
           (240, 228, 66), (0, 0, 0)]


@lru_cache(maxsize=8)
def font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


#: Pillow's built-in font has Latin letters only: other characters are spelled out before drawing.
_SPELL = {"σ": "sigma", "β": "beta", "ρ": "rho", "μ": "mu", "÷": "/", "→": "->", "×": "x", "–": "-", "—": "-",
          "·": "-", "≈": "~", "≥": ">=", "≤": "<="}


def plain(text: str) -> str:
    """`text` with the characters the built-in font lacks spelled out ("σ 0.5" -> "sigma 0.5")."""
    return "".join(_SPELL.get(ch, ch) for ch in str(text))


def _text_size(draw: ImageDraw.ImageDraw, text: str, f) -> tuple[int, int]:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=f)
    return x1 - x0, y1 - y0


def _canvas(w: int, h: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (max(1, int(w)), max(1, int(h))), BG)
    return img, ImageDraw.Draw(img)


def fmt(v: float) -> str:
    """A short label for an axis or a bar."""
    if v == 0 or not np.isfinite(v):
        return f"{v:g}"
    a = abs(v)
    if a >= 1000 or a < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _to_rgb_tiles(images: np.ndarray, scale: int) -> list[np.ndarray]:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    x = np.clip(np.nan_to_num(x), 0.0, 1.0)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    tiles = (x.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
    return [np.kron(t, np.ones((scale, scale, 1), dtype=np.uint8)) for t in tiles]


def image_rows(rows: Sequence[tuple[str, np.ndarray]], title: str = "", size: int = 56, gap: int = 3) -> np.ndarray:
    """A labelled grid: one row per (label, images (n, C, H, W) in [0, 1])."""
    rows = [(label, np.asarray(imgs)) for label, imgs in rows if len(imgs)]
    if not rows:
        return text_block(title or "(no images)")
    h0 = rows[0][1].shape[-2]
    scale = max(1, int(round(size / max(h0, 1))))
    f, ft = font(13), font(15)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(_text_size(probe, plain(label), f)[0] for label, _ in rows) + 12
    ncol = max(len(imgs) for _, imgs in rows)
    tile = h0 * scale
    title_h = 26 if title else 6
    w = label_w + ncol * (tile + gap) + 8
    h = title_h + len(rows) * (tile + gap) + 6
    img, d = _canvas(w, h)
    if title:
        d.text((6, 5), plain(title), fill=INK, font=ft)
    for r, (label, imgs) in enumerate(rows):
        y = title_h + r * (tile + gap)
        tw, th = _text_size(d, plain(label), f)
        d.text((label_w - tw - 8, y + (tile - th) // 2), plain(label), fill=MUTED, font=f)
        for c, t in enumerate(_to_rgb_tiles(imgs, scale)):
            img.paste(Image.fromarray(t), (label_w + c * (tile + gap), y))
    return np.asarray(img)


def bars(title: str, labels: Sequence[str], values: Sequence[float], unit: str = "", width: int = 520,
         bar_h: int = 24, colours: Sequence[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Horizontal bars with the value written at the end of each."""
    values = [float(v) if np.isfinite(v) else 0.0 for v in values]
    f, ft = font(13), font(15)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max([_text_size(probe, plain(s), f)[0] for s in labels] + [10]) + 12
    top = 30
    h = top + len(labels) * (bar_h + 8) + 8
    img, d = _canvas(width, h)
    d.text((6, 6), plain(title), fill=INK, font=ft)
    lo = min(0.0, min(values, default=0.0))
    hi = max(values, default=1.0)
    span = (hi - lo) or 1.0
    room = width - label_w - 90
    zero = label_w + int(room * (0 - lo) / span)
    for i, (s, v) in enumerate(zip(labels, values)):
        y = top + i * (bar_h + 8)
        tw, th = _text_size(d, plain(s), f)
        d.text((label_w - tw - 8, y + (bar_h - th) // 2), plain(s), fill=INK, font=f)
        x1 = label_w + int(room * (v - lo) / span)
        col = (colours[i % len(colours)] if colours else COLOURS[i % len(COLOURS)])
        d.rectangle([min(zero, x1), y, max(zero, x1) + 1, y + bar_h], fill=col)
        d.text((max(zero, x1) + 6, y + (bar_h - th) // 2), plain(fmt(v) + unit), fill=INK, font=f)
    return np.asarray(img)


def lines(title: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]], xlabel: str = "",
          ylabel: str = "", width: int = 520, height: int = 260, logy: bool = False,
          markers: bool = True) -> np.ndarray:
    """A line plot of (name, xs, ys) series with a legend, axes and tick labels."""
    f, ft = font(12), font(15)
    img, d = _canvas(width, height)
    d.text((6, 6), plain(title), fill=INK, font=ft)
    left, right, top, bottom = 62, width - 14, 30, height - 38
    pts = [(np.asarray(x, float), np.asarray(y, float)) for _, x, y in series]
    allx = np.concatenate([p[0] for p in pts]) if pts else np.array([0.0, 1.0])
    ally = np.concatenate([p[1] for p in pts]) if pts else np.array([0.0, 1.0])
    ok = np.isfinite(ally) & (ally > 0 if logy else True)
    ys = np.log10(ally[ok]) if logy else ally[ok]
    x0, x1 = (float(np.min(allx)), float(np.max(allx))) if len(allx) else (0.0, 1.0)
    y0, y1 = (float(np.min(ys)), float(np.max(ys))) if len(ys) else (0.0, 1.0)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - (abs(y0) * 0.1 or 1), y1 + (abs(y1) * 0.1 or 1)
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(y: float) -> float:
        y = np.log10(y) if logy else y
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        yy = bottom - (bottom - top) * k / 4
        d.line([(left, yy), (right, yy)], fill=GRID)
        label = fmt(10 ** yv if logy else yv)
        tw, th = _text_size(d, plain(label), f)
        d.text((left - tw - 6, yy - th // 2 - 2), plain(label), fill=MUTED, font=f)
    xt = np.unique(allx) if len(np.unique(allx)) <= 8 else np.linspace(x0, x1, 5)
    for xv in xt:
        xx = px(float(xv))
        label = fmt(float(xv))
        tw, _ = _text_size(d, plain(label), f)
        d.line([(xx, bottom), (xx, bottom + 4)], fill=MUTED)
        d.text((xx - tw / 2, bottom + 6), plain(label), fill=MUTED, font=f)
    d.line([(left, top), (left, bottom), (right, bottom)], fill=MUTED)
    if xlabel:
        tw, _ = _text_size(d, plain(xlabel), f)
        d.text(((left + right - tw) / 2, height - 17), plain(xlabel), fill=MUTED, font=f)
    lx = left + 10
    for i, ((name, _, _), (x, y)) in enumerate(zip(series, pts)):
        col = COLOURS[i % len(COLOURS)]
        good = np.isfinite(y) & (y > 0 if logy else True)
        xy = [(px(a), py(b)) for a, b in zip(x[good], y[good])]
        if len(xy) > 1:
            d.line(xy, fill=col, width=2)
        if markers and len(xy) <= 40:
            for a, b in xy:
                d.ellipse([a - 3, b - 3, a + 3, b + 3], fill=col)
        tw, th = _text_size(d, plain(name), f)
        d.rectangle([lx, top + 4, lx + 12, top + 14], fill=col)
        d.text((lx + 16, top + 2), plain(name), fill=INK, font=f)
        lx += tw + 34
    if ylabel:
        d.text((left + 4, bottom - 16), plain(ylabel), fill=MUTED, font=f)
    return np.asarray(img)


def scatter(title: str, points: np.ndarray, labels: np.ndarray | None = None, size: int = 300) -> np.ndarray:
    """A square scatter plot of 2-D points, coloured by integer label."""
    ft = font(14)
    img, d = _canvas(size, size + 24)
    d.text((6, 5), plain(title), fill=INK, font=ft)
    p = np.asarray(points, float).reshape(-1, 2)
    good = np.all(np.isfinite(p), axis=1)
    p = p[good]
    lab = None if labels is None else np.asarray(labels)[good]
    if len(p) == 0:
        return np.asarray(img)
    lo, hi = np.percentile(p, 1, axis=0), np.percentile(p, 99, axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    q = (np.clip((p - lo) / span, 0, 1) * (size - 20) + 10)
    d.rectangle([4, 28, size - 4, size + 20], outline=GRID)
    for i, (x, y) in enumerate(q):
        col = COLOURS[int(lab[i]) % len(COLOURS)] if lab is not None else COLOURS[0]
        y = size + 14 - y
        d.ellipse([x - 2, y - 2 + 6, x + 2, y + 2 + 6], fill=col)
    return np.asarray(img)


def text_block(text: str, width: int = 520) -> np.ndarray:
    f = font(13)
    img, d = _canvas(width, 30)
    d.text((6, 8), plain(text), fill=MUTED, font=f)
    return np.asarray(img)


def stack(parts: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Figures one under the other, left-aligned."""
    parts = [np.asarray(p) for p in parts if p is not None]
    w = max(p.shape[1] for p in parts)
    h = sum(p.shape[0] for p in parts) + gap * (len(parts) - 1)
    out = np.full((h, w, 3), 255, np.uint8)
    y = 0
    for p in parts:
        out[y:y + p.shape[0], :p.shape[1]] = p
        y += p.shape[0] + gap
    return out


def side_by_side(parts: Sequence[np.ndarray], gap: int = 12) -> np.ndarray:
    """Figures next to each other, top-aligned."""
    parts = [np.asarray(p) for p in parts if p is not None]
    h = max(p.shape[0] for p in parts)
    w = sum(p.shape[1] for p in parts) + gap * (len(parts) - 1)
    out = np.full((h, w, 3), 255, np.uint8)
    x = 0
    for p in parts:
        out[:p.shape[0], x:x + p.shape[1]] = p
        x += p.shape[1] + gap
    return out


def to_png_bytes(figure: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.asarray(figure, np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


__all__ = ["bars", "fmt", "image_rows", "lines", "scatter", "side_by_side", "stack", "text_block", "to_png_bytes"]
