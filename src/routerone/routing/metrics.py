"""Router quality metrics: RouteLLM's APGR / CPT for two models, RouterBench's AIQ for many.

Two models (RouteLLM, `routellm/evals/evaluate.py` and `benchmarks.py`):
  * a router gives each prompt a score; thresholds are the 0, 10, ..., 100 % quantiles of the
    scores; at each threshold the prompts scoring >= it go to the strong model (at the last one,
    > it), which gives a point (strong-call %, mean quality);
  * APGR = (area under quality vs strong-call fraction - weak quality * x-range)
           / ((strong quality - weak quality) * x-range), trapezoid rule over those points;
    a router no better than a coin scores 0.5; an oracle can exceed 1 (it can also route the
    prompts that only the weak model gets right to the weak model);
  * CPT(p) = strong-call % needed to reach weak + p * (strong - weak) quality, by linear
    interpolation on the curve (RouteLLM uses np.interp on quality, which assumes the curve rises;
    here: the first crossing when walking up in strong-call %, identical when the curve rises).

Many models (RouterBench, Hu et al. 2024):
  * each operating point is (mean cost per prompt, mean quality); a router's curve is the
    non-decreasing upper convex hull of its points (mixing two settings at random reaches any point
    between them), flat after its best quality;
  * the zero router is that hull over the single models alone (the best random mix of models);
  * AIQ = mean of the hull over [c_lo, c_hi] (the cheapest single model's cost up to the largest
    cost of any point compared); below a curve's cheapest point its quality counts as 0.
"""
from __future__ import annotations

import numpy as np

CPT_FRACTIONS = (0.5, 0.8)


def routellm_curve(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray,
                   n_bins: int = 10) -> list[tuple[float, float]]:
    """[(strong-call %, mean quality)] at the router's quantile thresholds, by strong-call %."""
    scores = np.asarray(scores, dtype=np.float64)
    thresholds = np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1))
    points = []
    for i, t in enumerate(thresholds):
        to_strong = scores >= t if i < len(thresholds) - 1 else scores > t
        quality = float(np.mean(np.where(to_strong, strong, weak)))
        points.append((100.0 * float(np.mean(to_strong)), quality))
    return sorted(points)


def apgr(curve: list[tuple[float, float]], weak_quality: float, strong_quality: float) -> float:
    """Average performance gap recovered (see module docstring)."""
    x = np.array([p[0] for p in curve]) / 100.0
    y = np.array([p[1] for p in curve])
    span = float(x[-1] - x[0])
    gap = strong_quality - weak_quality
    if span <= 0 or gap == 0:
        return float("nan")
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    return (area - weak_quality * span) / (gap * span)


def cpt(curve: list[tuple[float, float]], weak_quality: float, strong_quality: float,
        fraction: float) -> float:
    """Strong-call % needed to recover `fraction` of the weak-to-strong quality gap."""
    target = weak_quality + fraction * (strong_quality - weak_quality)
    if curve[0][1] >= target:
        return curve[0][0]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if y1 >= target > y0:
            return x0 + (target - y0) * (x1 - x0) / (y1 - y0)
    return 100.0


def routellm_summary(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> dict:
    curve = routellm_curve(scores, weak, strong)
    w, s = float(np.mean(weak)), float(np.mean(strong))
    out = {"apgr": apgr(curve, w, s), "curve": [[x, y] for x, y in curve]}
    for f in CPT_FRACTIONS:
        out[f"cpt_{int(f * 100)}_pct"] = cpt(curve, w, s, f)
    return out


def pgr(quality: float, weak_quality: float, strong_quality: float) -> float:
    """Performance gap recovered by a single operating point."""
    gap = strong_quality - weak_quality
    return (quality - weak_quality) / gap if gap else float("nan")


def upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-decreasing upper convex hull of (cost, quality) points, from the cheapest point up to
    the first point of best quality."""
    pts = sorted(set((float(c), float(q)) for c, q in points), key=lambda p: (p[0], -p[1]))
    if not pts:
        return []
    start = pts[0]
    best_q = max(q for _, q in pts)
    end = min((p for p in pts if p[1] == best_q), key=lambda p: p[0])
    pts = [p for p in pts if start[0] <= p[0] <= end[0]]
    hull: list[tuple[float, float]] = []
    for p in pts:
        if hull and p[0] == hull[-1][0]:
            continue   # same cost: the first (best-quality) point is kept
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()     # hull[-1] lies on or below the chord hull[-2] -> p
            else:
                break
        hull.append(p)
    return hull


def hull_quality(hull: list[tuple[float, float]], cost: float) -> float:
    """Quality the hull reaches at `cost`; 0 below its cheapest point, flat past its end."""
    if not hull or cost < hull[0][0]:
        return 0.0
    xs = [p[0] for p in hull]
    ys = [p[1] for p in hull]
    return float(np.interp(cost, xs, ys))


def aiq(hull: list[tuple[float, float]], cost_lo: float, cost_hi: float) -> float:
    """Average quality of the hull over [cost_lo, cost_hi] (exact piecewise-linear integral)."""
    if cost_hi <= cost_lo:
        return hull_quality(hull, cost_lo)
    if not hull:
        return 0.0
    inside = [c for c, _ in hull if cost_lo < c < cost_hi]
    knots = sorted({cost_lo, cost_hi, *inside})
    area = 0.0
    for a, b in zip(knots, knots[1:]):
        if a >= hull[0][0]:      # pieces before the curve's cheapest point count as 0
            area += (b - a) * (hull_quality(hull, a) + hull_quality(hull, b)) / 2.0
    return area / (cost_hi - cost_lo)
