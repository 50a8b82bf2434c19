"""The `balanced` decision's output does not change when its code is made faster.

Three checks over one fixed-seed corpus of varied prompts (empty, whitespace, unicode, lone
surrogates, code, numbers, backtick runs, a 300k-character prompt):
  * the prompt features equal frozen values computed by the code before the issue-16 speed-up
    (fixtures/features_frozen.json: a digest of the bucket ids and counts, the dense features);
  * the scorer's traits and length factor equal a plain dense-vector reference, to 1e-9;
  * every candidate's predicted quality and cost, the order and the reason equal a plain per-model
    reference of profiles.py and value.py, for 20 candidates at several wtp and max_tokens.

The features fixture depends on the text alone (not on the trained artefact). Rewrite it only when
the features are meant to change (a new artefact must then be trained):
    PYTHONPATH=src .venv/bin/python tests/unit/routing/test_decision_unchanged.py --write
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from routerone.billing.prices import Price
from routerone.catalog import ModelInfo
from routerone.providers.base import Deployment, Vendor
from routerone.routing.base import RouteContext
from routerone.routing.health import Health
from routerone.routing.learned import features as F
from routerone.routing.learned.model import LinearScorer
from routerone.routing.learned.profiles import LENGTH_CLIP, TRAITS
from routerone.routing.learned.value import shown_quality, utility_order, value_of_quality
from routerone.routing.strategies import BalancedStrategy
from routerone.wire.chat import validate_body

FIXTURE = Path(__file__).with_name("fixtures") / "features_frozen.json"
PROSE = ("the of and to in is that for it as with was on be by this are from or an which can we model "
         "data function return value integral matrix proof theorem compute explain summary please write "
         "code python error because however therefore example result").split()
UNICODE = ("é", "ü", "Ω", "漢字", "日本語", "🙂", "ß", "Ünïcödé", "\u00a0", "\u2028", "ﬁ", "İ")


def _piece(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return " ".join(rng.choice(PROSE) for _ in range(rng.randint(3, 25))).capitalize() + rng.choice(".?!")
    if kind == 1:
        product = f"{rng.randint(0, 99999)} * {rng.uniform(0, 999):.{rng.randint(0, 4)}f}"
        return f"Compute {product} = ? ({rng.randint(1, 99)}%)"
    if kind == 2:
        return (f"```{rng.choice(['python', 'js', ''])}\ndef f{rng.randint(0, 99)}(x, y=[1, 2]):\n"
                f"\treturn x ** {rng.randint(2, 9)} / y[0]  # $cost = a/b\n```")
    if kind == 3:
        return " ".join(rng.choice(UNICODE) + rng.choice(PROSE) for _ in range(rng.randint(1, 12)))
    if kind == 4:
        return "`" * rng.randint(1, 8) + rng.choice(["x", " ", "\n", ""])
    if kind == 5:
        return "".join(rng.choice(" \t\n\r\x0b\x0c") for _ in range(rng.randint(1, 6)))
    return "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 40)))


def corpus() -> list[str]:
    """About 70 prompts, always the same."""
    out = ["", " ", "\n", "a", "ab", "abc", "```", "é", "日本語のプロンプト", "\ud800 lone surrogate ?",
           "\t\r\x0b\x0c" * 10, "%$/=(?" * 3000, "1.5 + 2.25 = ?" * 900, "WORD " * 20000]
    rng = random.Random(16)
    for n in (1, 3, 10, 100, 500, 2000, 3999, 4000, 4001, 4002, 8000, 20000, 40000):
        for _ in range(4):
            text = ""
            while len(text) < n:
                text += _piece(rng) + rng.choice((" ", "\n", "\n\n", ""))
            out.append(text[:n])
    huge = []
    while sum(map(len, huge)) < 300_000:
        huge.append(_piece(rng))
    out.append("\n".join(huge))
    return out


def _frozen_row(text: str) -> dict:
    ids, counts, dense = F.prompt_features(text)
    digest = hashlib.sha256(np.asarray(ids, np.int64).tobytes() + b"|" + np.asarray(counts, np.float64).tobytes())
    return {"chars": len(text), "text_sha256": hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(),
            "n_ids": int(ids.size), "ids_counts_sha256": digest.hexdigest(), "dense": [float(x) for x in dense]}


CORPUS = corpus()


@pytest.fixture(scope="module")
def frozen() -> list[dict]:
    return json.loads(FIXTURE.read_text())["prompts"]


def test_corpus_is_the_frozen_one(frozen):
    assert len(frozen) == len(CORPUS)
    for text, row in zip(CORPUS, frozen):
        assert hashlib.sha256(text.encode("utf-8", "replace")).hexdigest() == row["text_sha256"]


@pytest.mark.parametrize("k", range(len(CORPUS)))
def test_features_equal_the_frozen_values(frozen, k):
    got, want = _frozen_row(CORPUS[k]), frozen[k]
    assert got["n_ids"] == want["n_ids"]
    assert got["ids_counts_sha256"] == want["ids_counts_sha256"]
    np.testing.assert_allclose(got["dense"], want["dense"], rtol=0, atol=1e-9)
    assert F.sparse_counts(CORPUS[k])[0].dtype == np.int64


# ---- the scorer and the ranking against plain references (whatever artefact is shipped) ----

@pytest.fixture(scope="module")
def strategy() -> BalancedStrategy:
    return BalancedStrategy()


def reference_view(router, text: str) -> tuple[np.ndarray, float]:
    """prompt_view written out: a dense TF-IDF row of all 2**18 buckets, one matrix product."""
    a, s = router.artefact, router.artefact.scorer
    ids, counts, dense = F.prompt_features(text)
    row = np.zeros(F.N_BUCKETS)
    row[ids] = (1.0 + np.log(counts)) * s.idf[ids]
    if row.any():
        row /= np.linalg.norm(row)
    out = row @ s.coef_sparse.astype(np.float64) + ((dense - s.dense_mean) / s.dense_std) @ s.coef_dense + s.bias
    out = np.where(np.isfinite(out), out, a.trait_mean)
    k = len(TRAITS)
    factor = math.exp(min(max(out[k], -LENGTH_CLIP), LENGTH_CLIP)) / a.length_norm if out.size > k else 1.0
    return np.concatenate(([1.0], out[:k])), factor


@pytest.mark.parametrize("k", range(len(CORPUS)))
def test_traits_equal_the_reference(strategy, k):
    traits, factor = strategy.router.prompt_view(CORPUS[k])
    want_traits, want_factor = reference_view(strategy.router, CORPUS[k])
    np.testing.assert_allclose(traits, want_traits, rtol=0, atol=1e-9)
    assert factor == pytest.approx(want_factor, rel=1e-9)


def two_table_score(s: LinearScorer, ids, counts, dense_raw):
    """score_features as it was before the one-table gather: idf and coef_sparse read apart."""
    vals = (1.0 + np.log(counts)) * np.take(s.idf, ids)
    norm = float(np.sqrt(vals @ vals))
    if norm > 0:
        vals = vals / norm
    dense = (dense_raw - s.dense_mean) / s.dense_std
    return vals @ np.take(s.coef_sparse, ids, axis=0) + dense @ s.coef_dense + s.bias


@pytest.mark.parametrize("coef_type", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("k", [None, 3])
def test_one_table_gather_scores_bitwise_as_two_tables(coef_type, k):
    rng = np.random.default_rng(5)
    shape = (F.N_BUCKETS,) if k is None else (F.N_BUCKETS, k)
    coef = (rng.normal(size=shape) * 3).astype(coef_type).astype(np.float32 if coef_type != np.float64 else coef_type)
    idf = rng.uniform(0.5, 12, F.N_BUCKETS).astype(np.float16).astype(np.float64)
    if coef_type == np.float64:
        idf[7] = 1e300                       # held by neither float16 nor float32
    dense_shape = (F.N_DENSE,) if k is None else (F.N_DENSE, k)
    s = LinearScorer(idf=idf, coef_sparse=coef, dense_mean=rng.normal(size=F.N_DENSE),
                     dense_std=rng.uniform(0.5, 2, F.N_DENSE), coef_dense=rng.normal(size=dense_shape),
                     bias=rng.normal(size=() if k is None else (k,)), link="identity")
    assert s.bucket_rows.dtype == (np.float64 if coef_type == np.float64 else np.float32)
    for text in CORPUS[::4] + ["x" * 10, "`" * 7]:
        feats = F.prompt_features(text)
        got, want = s.score_features(*feats), two_table_score(s, *feats)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)


def test_scorer_changed_in_place_before_scoring_scores_with_the_change_and_then_locks():
    rng = np.random.default_rng(9)
    s = LinearScorer(idf=np.ones(F.N_BUCKETS), coef_sparse=np.zeros((F.N_BUCKETS, 2), np.float32),
                     dense_mean=np.zeros(F.N_DENSE), dense_std=np.ones(F.N_DENSE),
                     coef_dense=np.zeros((F.N_DENSE, 2)), bias=np.zeros(2), link="identity")
    s.coef_sparse[:, 1] = rng.normal(size=F.N_BUCKETS)      # as length_fit.refit_length does
    feats = F.prompt_features("Prove that 2 + 2 = 4, then explain it.")
    got = s.score_features(*feats)
    assert got[1] != 0.0
    np.testing.assert_array_equal(got, two_table_score(s, *feats))
    with pytest.raises(ValueError):                          # a later change would be a stale score
        s.coef_sparse[0, 0] = 1.0
    with pytest.raises(ValueError):
        s.idf[0] = 2.0


V = Vendor("v", "openai", "http://127.0.0.1:1/v1", api_key="k")
NAMES = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "claude-3-haiku", "gemini-1.5-pro", "gemini-2.0-flash",
         "llama-3.3-70b-versatile", "deepseek-reasoner", "gpt-4.1-nano", "claude-opus-4", "mistral-large",
         "qwen2.5-7b", "claude-1", "gpt-4-0314", "o3-mini", "my-private-model-a", "my-private-model-b",
         "gpt-3.5-turbo", "llama-3-8b", "command-r")


def candidates() -> list[ModelInfo]:
    rng = random.Random(7)
    base = ModelInfo(id="x", provider="v", context_window=10**7, max_output=10**6, price=Price(1, 1),
                     deployments=(Deployment("x", V, "x"),))
    out = []
    for name in NAMES:
        inp = rng.choice((0, 75_000, 150_000, 2_500_000, 3_000_000, 15_000_000))
        out.append(dataclasses.replace(base, id=name, price=Price(inp, inp * rng.choice((1, 4, 5))),
                                       deployments=(Deployment(name, V, name),)))
    return out


def reference_rank(router, text: str, models: list[ModelInfo], prompt_tokens: int, max_tokens: int | None,
                   wtp: float) -> tuple[list[str], list[float], list[float]]:
    """Every candidate's quality and cost one at a time (profiles.py, value.py), sorted by the
    documented keys: best utility, then cheaper, then stronger, then first listed."""
    traits, factor = reference_view(router, text)
    quality, cost = [], []
    for m in models:
        p = router.profile(m.id)
        quality.append(float(p.embedding @ traits))
        out = p.output_tokens * factor
        if max_tokens:
            out = min(out, float(max_tokens))
        cost.append((prompt_tokens * m.price.input_micros_per_mtok + out * m.price.output_micros_per_mtok) / 1e12)
    return [models[i].id for i in reference_order(quality, cost, wtp)], quality, cost


def reference_order(quality, cost, wtp: float) -> list[int]:
    """value.py's documented order, with the index as an explicit last key."""
    v = value_of_quality(wtp)
    if v == 0.0:
        key = lambda i: (cost[i], -quality[i], i)  # noqa: E731
    elif math.isinf(v):
        key = lambda i: (-quality[i], cost[i], i)  # noqa: E731
    else:
        key = lambda i: (-(quality[i] - cost[i] / v), cost[i], -quality[i], i)  # noqa: E731
    return sorted(range(len(quality)), key=key)


def test_value_order_breaks_full_ties_by_the_listed_order():
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 25))
        quality = rng.choice([0.2, 0.5, 0.5 + 1e-12, 0.9], n)
        cost = rng.choice([0.0, 1e-6, 2e-6, 1e-3], n)
        for wtp in (0.0, 0.3, 0.5, 0.8, 1.0):
            assert utility_order(quality, cost, wtp).tolist() == reference_order(quality, cost, wtp)


@pytest.mark.parametrize("k", range(0, len(CORPUS), 3))
def test_ranking_equals_the_reference(strategy, k):
    text, models = CORPUS[k], candidates()
    for j, (wtp, max_tokens) in enumerate([(0.0, None), (0.3, 50), (0.5, None), (0.5, 5000), (0.8, None),
                                           (1.0, 10)]):
        req = validate_body({"model": "auto", "messages": [{"role": "user", "content": text or "-"}],
                             **({"max_tokens": max_tokens} if max_tokens else {})})
        prompt_tokens = len(text) // 4 + j
        ranked, why = strategy.rank(req, models, RouteContext(Health(), wtp, prompt_tokens))
        want_order, quality, cost = reference_rank(strategy.router, text or "-", models, prompt_tokens,
                                                   max_tokens, wtp)
        assert [m.id for m in ranked] == want_order
        best = NAMES.index(want_order[0])
        assert f"chose {want_order[0]} (predicted quality {shown_quality(quality[best])}, est. cost ${cost[best]:.6f}" in why


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    rows = ",\n".join(json.dumps(_frozen_row(t)) for t in CORPUS)
    FIXTURE.write_text('{"note": "features of the corpus of tests/unit/routing/test_decision_unchanged.py",\n'
                       f' "prompts": [\n{rows}\n]}}\n')
    print(f"wrote {FIXTURE} ({len(CORPUS)} prompts)")
