"""Whose forwarded headers count: `trusted_proxies`. A front proxy says what the client's connection
was (`X-Forwarded-Proto: https`: HSTS and the console cookies' Secure flag, transport_security.py)
and who the client is (`client_ip_header`: the per-address auth-failure limit, guard.py). Any client
can send those headers too, so they are read only when the TCP peer is a listed address or network
(default: loopback, as uvicorn's `forwarded_allow_ips`; `*`: any peer). From any other peer the
peer's own address and the real transport decide.

    proxies = TrustedProxies(settings.trusted_proxies)   # ValueError naming a bad entry
    proxies.trusts(request.remote)
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "ANY_PEER", "LOOPBACK"]

ANY_PEER = "*"
LOOPBACK = ("127.0.0.0/8", "::1")      # the setting's default


class TrustedProxies:
    def __init__(self, entries: Iterable[str]) -> None:
        networks = []
        self.any_peer = False
        for entry in entries:
            text = entry.strip() if isinstance(entry, str) else entry
            if text == ANY_PEER:
                self.any_peer = True
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))     # 10.0.0.1/8 is 10.0.0.0/8
            except (TypeError, ValueError):
                raise ValueError(f"{str(entry)[:80]!r} is not an IP address or network (an address or a "
                                 f"CIDR such as 10.0.0.0/8), or {ANY_PEER} for any peer") from None
        self.networks = tuple(networks)

    def trusts(self, peer: str | None) -> bool:
        """Whether `peer` (a TCP peer's address as aiohttp gives it) is a trusted proxy."""
        if self.any_peer:
            return True
        if not peer:                   # no TCP peer (a Unix socket): nothing to match
            return False
        try:
            address = ipaddress.ip_address(peer.partition("%")[0])          # fe80::1%eth0: no zone
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:      # ::ffff:10.0.0.1 on a dual-stack socket
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
