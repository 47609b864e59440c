"""Where a node may open HTTP connections to addresses that someone else supplied (RELIABILITY B18).

A partner's API URL (large attachments are fetched from it) and a TMF client's callback URL
are chosen by other people. Without a check, a partner could point them at this node's own
admin port, the cloud metadata service (169.254.169.254) or anything else on the operator's
private network, and make the node fetch or post there for them (server-side request
forgery).

``EgressPolicy`` allows every globally routable address and nothing else, unless the operator
lists more in ``TIX_EGRESS_ALLOW``: networks (``10.20.0.0/16``, ``127.0.0.1``) or exact host
names (``partner.internal``). Multicast and unspecified addresses (``0.0.0.0``, ``::``) are
never allowed. An IPv4 address written as IPv6 (``::ffff:127.0.0.1``) is judged as the IPv4
address it is.

``GuardedTransport`` / ``AsyncGuardedTransport`` apply the policy at connection time: they
resolve the host once, refuse the request unless **every** address it resolves to is allowed,
and then connect to the address they checked (the URL's host is replaced by it; the ``Host``
header and, for HTTPS, the TLS server name stay the original host name), so a DNS answer that
changes between the check and the connect (DNS rebinding) cannot move the request elsewhere.
Redirects are the caller's business: every client built here has ``follow_redirects=False``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

__all__ = [
    "AsyncGuardedTransport",
    "EgressPolicy",
    "EgressRefused",
    "GuardedTransport",
    "parse_allow",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(httpx.TransportError):
    """The destination is not allowed by the node's egress policy (no connection was made)."""


def parse_allow(text: str) -> EgressPolicy:
    """``TIX_EGRESS_ALLOW``: comma- or space-separated networks and host names; ``ValueError``."""
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for raw in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(raw.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = raw.lower().rstrip(".")
        labels = name.split(".")
        if not name or len(name) > 253 or not all(_is_label(label) for label in labels):
            raise ValueError(f"not a network or host name: {raw!r}")
        hosts.add(name)
    return EgressPolicy(networks=tuple(networks), hosts=frozenset(hosts))


def _is_label(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
    )


@dataclass(frozen=True)
class EgressPolicy:
    """Public addresses, plus the networks and host names the operator allowed."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    def allows_address(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_multicast or address.is_unspecified:
            return False
        if any(address in network for network in self.networks):
            return True
        return address.is_global

    def refusal(self, host: str, addresses: Iterable[str]) -> str | None:
        """Why connecting to ``host`` (resolved to ``addresses``) is refused, or None."""
        name = host.lower().rstrip(".")
        listed = name in self.hosts
        resolved = list(addresses)
        if not resolved:
            return f"{host} does not resolve"
        for text in resolved:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if address.is_multicast or address.is_unspecified:
                return f"{host} resolves to {address}, which is never allowed"
            if not listed and not self.allows_address(address):
                return (
                    f"{host} resolves to {address}, which is not a public address "
                    "(allow it with TIX_EGRESS_ALLOW)"
                )
        return None


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[str]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def _pin(request: httpx.Request, policy: EgressPolicy, addresses: list[str]) -> None:
    """Refuse the request, or point it at the first checked address (Host and SNI unchanged)."""
    host = request.url.host
    reason = policy.refusal(host, addresses)
    if reason is not None:
        raise EgressRefused(f"egress refused: {reason}", request=request)
    if _literal(host) is None:
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = request.url.copy_with(host=addresses[0])


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


class GuardedTransport(httpx.HTTPTransport):
    """An ``httpx.HTTPTransport`` that connects only where ``policy`` allows."""

    def __init__(self, policy: EgressPolicy, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _pin(request, self.policy, _resolve(request.url.host, _port(request.url)))
        return super().handle_request(request)


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """An ``httpx.AsyncHTTPTransport`` that connects only where ``policy`` allows."""

    def __init__(self, policy: EgressPolicy, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        addresses = await asyncio.to_thread(_resolve, request.url.host, _port(request.url))
        _pin(request, self.policy, addresses)
        return await super().handle_async_request(request)
