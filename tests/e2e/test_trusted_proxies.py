"""Forwarded headers (`X-Forwarded-Proto`, `client_ip_header`) count only from a TCP peer in
`trusted_proxies` (default: loopback, as uvicorn's forwarded_allow_ips; `*` = any peer). From any
other peer the real transport decides HSTS and the console cookies' Secure flag, and the per-address
auth-failure limit counts the peer's own address. Real gateways over real sockets: the test client
is 127.0.0.1, so a list without loopback makes it an untrusted peer."""
from __future__ import annotations

from typing import Callable

import httpx2
import pytest

from routerone.http.forwarded import TrustedProxies
from routerone.settings import SettingsError, load_settings
from routerone.testing.harness import Gateway

HSTS = "max-age=31536000"
FORWARDED = {"X-Forwarded-Proto": "https"}
UNTRUSTED = [("10.9.9.9",), ("10.0.0.0/8", "::1"), ()]
TRUSTED = [None, ("127.0.0.1",), ("127.0.0.0/8",), ("*",)]        # None: the default


def _gateway(gateway: Callable[..., Gateway], proxies, **overrides) -> Gateway:
    return gateway(**overrides) if proxies is None else gateway(trusted_proxies=proxies, **overrides)


def _https_signs(gw: Gateway) -> tuple[str | None, bool, str | None]:
    """Through the "proxy": the HSTS header of an API answer, whether the console's sign-in cookie is
    Secure, and the HSTS header on that page."""
    key, _ = gw.new_key()
    with httpx2.Client(base_url=gw.url, timeout=30, follow_redirects=False) as http:
        api = http.get("/v1/models", headers={**FORWARDED, "Authorization": f"Bearer {key}"})
        assert api.status_code == 200
        page = http.get("/console/login", headers=FORWARDED)
        assert page.status_code == 200
        [cookie] = [c for c in page.headers.get_list("set-cookie") if c.startswith("ro_console_login=")]
    secure = "secure" in [p.strip().lower() for p in cookie.split(";")]
    return api.headers.get("strict-transport-security"), secure, page.headers.get("strict-transport-security")


@pytest.mark.parametrize("proxies", UNTRUSTED, ids=str)
def test_an_untrusted_peer_saying_https_gets_no_hsts_and_no_secure_cookie(gateway, proxies):
    assert _https_signs(_gateway(gateway, proxies)) == (None, False, None)


@pytest.mark.parametrize("proxies", TRUSTED, ids=str)
def test_a_trusted_proxy_saying_https_gets_hsts_and_a_secure_cookie(gateway, proxies):
    assert _https_signs(_gateway(gateway, proxies)) == (HSTS, True, HSTS)


def _auth_failure_codes(gw: Gateway, forwarded_for: str) -> list[int]:
    with httpx2.Client(timeout=30) as http:
        return [http.get(gw.base_url + "/models", headers={
            "Authorization": f"Bearer sk-bogus-{forwarded_for}-{i:04d}-0123456789abcdef",
            "X-Forwarded-For": f"6.6.6.6, {forwarded_for}"}).status_code for i in range(4)]


def test_an_untrusted_peer_is_limited_by_its_own_address_whatever_it_forwards(gateway):
    gw = gateway(auth_failures_per_ip_per_minute=3, client_ip_header="X-Forwarded-For",
                 trusted_proxies=("10.9.9.9",))
    assert _auth_failure_codes(gw, "10.0.0.1") == [401, 401, 401, 429]
    assert _auth_failure_codes(gw, "10.0.0.2") == [429, 429, 429, 429]   # the same peer: no new budget


def test_a_trusted_proxy_s_forwarded_address_is_the_one_limited(gateway):
    gw = gateway(auth_failures_per_ip_per_minute=3, client_ip_header="X-Forwarded-For",
                 trusted_proxies=("127.0.0.1", "10.0.0.0/8"))
    assert _auth_failure_codes(gw, "10.0.0.1") == [401, 401, 401, 429]
    assert _auth_failure_codes(gw, "10.0.0.2") == [401, 401, 401, 429]


def test_trusted_proxies_are_read_and_checked_at_start():
    assert load_settings(env={}).trusted_proxies == ("127.0.0.0/8", "::1")
    assert load_settings(env={"ROUTERONE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,fd00::/8"}).trusted_proxies \
        == ("10.0.0.0/8", "192.168.1.7", "fd00::/8")
    assert load_settings(env={"ROUTERONE_TRUSTED_PROXIES": "*"}).trusted_proxies == ("*",)
    for bad in ("10.0.0.0/33", "proxy.internal", "10.0.0.1/8/1", "*.example.com"):
        with pytest.raises(SettingsError, match=r"trusted_proxies: '.*' is not an IP address or network"):
            load_settings(env={"ROUTERONE_TRUSTED_PROXIES": f"127.0.0.1,{bad}"})


def test_peer_matching():
    proxies = TrustedProxies(("10.0.0.0/8", "fd00::/8", "192.168.1.7"))
    assert [proxies.trusts(p) for p in ("10.1.2.3", "::ffff:10.1.2.3", "fd00::1", "fd00::1%eth0", "192.168.1.7")] \
        == [True] * 5
    assert [proxies.trusts(p) for p in ("11.0.0.1", "127.0.0.1", "::1", "fe80::1", "192.168.1.8", "", None, "x")] \
        == [False] * 8
    assert TrustedProxies(("*",)).trusts(None) and not TrustedProxies(()).trusts("127.0.0.1")


def test_an_ipv4_mapped_entry_matches_that_peer_however_the_socket_gives_it():
    """`::ffff:10.0.0.5` (how a dual-stack socket's logs show an IPv4 proxy) never matched: the peer
    is compared as IPv4 (10.0.0.5), the entry stayed an IPv6 network."""
    proxies = TrustedProxies(("::ffff:10.0.0.5", "::ffff:192.168.0.0/112"))
    assert [proxies.trusts(p) for p in ("10.0.0.5", "::ffff:10.0.0.5", "192.168.7.1", "::ffff:192.168.7.1")] \
        == [True] * 4
    assert [proxies.trusts(p) for p in ("10.0.0.6", "192.169.0.1", "::1")] == [False] * 3


def test_a_forwarded_address_with_a_port_is_limited_as_that_address(gateway):
    """A proxy that appends `address:port` (IIS ARR, Azure Application Gateway) gave every client
    connection a fresh per-address auth-failure budget: the port was part of the address."""
    gw = gateway(auth_failures_per_ip_per_minute=3, client_ip_header="X-Forwarded-For",
                 trusted_proxies=("127.0.0.1",))
    assert _auth_failure_codes(gw, "10.0.0.1:50001") == [401, 401, 401, 429]
    for same in ("10.0.0.1:50002", "[::ffff:10.0.0.1]:50003", "::ffff:10.0.0.1"):
        assert _auth_failure_codes(gw, same) == [429] * 4, same


def _hsts_with(gw: Gateway, proto_lines: list[str]) -> str | None:
    key, _ = gw.new_key()
    headers = [("Authorization", f"Bearer {key}")] + [("X-Forwarded-Proto", v) for v in proto_lines]
    with httpx2.Client(base_url=gw.url, timeout=30) as http:
        resp = http.get("/v1/models", headers=headers)
    assert resp.status_code == 200
    return resp.headers.get("strict-transport-security")


@pytest.mark.parametrize("lines, hsts", [
    (["https", "http"], None),          # the client's line first, then the one the proxy appended
    (["https, http"], None),            # the same, as one line
    (["http", "https"], HSTS),
    (["http, https"], HSTS),
    (["HTTPS"], HSTS),
    (["https,"], None),                 # the proxy's own entry is empty: no https it vouches for
], ids=str)
def test_the_proto_a_trusted_proxy_appended_decides_not_the_clients(gateway, lines, hsts):
    """X-Forwarded-Proto was read from its first line only: a client behind a trusted proxy that
    appends (rather than replaces) the header could claim https itself. The last entry, the one the
    nearest trusted proxy appended, counts, as for the client's address."""
    assert _hsts_with(gateway(), lines) == hsts
