"""The egress policy for URLs chosen by others (RELIABILITY B18): what it allows and refuses."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.egress import EgressPolicy, EgressRefused, GuardedTransport, parse_allow

DEFAULT = EgressPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",  # noqa: S104  (an address to refuse, not to bind)
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4 loopback written as IPv6
        "::ffff:10.0.0.1",
    ],
)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert DEFAULT.refusal("partner.example", [address]) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.refusal("partner.example", [address]) is None


def test_one_private_address_among_public_ones_refuses_the_host() -> None:
    reason = DEFAULT.refusal("partner.example", ["8.8.8.8", "10.0.0.5"])
    assert reason is not None and "10.0.0.5" in reason


def test_a_host_that_does_not_resolve_is_refused() -> None:
    assert DEFAULT.refusal("nowhere.example", []) == "nowhere.example does not resolve"


def test_allowed_networks_and_names() -> None:
    policy = parse_allow("10.20.0.0/16, 127.0.0.1  Partner.Internal.")
    assert policy.refusal("a", ["10.20.3.4"]) is None
    assert policy.refusal("a", ["10.21.0.1"]) is not None
    assert policy.refusal("a", ["127.0.0.1"]) is None
    assert policy.refusal("a", ["127.0.0.2"]) is not None
    assert policy.refusal("a", ["::ffff:127.0.0.1"]) is None
    assert policy.refusal("partner.internal", ["192.168.7.7"]) is None
    assert policy.refusal("PARTNER.internal.", ["192.168.7.7"]) is None


def test_multicast_and_unspecified_are_never_allowed() -> None:
    policy = parse_allow("0.0.0.0/0 ::/0 anything.example")
    for address in ("0.0.0.0", "::", "224.0.0.251", "ff02::1"):  # noqa: S104
        assert policy.refusal("anything.example", [address]) is not None


@pytest.mark.parametrize("text", ["not a host!", "-bad.example", "a..b", "x" * 64 + ".example"])
def test_a_bad_allow_list_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a network or host name"):
        parse_allow(text)


@given(st.ip_addresses())
def test_the_default_allows_exactly_the_global_unicast_addresses(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    judged = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        judged = address.ipv4_mapped
    expected = judged.is_global and not judged.is_multicast and not judged.is_unspecified
    assert (DEFAULT.refusal("h", [str(address)]) is None) == expected


def test_the_transport_refuses_before_connecting() -> None:
    with (
        httpx.Client(transport=GuardedTransport(DEFAULT)) as client,
        pytest.raises(EgressRefused, match=r"127\.0\.0\.1 resolves to 127\.0\.0\.1"),
    ):
        client.get("http://127.0.0.1:9/")


def test_the_settings_reject_a_bad_allow_list() -> None:
    from pydantic import ValidationError

    from account.config import Settings

    with pytest.raises(ValidationError, match="not a network or host name"):
        Settings(egress_allow="10.0.0.0/8, bad host!")
    assert Settings(egress_allow="10.0.0.0/8").egress_policy.refusal("h", ["10.9.9.9"]) is None
