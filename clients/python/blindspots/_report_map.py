"""The report's map: an inline SVG scatter of a RunMap, regions outlined."""
from __future__ import annotations

from html import escape
from typing import Sequence

import numpy as np
import pandas as pd

# Region colours (no red: red marks failures).
REGION_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
FAILURE_COLOUR = "#d62728"
OTHER_COLOUR = "#b8bec7"
# A region's outline leaves out its farthest points so one stray point does not
# stretch it over the whole map.
HULL_QUANTILE = 0.9


def region_colour(region_id: int) -> str:
    return OTHER_COLOUR if region_id < 0 else REGION_COLOURS[region_id % len(REGION_COLOURS)]


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of n x 2 points, counter-clockwise (monotone chain)."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def svg_map(points: pd.DataFrame, class_names: Sequence[str], width: int = 760, height: int = 540) -> str:
    """An SVG element: grey points, region members in their region's colour,
    failures ringed in red, each region's core outlined and labelled."""
    pad = 24
    xy = points[["x", "y"]].to_numpy(dtype=np.float64)
    if len(xy) == 0:
        return f'<svg class="map" width="{width}" height="{height}"></svg>'
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    scale = min((width - 2 * pad) / span[0], (height - 2 * pad) / span[1])   # equal aspect: honest distances
    offset = np.array([(width - span[0] * scale) / 2, (height - span[1] * scale) / 2])
    screen = (xy - lo) * scale + offset
    screen[:, 1] = height - screen[:, 1]                                      # y up

    def name(i: int) -> str:
        return class_names[i] if 0 <= i < len(class_names) else str(i)

    parts = [f'<svg class="map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="2-D map of the test embeddings">',
             f'<rect width="{width}" height="{height}" fill="#ffffff" stroke="#d0d4da"/>']
    regions = points["region"].to_numpy()
    failed = points["failed"].to_numpy()
    outlines, labels = [], []
    for r in sorted(int(v) for v in np.unique(regions[regions >= 0])):
        member = screen[regions == r]
        centre = np.median(member, axis=0)
        dist = np.linalg.norm(member - centre, axis=1)
        core = member[dist <= np.quantile(dist, HULL_QUANTILE)] if len(member) >= 5 else member
        hull = convex_hull(core)
        colour = region_colour(r)
        if len(hull) >= 3:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in hull)
            outlines.append(f'<polygon points="{path}" fill="{colour}" fill-opacity="0.12" stroke="{colour}" '
                            f'stroke-width="2" stroke-dasharray="5 3"/>')
        labels.append(f'<text x="{centre[0]:.1f}" y="{centre[1] - 8:.1f}" class="region-label" '
                      f'fill="{colour}">R{r}</text>')
    parts.extend(outlines)
    # Draw order: plain points, then region members, then failures on top.
    order = np.lexsort((failed, regions >= 0))
    rows = points.iloc[order]
    for (x, y), (_, row) in zip(screen[order], rows.iterrows()):
        r = int(row["region"])
        colour = region_colour(r)
        title = escape(f"{row['sample_id']}: {name(int(row['label']))} -> {name(int(row['predicted']))}"
                       + (f", region {r}" if r >= 0 else ""))
        if row["failed"]:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{colour}" stroke="{FAILURE_COLOUR}" '
                         f'stroke-width="1.6"><title>{title}</title></circle>')
        else:
            opacity = "0.9" if r >= 0 else "0.55"
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{colour}" fill-opacity="{opacity}">'
                         f'<title>{title}</title></circle>')
    parts.extend(labels)
    parts.append("</svg>")
    return "\n".join(parts)
