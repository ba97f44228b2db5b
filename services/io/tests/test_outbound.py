"""The proxy's SSRF guard: allow-list parsing and which addresses count as private."""

from __future__ import annotations

import ipaddress

import pytest

from panorama.io.outbound import AllowList, ProxyRefused


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fd00::1",
                                     "::ffff:127.0.0.1", "100.64.0.1", "0.0.0.0"])  # fmt: skip
def test_private_loopback_and_link_local_addresses_are_refused(address: str) -> None:
    assert not AllowList.parse(("example.org",)).permits_address(ipaddress.ip_address(address))


def test_public_addresses_pass() -> None:
    allow = AllowList.parse(())
    assert allow.permits_address(ipaddress.ip_address("93.184.216.34"))
    assert allow.permits_address(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))


def test_listed_address_or_network_permits_private_addresses() -> None:
    allow = AllowList.parse(("127.0.0.1", "10.0.0.0/8"))
    assert allow.permits_address(ipaddress.ip_address("127.0.0.1"))
    assert allow.permits_address(ipaddress.ip_address("10.9.9.9"))
    assert not allow.permits_address(ipaddress.ip_address("127.0.0.2"))


def test_check_url_refuses_unlisted_hosts_and_other_schemes() -> None:
    allow = AllowList.parse(("Example.org",))
    assert allow.check_url("https://example.org./path") == "example.org"
    with pytest.raises(ProxyRefused, match="allow-list"):
        allow.check_url("http://evil.example/")
    with pytest.raises(ProxyRefused, match="scheme"):
        allow.check_url("file:///etc/passwd")
    with pytest.raises(ProxyRefused):
        allow.check_url("http://[::ffff:127.0.0.1]/")
