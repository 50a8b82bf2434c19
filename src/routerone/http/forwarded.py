"""Whose forwarded headers count: `trusted_proxies`. A front proxy says what the client's connection
was (`X-Forwarded-Proto: https`: HSTS and the console cookies' Secure flag, transport_security.py)
and who the client is (`client_ip_header`: the per-address auth-failure limit, guard.py). Any client
can send those headers too, so they are read only when the TCP peer is a listed address or network
(default: loopback, as uvicorn's `forwarded_allow_ips`; `*`: any peer). From any other peer the
peer's own address and the real transport decide.

    proxies = TrustedProxies(settings.trusted_proxies)   # ValueError naming a bad entry
    proxies.trusts(request.remote)
    forwarded_address("6.6.6.6, 10.0.0.1:5123")          # "10.0.0.1": what the proxy appended
    forwarded_proto(["https", "http"])                   # "http": likewise (header lines in order)

Peers and entries are compared as IPv4 when they are IPv4-mapped (`::ffff:10.0.0.5`, as a
dual-stack socket gives an IPv4 peer; an entry `::ffff:10.0.0.0/104` is 10.0.0.0/8).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["TrustedProxies", "ANY_PEER", "LOOPBACK", "forwarded_address", "forwarded_proto"]

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
                network = ipaddress.ip_network(text, strict=False)     # 10.0.0.1/8 is 10.0.0.0/8
            except (TypeError, ValueError):
                raise ValueError(f"{str(entry)[:80]!r} is not an IP address or network (an address or a "
                                 f"CIDR such as 10.0.0.0/8), or {ANY_PEER} for any peer") from None
            networks.append(_as_ipv4(network))
        self.networks = tuple(dict.fromkeys(networks))

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


_MAPPED = ipaddress.ip_network("::ffff:0:0/96")


def _as_ipv4(network):
    """An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 one it maps (10.0.0.0/8)."""
    if network.version == 6 and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        return ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}")
    return network


def forwarded_address(value: str) -> str:
    """The client's address in a forwarded header (X-Forwarded-For): its rightmost entry (the one
    the trusted proxy appended), without the port some proxies add (`10.0.0.1:5123`,
    `[2001:db8::1]:5123`) and IPv4-mapped as IPv4, so that one client is one address; an entry that
    is no address is kept as it came (its first 64 characters)."""
    entry = value.rsplit(",", 1)[-1].strip()[:64]
    host = entry
    if host.startswith("[") and "]" in host:
        host = host[1:host.index("]")]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return entry
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def forwarded_proto(lines: Iterable[str]) -> str:
    """The scheme in X-Forwarded-Proto's lines (in the order they came): the last entry of the last
    line, lower-case (the one the nearest trusted proxy appended; the earlier ones anyone could have
    sent, as for `forwarded_address`). A proxy that replaces the header gives one entry anyway."""
    last = ""
    for line in lines:
        last = line
    return last.rsplit(",", 1)[-1].strip()[:16].lower()
