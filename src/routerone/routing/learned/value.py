"""The `balanced` strategy's decision: trade the predicted gain of a stronger model against price.

Pure functions, no I/O: `rank_by_value(gain, candidates, willingness_to_pay)`.

Each candidate gets a utility
    U = gain * quality_position - price_aversion * price_position
where quality_position is its catalog quality rescaled to 0 (weakest candidate) .. 1 (strongest),
price_position its log price rescaled to 0 (cheapest) .. 1 (dearest), and
    price_aversion = REFERENCE_GAIN * (1 - wtp) / wtp.
So, between only a weak cheap model and a strong dear one, the strong one wins exactly when
gain >= price_aversion: at the default wtp = 0.5 that threshold is REFERENCE_GAIN (about the median
gain the shipped router predicts on its training prompts, so roughly half of typical traffic goes
to the stronger model); wtp = 1 always picks the strongest candidate, wtp = 0 the cheapest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

DEFAULT_WILLINGNESS_TO_PAY = 0.5
REFERENCE_GAIN = 0.12   # threshold on predicted gain at wtp = 0.5 (see module docstring)


@dataclass(frozen=True)
class Candidate:
    name: str
    quality: float                 # 0..1 catalog strength, higher is stronger
    price_micros_per_mtok: int     # blended price, micro-dollars per 1M tokens


def price_aversion(willingness_to_pay: float, reference_gain: float = REFERENCE_GAIN) -> float:
    """Gain needed to move from the cheapest to the dearest (and strongest) candidate."""
    wtp = min(1.0, max(0.0, float(willingness_to_pay)))
    if wtp <= 0.0:
        return math.inf
    return reference_gain * (1.0 - wtp) / wtp


def _positions(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-12:
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def rank_by_value(gain: float, candidates: Sequence[Candidate],
                  willingness_to_pay: float = DEFAULT_WILLINGNESS_TO_PAY,
                  *, reference_gain: float = REFERENCE_GAIN) -> tuple[list[str], str]:
    """Candidate names best-first, and a one-line reason.

    gain: the learned router's predicted gain of a strong over a weak model for this prompt, 0..1.
    willingness_to_pay: 0..1, default 0.5. 0 = always the cheapest candidate; 1 = always the
    strongest; in between, the gain a prompt needs before a dearer model is worth it falls as
    the knob rises (threshold = reference_gain * (1 - wtp) / wtp for the full cheap-to-strong step).
    Ties go to the cheaper, then the stronger, then the alphabetically first candidate.
    """
    g = float(gain) if gain == gain else 0.0
    g = min(1.0, max(0.0, g))
    wtp = min(1.0, max(0.0, float(willingness_to_pay)))
    cands = list(candidates)
    if not cands:
        return [], "no candidates"
    if len(cands) == 1:
        return [cands[0].name], "only one candidate"
    q_pos = _positions([c.quality for c in cands])
    p_pos = _positions([math.log1p(max(0, c.price_micros_per_mtok)) for c in cands])
    aversion = price_aversion(wtp, reference_gain)

    def utility(i: int) -> float:
        if math.isinf(aversion):
            return -p_pos[i] + 1e-9 * q_pos[i]
        return g * q_pos[i] - aversion * p_pos[i]

    order = sorted(range(len(cands)), key=lambda i: (-utility(i), cands[i].price_micros_per_mtok,
                                                     -cands[i].quality, cands[i].name))
    best = order[0]
    strongest = max(range(len(cands)), key=lambda i: (q_pos[i], -p_pos[i]))
    names = [cands[i].name for i in order]
    dq = q_pos[strongest] - q_pos[best]
    if dq <= 1e-12:
        need = aversion * max(0.0, p_pos[best] - min(p_pos))
        return names, (f"predicted gain {g:.2f} >= threshold {need:.2f} at wtp={wtp:.2f}: "
                       f"strongest model {cands[best].name} is worth its price")
    need = aversion * (p_pos[strongest] - p_pos[best]) / dq
    return names, (f"predicted gain {g:.2f} < threshold {need:.2f} at wtp={wtp:.2f}: "
                   f"cheaper model {cands[best].name} suffices")
