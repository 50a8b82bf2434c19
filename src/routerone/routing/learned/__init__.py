"""The learned `auto` router: per-model quality profiles and the `balanced` value decision.

    router = ProfileRouter.load()                      # shipped artefact, cached per process
    q = router.predict(prompt, ["gpt-4o", "gpt-4o-mini"])   # predicted quality per model
    decision = decide(q, cost_usd, willingness_to_pay)      # value.py

Inference needs numpy only. Training lives in `profile_fit.py` and `train.py`.
"""
from .profiles import Profile, ProfileRouter
from .value import DEFAULT_WILLINGNESS_TO_PAY, Decision, decide

__all__ = ["ProfileRouter", "Profile", "Decision", "decide", "DEFAULT_WILLINGNESS_TO_PAY"]
