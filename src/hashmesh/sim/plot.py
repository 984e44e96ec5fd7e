"""A dependency-free PNG of the hop and latency distributions (zlib + struct only).

Two bar charts side by side: left, lookups per hop count (one bar per hop count,
labelled under the bar); right, lookup latency in 30 equal bins from 0 to the
maximum (the maximum, in ms, is written under the right end of the axis). Bar
heights are scaled to each panel's tallest bar, whose count is written above it.
Digits use a built-in 3x5 pixel font, drawn at 2x.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

W, H = 800, 320
PANEL_W, TOP, BOTTOM = 360, 30, 270
_FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "m": (0, 0, 7, 7, 5),
    "s": (0, 3, 6, 3, 6), "h": (4, 4, 7, 5, 5),
}  # fmt: skip


class Canvas:
    """An RGB pixel buffer with rectangles and tiny text."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def rect(self, x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        row = bytes(rgb) * (x1 - x0)
        for y in range(y0, y1):
            i = (y * self.w + x0) * 3
            self.px[i : i + len(row)] = row

    def text(self, x: int, y: int, s: str, scale: int = 2) -> None:
        for ch in s:
            glyph = _FONT.get(ch)
            if glyph:
                for r, bits in enumerate(glyph):
                    for c in range(3):
                        if bits >> (2 - c) & 1:
                            xx, yy = x + c * scale, y + r * scale
                            self.rect(xx, yy, xx + scale, yy + scale, (0, 0, 0))
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.px[y * self.w * 3 : (y + 1) * self.w * 3]) for y in range(self.h)
        )

        def chunk(tag: bytes, data: bytes) -> bytes:
            body = tag + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        ihdr = struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _bars(c: Canvas, x0: int, counts: Sequence[int], labels: Sequence[str], rgb) -> None:
    c.rect(x0, BOTTOM, x0 + PANEL_W, BOTTOM + 2, (0, 0, 0))
    c.rect(x0, TOP, x0 + 2, BOTTOM, (0, 0, 0))
    if not counts:
        return
    top = max(counts) or 1
    bw = max(2, (PANEL_W - 10) // len(counts))
    for i, n in enumerate(counts):
        h = int((BOTTOM - TOP - 20) * n / top)
        bx = x0 + 6 + i * bw
        c.rect(bx, BOTTOM - h, bx + bw - 2, BOTTOM, rgb)
        if n == top:
            c.text(bx, BOTTOM - h - 14, str(n))
        if labels[i]:
            c.text(bx, BOTTOM + 8, labels[i])


def render(hops: Sequence[int], latencies_ms: Sequence[float]) -> bytes:
    """PNG bytes: hop histogram (left, "h") and latency histogram (right, "ms")."""
    c = Canvas(W, H)
    if hops:
        lo, hi = min(hops), max(hops)
        counts = [sum(1 for h in hops if h == v) for v in range(lo, hi + 1)]
        _bars(c, 30, counts, [str(v) for v in range(lo, hi + 1)], (60, 110, 200))
    c.text(30, 300, "h")
    if latencies_ms:
        top = max(latencies_ms) or 1.0
        bins = [0] * 30
        for v in latencies_ms:
            bins[min(29, int(v / top * 30))] += 1
        labels = [""] * 30
        labels[0] = "0"
        labels[-1] = f"{top:.0f}"
        _bars(c, 420, bins, labels, (220, 120, 40))
    c.text(420, 300, "ms")
    return c.png()
