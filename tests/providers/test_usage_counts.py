"""Token counts an upstream reports are kept only when plausible: an int (a whole float too) in
[0, MAX_REPORTED_TOKENS]. Anything else (a negative number, more than 1e9, a string, null, a
fraction, a bool) is marked unreadable where usage is parsed, for every wire protocol, so the chat
service and the stream relay replace it by Router One's own count (Usage.filled_from). A negative
count used to be taken as 0 by billing: text relayed for nothing."""
from __future__ import annotations

import pytest

from routerone.providers.anthropic_response import usage_from_anthropic
from routerone.providers.gemini_response import usage_from as usage_from_gemini
from routerone.wire.types import MAX_REPORTED_TOKENS, Usage, plausible_count

IMPLAUSIBLE = [-1, -50, MAX_REPORTED_TOKENS + 1, 3_000_000_000, 2 ** 70, "12", None, 2.5, True, [1]]


@pytest.mark.parametrize("value", [0, 1, 12, MAX_REPORTED_TOKENS, 7.0])
def test_plausible_counts(value) -> None:
    assert plausible_count(value)


@pytest.mark.parametrize("value", IMPLAUSIBLE + [-3.0, 1e300])
def test_implausible_counts(value) -> None:
    assert not plausible_count(value)


@pytest.mark.parametrize("value", IMPLAUSIBLE)
def test_openai_usage_marks_an_implausible_count_unreadable(value) -> None:
    u = Usage.from_openai({"prompt_tokens": 7, "completion_tokens": value})
    assert u is not None and u.unreadable == ("completion_tokens",)
    assert (u.prompt_tokens, u.completion_tokens) == (7, 0)
    filled = u.filled_from(Usage(30, 41))
    assert (filled.prompt_tokens, filled.completion_tokens, filled.unreadable) == (7, 41, ("completion_tokens",))


@pytest.mark.parametrize("value", [v for v in IMPLAUSIBLE if not isinstance(v, float)])
def test_anthropic_usage_marks_an_implausible_count_unreadable(value) -> None:
    u = usage_from_anthropic({"input_tokens": value, "output_tokens": 6})
    assert u is not None and u.unreadable == ("prompt_tokens",)
    assert u.completion_tokens == 6
    assert usage_from_anthropic({"input_tokens": 12, "output_tokens": value}).unreadable == ("completion_tokens",)


@pytest.mark.parametrize("value", [v for v in IMPLAUSIBLE if not isinstance(v, float)])
def test_gemini_usage_marks_an_implausible_count_unreadable(value) -> None:
    u = usage_from_gemini({"promptTokenCount": 12, "candidatesTokenCount": value})
    assert u is not None and u.unreadable == ("completion_tokens",) and u.prompt_tokens == 12


def test_plausible_counts_are_kept_and_nothing_is_unreadable() -> None:
    assert Usage.from_openai({"prompt_tokens": 0, "completion_tokens": MAX_REPORTED_TOKENS}).unreadable == ()
    assert usage_from_anthropic({"input_tokens": 0, "output_tokens": 5}).unreadable == ()
    assert usage_from_gemini({"promptTokenCount": 3, "candidatesTokenCount": 0}).unreadable == ()


@pytest.mark.parametrize("details, reasoning", [
    ({"reasoning_tokens": 500}, 40), ({"reasoning_tokens": 12}, 12), ({"reasoning_tokens": -5}, 0),
    ({"reasoning_tokens": "12"}, 0), ({"reasoning_tokens": 1e30}, 0), ({"reasoning_tokens": None}, 0),
    ([12], 0), ("12", 0), (None, 0)])
def test_openai_reasoning_tokens_are_a_part_of_the_completion_tokens_never_more(details, reasoning) -> None:
    """As Anthropic's thinking tokens (usage_from_anthropic): 500 reasoning tokens of 40 completion
    tokens were relayed to the client as they came, from a reply and from a stream's usage chunk."""
    import orjson
    from routerone.providers.openai_compat import OpenAICompatStream
    raw = {"prompt_tokens": 3, "completion_tokens": 40, "completion_tokens_details": details}
    u = Usage.from_openai(raw)
    assert (u.completion_tokens, u.reasoning_tokens) == (40, reasoning)
    assert u.to_openai().get("completion_tokens_details", {}).get("reasoning_tokens", 0) == reasoning
    stream = OpenAICompatStream()
    stream.feed_data(orjson.dumps({"choices": [], "usage": raw}))
    assert (stream.usage.completion_tokens, stream.usage.reasoning_tokens) == (40, reasoning)


def test_openai_reasoning_tokens_are_not_bounded_by_an_unreadable_completion_count() -> None:
    """An unreadable completion count is 0 until Router One counts it: the reasoning tokens are
    then bounded by that count, not dropped."""
    u = Usage.from_openai({"prompt_tokens": 3, "completion_tokens": "40",
                           "completion_tokens_details": {"reasoning_tokens": 30}})
    assert u.reasoning_tokens == 30
    filled = u.filled_from(Usage(3, 25))
    assert (filled.completion_tokens, filled.reasoning_tokens) == (25, 25)


@pytest.mark.parametrize("details, cached, written", [
    ({"cached_tokens": 500}, 40, 0), ({"cached_tokens": 12}, 12, 0), ({"cached_tokens": -5}, 0, 0),
    ({"cached_tokens": "12"}, 0, 0), ({"cached_tokens": 1e30}, 0, 0),
    ({"cached_tokens": 30, "cache_write_tokens": 500}, 30, 10), ({"cache_write_tokens": 50}, 0, 40),
    ([12], 0, 0), (None, 0, 0)])
def test_openai_cached_tokens_are_a_part_of_the_prompt_tokens_never_more(details, cached, written) -> None:
    """As reasoning tokens of the completion: 500 cached tokens of a 40-token prompt were relayed to
    the client and stored as they came (billing clamped them), from a reply and a stream's usage."""
    import orjson
    from routerone.providers.openai_compat import OpenAICompatStream
    raw = {"prompt_tokens": 40, "completion_tokens": 3, "prompt_tokens_details": details}
    u = Usage.from_openai(raw)
    assert (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens) == (40, cached, written)
    reported = u.to_openai().get("prompt_tokens_details", {})
    assert (reported.get("cached_tokens", 0), reported.get("cache_write_tokens", 0)) == (cached, written)
    stream = OpenAICompatStream()
    stream.feed_data(orjson.dumps({"choices": [], "usage": raw}))
    assert (stream.usage.cached_tokens, stream.usage.cache_write_tokens) == (cached, written)


def test_openai_cached_tokens_are_not_bounded_by_an_unreadable_prompt_count() -> None:
    u = Usage.from_openai({"prompt_tokens": None, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 30}})
    assert u.cached_tokens == 30
    filled = u.filled_from(Usage(25, 3))
    assert (filled.prompt_tokens, filled.cached_tokens) == (25, 25)


@pytest.mark.parametrize("value", [v for v in IMPLAUSIBLE if not isinstance(v, float)])
def test_gemini_implausible_thoughts_are_counted_by_router_one_and_never_bill_less(value) -> None:
    """thoughtsTokenCount is a part of the completion Gemini bills: one that is not a plausible
    count was taken as 0, unflagged (the thinking not billed). The completion count is unreadable
    now, as for any other implausible count: Router One counts what was relayed (the thoughts
    included), flagged, and never less than the candidates' own readable count."""
    u = usage_from_gemini({"promptTokenCount": 12, "candidatesTokenCount": 30, "thoughtsTokenCount": value})
    assert u is not None and u.unreadable == ("completion_tokens",) and u.prompt_tokens == 12
    filled = u.filled_from(Usage(12, 500))            # the thoughts were relayed: counted
    assert (filled.completion_tokens, filled.reasoning_tokens) == (500, 0)
    assert u.filled_from(Usage(12, 10)).completion_tokens == 30    # hidden thoughts: the candidates at least


@pytest.mark.parametrize("value", [v for v in IMPLAUSIBLE if not isinstance(v, float)])
def test_gemini_implausible_tool_use_prompt_count_is_counted_by_router_one(value) -> None:
    u = usage_from_gemini({"promptTokenCount": 12, "toolUsePromptTokenCount": value, "candidatesTokenCount": 3})
    assert u is not None and u.unreadable == ("prompt_tokens",)
    assert u.filled_from(Usage(40, 3)).prompt_tokens == 40 and u.filled_from(Usage(5, 3)).prompt_tokens == 12


def test_a_flagged_gemini_usage_is_billed_on_router_ones_count() -> None:
    from routerone.services.billing import sane_usage
    u = usage_from_gemini({"promptTokenCount": 12, "candidatesTokenCount": 30, "thoughtsTokenCount": 10**30})
    fixed, problems = sane_usage(u.filled_from(Usage(12, 500)))
    assert problems == ["completion_tokens unreadable (counted by Router One)"] and fixed.completion_tokens == 500
