"""The `balanced` decision: the best predicted value for the caller's willingness to pay.

Pure functions, no I/O. For one request every candidate m has a predicted quality q_m (0..1, from
profiles.py) and a predicted cost c_m in USD (prompt tokens x input price + the model's expected
answer length x output price). The choice maximises

    q_m - c_m / V(wtp),     V(wtp) = V_REF_USD * 10 ** (WTP_DECADES * (wtp - 0.5))

V is what one unit of quality (the whole 0..1 scale) is worth to the caller, in USD per request:
V_REF_USD at the default wtp = 0.5, spanning WTP_DECADES decades over the knob; wtp = 0 means V = 0
(the cheapest candidate, ties to the stronger) and wtp = 1 means V = infinity (the strongest
predicted candidate, ties to the cheaper).

Monotone: if V1 < V2 choose m1 and m2, optimality at each gives (c2 - c1)(1/V1 - 1/V2) >= 0, so
c2 >= c1 and then q2 - q1 >= (c2 - c1) / V2 >= 0: raising the willingness to pay never picks a
cheaper or a weaker predicted model. The ranking after the first place (the failover order) is by
the same utility.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_WILLINGNESS_TO_PAY = 0.5
V_REF_USD = 0.05          # USD per request that one unit of quality is worth at wtp = 0.5
WTP_DECADES = 8.0         # V spans 1e-4 .. 1e4 x V_REF_USD between wtp = 0+ and 1-


def value_of_quality(wtp: float) -> float:
    """V(wtp) in USD per unit of quality; 0 at wtp <= 0, infinity at wtp >= 1."""
    w = float(wtp)
    if not w > 0.0:          # also NaN
        return 0.0
    if w >= 1.0:
        return math.inf
    return V_REF_USD * 10.0 ** (WTP_DECADES * (w - 0.5))


def utility_order(quality: np.ndarray, cost: np.ndarray, wtp: float) -> np.ndarray:
    """Candidate indices best-first for one request (stable, deterministic tie-breaks)."""
    q = np.asarray(quality, float)
    if not np.isfinite(q).all():             # nan_to_num costs more than the rest of the order
        q = np.nan_to_num(q, nan=-1e9)
    c = np.asarray(cost, float)
    v = value_of_quality(wtp)
    # np.lexsort is stable: what every key ties on stays in the listed order (the last tie-break)
    if v == 0.0:
        keys = (-q, c)                           # cheapest, then stronger, then first listed
    elif math.isinf(v):
        keys = (c, -q)                           # strongest, then cheaper, then first listed
    else:
        u = q - c / v
        keys = (-q, c, -u)                       # best utility, then cheaper, then stronger
    return np.lexsort(keys)


def choose_matrix(quality: np.ndarray, cost: np.ndarray, wtps) -> np.ndarray:
    """(n, len(wtps)) index of the chosen candidate per prompt (rows) and willingness to pay:
    the same rule as `utility_order(...)[0]`, vectorised for the offline evaluation."""
    q = np.nan_to_num(np.asarray(quality, float), nan=-1e9)
    c = np.asarray(cost, float)
    n, m = q.shape
    out = np.zeros((n, len(wtps)), dtype=np.int64)
    for k, w in enumerate(wtps):
        v = value_of_quality(w)
        if v == 0.0:
            primary, secondary = -c, q
        elif math.isinf(v):
            primary, secondary = q, -c
        else:
            primary, secondary = q - c / v, -c
        best = primary.max(axis=1, keepdims=True)
        tied = primary >= best
        if v != 0.0 and not math.isinf(v):
            # exact ties on utility: cheaper, then stronger, then first listed
            sec = np.where(tied, secondary, -np.inf)
            tied &= sec >= sec.max(axis=1, keepdims=True)
            sec = np.where(tied, q, -np.inf)
            tied &= sec >= sec.max(axis=1, keepdims=True)
        else:
            sec = np.where(tied, secondary, -np.inf)
            tied &= sec >= sec.max(axis=1, keepdims=True)
        out[:, k] = np.argmax(tied, axis=1)
    return out


def shown_quality(q: float, digits: int = 3) -> str:
    """A predicted quality as a reason shows it: on the 0..1 scale it is read on. The linear
    prediction can leave it for a strong model on an easy prompt (1.43); the ranking keeps the
    uncapped score, which the text then gives too, so that it still explains the order."""
    q = float(q)
    capped = min(1.0, max(0.0, q)) if q == q else q
    return f"{capped:.{digits}f}" if capped == q else f"{capped:.{digits}f} (uncapped score {q:.{digits}f})"


@dataclass(frozen=True)
class Decision:
    order: list[int]          # candidate indices best-first
    quality: np.ndarray       # predicted quality per candidate
    cost_usd: np.ndarray      # predicted cost per candidate
    wtp: float

    def reason(self, names: list[str], sources: list[str] | None = None) -> str:
        def desc(i: int) -> str:
            src = f", {sources[i]}" if sources else ""
            return f"{names[i]} (predicted quality {shown_quality(self.quality[i])}, est. cost ${self.cost_usd[i]:.6f}{src})"
        best = self.order[0]
        text = f"wtp={self.wtp:.2f}: chose {desc(best)}"
        if len(self.order) > 1:
            text += f"; runner-up {desc(self.order[1])}"
        return text


def decide(quality: np.ndarray, cost_usd: np.ndarray, wtp: float) -> Decision:
    order = utility_order(quality, cost_usd, wtp)
    return Decision(order.tolist(), np.asarray(quality, float), np.asarray(cost_usd, float),
                    min(1.0, max(0.0, float(wtp))) if wtp == wtp else DEFAULT_WILLINGNESS_TO_PAY)
