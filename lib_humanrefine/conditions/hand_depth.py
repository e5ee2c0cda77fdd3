"""Hand depth maps for a depth ControlNet, rendered from the 21 MediaPipe landmarks.

HandRefiner renders a MANO mesh fitted by MeshGraphormer; we build a comparable solid from the landmarks
themselves: every finger bone is a tapered capsule (a sphere swept along the bone, radius from typical
finger breadths relative to the palm length), the palm is a rounded slab (its landmark polygon swept by a
sphere of half the palm thickness), the thenar eminence and a short wrist stub (cut flat, like the mesh's
open wrist) are wide capsules. Everything is ray-cast orthographically along z with one z-buffer; each
hand is normalised over its own depth range like HandRefiner: 255 nearest, ~51 farthest, 0 background.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lib_humanrefine.detect.types import FINGERS

# Joint radii as fractions of the palm length (wrist to middle knuckle), knuckle -> tip for each finger,
# from adult hand breadths (index PIP ~2.1 cm, pinky PIP ~1.7 cm, thumb IP ~2.3 cm on a ~10 cm palm; MANO-like
# fullness).
RADII = {
    "thumb": (0.16, 0.13, 0.12, 0.105),
    "index": (0.12, 0.11, 0.097, 0.086),
    "middle": (0.122, 0.112, 0.099, 0.088),
    "ring": (0.115, 0.104, 0.092, 0.082),
    "pinky": (0.104, 0.09, 0.08, 0.072),
}
PALM_HALF_THICKNESS = 0.13  # x palm length
PALM_FAN = ((0, 1, 5), (0, 5, 9), (0, 9, 13), (0, 13, 17))  # palm polygon as triangles around the wrist
PALM_RIM = ((0, 1), (1, 5), (5, 9), (9, 13), (13, 17), (17, 0))
TIP_OVERHANG = 0.4  # the fingertip surface reaches this many tip radii past the tip landmark
NEAR, FAR = 255.0, 51.0  # HandRefiner: 255 * (1 - 0.8 * normalised depth)


class _Canvas:
    """One hand's z-buffer over the output grid; geometry is in image pixels (source units)."""

    def __init__(self, box, size, lo: np.ndarray, hi: np.ndarray):
        """Output grid of ``box`` at ``size``; the z-buffer covers only the source-space region [lo, hi]."""
        x0, y0, x1, y1 = map(float, box)
        width, height = int(size[0]), int(size[1])
        self.sx = width / max(x1 - x0, 1e-6)
        self.sy = height / max(y1 - y0, 1e-6)
        self.min_radius = 1.0 / min(self.sx, self.sy)  # one output pixel along the coarser axis
        self.x0, self.y0 = x0, y0
        # The buffer spans the whole hand, also outside the output grid, so that the per-hand depth range
        # does not depend on the crop; a hand far larger than the output is clipped to the output instead.
        big = 1 << 30
        self.r0, self.c0, self.r1, self.c1 = -big, -big, big, big
        pad = self.min_radius + 1.0 / min(self.sx, self.sy)
        rows, cols = self._window(np.subtract(lo, pad), np.add(hi, pad)) or (slice(big, big), slice(big, big))
        rows, cols = slice(rows.start - big, rows.stop - big), slice(cols.start - big, cols.stop - big)
        if (rows.stop - rows.start) * (cols.stop - cols.start) > 4 * width * height:
            rows = slice(max(rows.start, 0), max(min(rows.stop, height), 0))
            cols = slice(max(cols.start, 0), max(min(cols.stop, width), 0))
        self.r0, self.c0, self.r1, self.c1 = rows.start, cols.start, rows.stop, cols.stop
        # pixel centres of the region, in image pixels
        self.xs = (x0 + (np.arange(self.c0, self.c1) + 0.5) / self.sx).astype(np.float32)
        self.ys = (y0 + (np.arange(self.r0, self.r1) + 0.5) / self.sy).astype(np.float32)
        self.z = np.full((self.r1 - self.r0, self.c1 - self.c0), np.inf, np.float32)

    def _window(self, lo, hi):
        """Index ranges (into the z-buffer) of the pixel centres inside the source-space box [lo, hi], or None."""
        c0 = max(int(np.floor((lo[0] - self.x0) * self.sx - 0.5)), self.c0)
        c1 = min(int(np.ceil((hi[0] - self.x0) * self.sx - 0.5)) + 1, self.c1)
        r0 = max(int(np.floor((lo[1] - self.y0) * self.sy - 0.5)), self.r0)
        r1 = min(int(np.ceil((hi[1] - self.y0) * self.sy - 0.5)) + 1, self.r1)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0 - self.r0, r1 - self.r0), slice(c0 - self.c0, c1 - self.c0)

    def paste_window(self, width: int, height: int):
        """(output window, buffer window) of the part of the buffer inside the output, or None."""
        r0, c0 = max(self.r0, 0), max(self.c0, 0)
        r1, c1 = min(self.r1, height), min(self.c1, width)
        if r0 >= r1 or c0 >= c1:
            return None
        own = slice(r0 - self.r0, r1 - self.r0), slice(c0 - self.c0, c1 - self.c0)
        return (slice(r0, r1), slice(c0, c1)), own

    def _put(self, win, depth: np.ndarray) -> None:
        view = self.z[win]
        np.minimum(view, depth, out=view)

    def capsule(self, a, b, ra: float, rb: float, flat: float = 1.0, cap_b: bool = True) -> None:
        """Tapered capsule a -> b (x, y, z). Front surface: axis z at the closest point minus
        flat * sqrt(r^2 - d^2) (flat < 1: elliptic section, thinner in depth). cap_b=False cuts b flat."""
        ra, rb = max(ra, self.min_radius), max(rb, self.min_radius)
        (ax, ay, az), (bx, by, bz) = (map(float, a), map(float, b))  # python floats keep float32 maths
        r = max(ra, rb)
        win = self._window((min(ax, bx) - r, min(ay, by) - r), (max(ax, bx) + r, max(ay, by) + r))
        if win is None:
            return
        px = self.xs[win[1]][None, :] - ax
        py = self.ys[win[0]][:, None] - ay
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = (px * (dx / length2) + py * (dy / length2)) if length2 > 1e-12 else np.zeros_like(px + py)
        beyond = t > 1.0
        np.clip(t, 0.0, 1.0, out=t)
        ex, ey = px - t * dx, py - t * dy
        rad = ra + (rb - ra) * t
        h2 = rad * rad - (ex * ex + ey * ey)
        inside = h2 > 0
        if not cap_b:
            inside &= ~beyond
        depth = (az + (bz - az) * t) - flat * np.sqrt(np.maximum(h2, 0.0))
        self._put(win, np.where(inside, depth, np.inf))

    def slab(self, p, q, s, half: float) -> None:
        """Flat front of a triangle slab (z interpolated over the triangle, minus the half thickness);
        its rounded rim comes from capsules along the edges."""
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = (map(float, v) for v in (p, q, s))
        area2 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area2) < 1e-9:
            return
        win = self._window((min(ax, bx, cx), min(ay, by, cy)), (max(ax, bx, cx), max(ay, by, cy)))
        if win is None:
            return
        px = self.xs[win[1]][None, :] - ax
        py = self.ys[win[0]][:, None] - ay
        w1 = px * ((cy - ay) / area2) - py * ((cx - ax) / area2)
        w2 = py * ((bx - ax) / area2) - px * ((by - ay) / area2)
        inside = (w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1)
        z = (az - half) + w1 * (bz - az) + w2 * (cz - az)
        self._put(win, np.where(inside, z, np.inf))


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 1e-9 else v * 0


def palm_length(lm: np.ndarray) -> float:
    """Hand scale: wrist -> middle knuckle in 3-D, guarded against foreshortening by the knuckle span."""
    length = np.linalg.norm(lm[9] - lm[0])
    span = np.linalg.norm(lm[17] - lm[5])
    return float(max(length, 1.45 * span, 1e-6))


def _extent(lm: np.ndarray, wrist: float) -> tuple[np.ndarray, np.ndarray]:
    """Image-space bounding box of everything _draw_hand can cover."""
    scale = palm_length(lm)
    pts = lm[:, :2]
    if wrist > 0:
        pts = np.vstack([pts, lm[0, :2] + wrist * scale * _unit(lm[0] - lm[9])[:2]])
    margin = 0.35 * scale + 2.0
    return pts.min(axis=0) - margin, pts.max(axis=0) + margin


def _draw_hand(canvas: _Canvas, lm: np.ndarray, wrist: float) -> None:
    scale = palm_length(lm)
    half = PALM_HALF_THICKNESS * scale

    # palm: flat-fronted fan of triangles with a rounded rim
    for tri in PALM_FAN:
        canvas.slab(*(lm[i] for i in tri), half=half)
    for i, j in PALM_RIM:
        canvas.capsule(lm[i], lm[j], half, half)

    # wrist: a wide, depth-flattened capsule from inside the palm base to a flat cut past the wrist;
    # its visible width follows the projected knuckle span (narrow when the palm is seen edge-on)
    if wrist > 0:
        axis = _unit(lm[0] - lm[9])
        width = float(np.clip(0.5 * np.linalg.norm(lm[17, :2] - lm[5, :2]), half, 0.3 * scale))
        start = lm[0] - 0.25 * scale * axis
        end = lm[0] + wrist * scale * axis
        canvas.capsule(start, end, width, 0.9 * width, flat=min(1.0, half / width), cap_b=False)

    # thenar eminence: thumb base to the wrist, depth-flattened like the palm
    thenar = RADII["thumb"][0] * scale
    canvas.capsule(lm[0] + 0.3 * (lm[1] - lm[0]), lm[1], thenar, thenar, flat=min(1.0, 1.1 * half / thenar))

    for finger, idx in FINGERS.items():
        radii = [f * scale for f in RADII[finger]]
        for k in range(3):
            a, b = lm[idx[k]], lm[idx[k + 1]]
            if k == 2:  # pull the tip sphere back so its surface ends just past the tip landmark
                bone = b - a
                n = np.linalg.norm(bone[:2])
                back = min((1 - TIP_OVERHANG) * radii[3], 0.5 * n)
                b = b - bone * (back / n) if n > 1e-9 else b
            canvas.capsule(a, b, radii[k], radii[k + 1])


def render_hand_depth(
    hands: Sequence[np.ndarray],
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    wrist: float = 0.25,
) -> np.ndarray:
    """Depth control image of the hands inside ``box`` = (x0, y0, x1, y1) (image pixels, any aspect),
    rendered at ``size`` = (width, height).

    ``hands``: (21, 3) landmark arrays, x and y in image pixels, z MediaPipe's relative depth on the x scale
    (smaller = nearer). MediaPipe's z is relative to each hand's wrist, so between hands only the z given
    here decides who is in front (shift a hand's z to order them). ``wrist``: length of the wrist stub in
    palm lengths (0: none). Returns uint8 (height, width): each hand normalised over its own depth range,
    255 at its nearest surface point, ~51 at its farthest, 0 background; nearer surface wins between hands.
    """
    width, height = int(size[0]), int(size[1])
    out = np.zeros((height, width), np.uint8)
    best = np.full((height, width), np.inf, np.float32)
    for landmarks in hands:
        lm = np.asarray(landmarks, dtype=np.float64)[:, :3]
        if lm.shape != (21, 3) or not np.isfinite(lm).all():
            continue
        canvas = _Canvas(box, (width, height), *_extent(lm, wrist))
        _draw_hand(canvas, lm, wrist)
        hit = canvas.z < np.inf
        windows = canvas.paste_window(width, height)
        if windows is None or not hit.any():
            continue
        dmin, dmax = float(canvas.z[hit].min()), float(canvas.z[hit].max())
        gain = (NEAR - FAR) / (dmax - dmin) if dmax > dmin else 0.0
        win, own = windows
        z, hit = canvas.z[own], hit[own]
        front = hit & (z < best[win])
        best[win][front] = z[front]
        out[win][front] = np.clip(np.round(NEAR - gain * (z[front] - dmin)), 1, 255).astype(np.uint8)
    return out
