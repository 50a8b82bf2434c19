"""The learned `auto` router: a per-prompt gain predictor and the `balanced` value ranking.

    router = LearnedRouter.load()            # shipped artefact, cached per process
    gain = router.predict_gain(prompt)       # 0..1
    names, reason = rank_by_value(gain, candidates, willingness_to_pay)

Inference needs numpy only. Training and data preparation live in `train.py`.
"""
from .model import LearnedRouter
from .value import DEFAULT_WILLINGNESS_TO_PAY, Candidate, rank_by_value

__all__ = ["LearnedRouter", "Candidate", "rank_by_value", "DEFAULT_WILLINGNESS_TO_PAY"]
