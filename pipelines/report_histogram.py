"""The run report's histogram of total scores: the bins and an inline SVG (no scripts, nothing
external), and how the report escapes text and prints a number."""

from __future__ import annotations

import html
import math


def escape(value: object) -> str:
    """Text for HTML: every student-controlled string on the report goes through this."""
    return html.escape("" if value is None else str(value), quote=True)


def number(x: float | None, digits: int = 2) -> str:
    """A score or time as the report shows it: no trailing zeros, "–" for none."""
    if x is None:
        return "–"
    text = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return text or "0"


def histogram_bins(scores: list[float], max_score: float) -> list[tuple[str, int]]:
    """(label, count) bars: one per whole point up to 20 points, else ten equal bins."""
    if max_score <= 0:
        return [("0", len(scores))]
    if max_score <= 20:
        top = int(math.floor(max_score))
        labels = [str(k) for k in range(top + 1)]
        counts = [0] * (top + 1)
        for s in scores:
            counts[min(top, max(0, int(math.floor(s + 1e-9))))] += 1
        return list(zip(labels, counts))
    width = max_score / 10
    counts = [0] * 10
    for s in scores:
        counts[min(9, max(0, int((s + 1e-9) // width)))] += 1
    return [(f"{number(i * width, 1)}–{number((i + 1) * width, 1)}", n) for i, n in enumerate(counts)]


def histogram_svg(bins: list[tuple[str, int]]) -> str:
    """One bar per bin, labelled, with its count above it."""
    W, H, left, bottom, top = 640, 240, 40, 36, 16
    plot_w, plot_h = W - left - 10, H - bottom - top
    peak = max(n for _, n in bins) or 1
    bw = plot_w / len(bins)
    parts = [
        f'<svg id="score-histogram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        'role="img" aria-label="histogram of total scores">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{W - 10}" y2="{top + plot_h}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="tick">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>',
        f'<text x="{left + plot_w / 2}" y="{H - 4}" text-anchor="middle" class="tick">total score (points)</text>',
    ]
    for i, (label, n) in enumerate(bins):
        h = plot_h * n / peak
        x = left + i * bw + 2
        y = top + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{max(bw - 4, 1):.1f}" height="{h:.1f}" '
            f'data-label="{escape(label)}" data-count="{n}">'
            f"<title>{escape(label)} points: {n} submission(s)</title></rect>"
        )
        if n:
            parts.append(
                f'<text x="{x + (bw - 4) / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" class="count">{n}</text>'
            )
        parts.append(
            f'<text x="{x + (bw - 4) / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
            f'class="tick">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
