"""Upstream status, Retry-After and error codes are untrusted input: parsed defensively."""
from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from routerone.errors import UpstreamRateLimited
from routerone.providers.status import MAX_RETRY_AFTER_S, error_for_status, retry_after_s


@pytest.mark.parametrize("value, expected", [
    ("5", 5.0), ("0.5", 0.5), ("0", 0.0), ("nan", None), ("inf", None), ("-inf", None), ("-3", None),
    ("1e999", None), ("soon", None), ("", None), ("99999999", MAX_RETRY_AFTER_S),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("Wed, 99 Oct 2015 07:28:00 GMT", None),
    ("\u0663\u0660", None), ("\uff13", None), ("3_0", None), ("\u00a03", None),    # float() read these as 30, 3, 30, 3
])
def test_retry_after_is_finite_bounded_or_ignored(value, expected):
    assert retry_after_s({"Retry-After": value}) == expected


def test_retry_after_as_a_future_http_date():
    when = formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_s({"Retry-After": when}) <= 31


def test_retry_after_ms_wins_and_a_bad_one_falls_back():
    assert retry_after_s({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after_s({"retry-after-ms": "nan", "Retry-After": "2"}) == 2.0


@pytest.mark.parametrize("value", ["nan", "inf", "1e999"])
def test_a_429_with_nonsense_retry_after_is_still_a_usable_error(value):
    err = error_for_status(429, "slow down", provider="p", headers={"Retry-After": value})
    assert isinstance(err, UpstreamRateLimited) and err.retry_after_s is None and "Retry-After" not in err.headers


@pytest.mark.parametrize("code, expected", [
    ("context_length_exceeded", "context_length_exceeded"), ("bad\x00code", "upstream_invalid_request"),
    ("x" * 65, "upstream_invalid_request"), ("naïve", "upstream_invalid_request"),
])
def test_upstream_error_codes_passed_on_are_short_plain_ascii(code, expected):
    assert error_for_status(400, "m", provider="p", headers={}, upstream_code=code).code == expected
