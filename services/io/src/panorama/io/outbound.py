"""Outbound HTTP for ``/proxy``: one shared aiohttp session, an allow-list and an SSRF guard.

A URL passes only if its host is on ``PANORAMA_PROXY_ALLOW_HOSTS``. Independently, every address
the connection would go to must be public, unless that address (or a network holding it) is
itself on the list: allow-listing ``example.com`` does not let it resolve to ``10.0.0.5``. The
check runs again inside the connector's resolver, at connect time, so a DNS answer that changes
between the check and the connection (rebinding) is still refused. Redirects are followed by
hand, each hop checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from panorama.core.errors import Problem
from panorama.io.settings import IoSettings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class ProxyRefused(Exception):
    """A URL or an address the allow-list does not permit (answered as 403)."""


def _unmapped(ip: IpAddress) -> IpAddress:
    # ::ffff:127.0.0.1 is loopback too; judge IPv4-mapped IPv6 addresses by their IPv4 half.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return _unmapped(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


@dataclass(frozen=True)
class AllowList:
    names: frozenset[str]
    networks: tuple[IpNetwork, ...]

    @classmethod
    def parse(cls, entries: tuple[str, ...]) -> AllowList:
        names: set[str] = set()
        networks: list[IpNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry.rstrip(".").lower())
        return cls(frozenset(names), tuple(networks))

    def permits_host(self, host: str) -> bool:
        ip = _ip_literal(host)
        if ip is None:
            return host.rstrip(".").lower() in self.names
        return any(ip in net for net in self.networks)

    def permits_address(self, ip: IpAddress) -> bool:
        """Public addresses pass; private, loopback, link-local and reserved ones only if listed."""
        ip = _unmapped(ip)
        return ip.is_global or any(ip in net for net in self.networks)

    def check_url(self, url: str) -> str:
        """The URL's host if the allow-list permits it; :class:`ProxyRefused` otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ProxyRefused(f"scheme {parts.scheme!r} is not allowed; use http or https")
        host = (parts.hostname or "").rstrip(".")
        if not self.permits_host(host):
            raise ProxyRefused(f"host {host!r} is not on the proxy allow-list")
        ip = _ip_literal(host)
        if ip is not None and not self.permits_address(ip):
            raise ProxyRefused(f"address {ip} is private or loopback and not allow-listed")
        return host


class GuardedResolver(AbstractResolver):
    """Resolves like the threaded resolver, then refuses answers the allow-list does not permit."""

    def __init__(self, allow: AllowList) -> None:
        self._allow = allow
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            ip = ipaddress.ip_address(answer["host"])
            if not self._allow.permits_address(ip):
                raise ProxyRefused(f"{host} resolves to {ip}, a private or loopback address that is not allow-listed")
        return answers

    async def close(self) -> None:
        await self._inner.close()


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


class OutboundClient:
    """The one outbound session of a worker; built without I/O, started in the lifespan."""

    def __init__(self, settings: IoSettings) -> None:
        self.allow = AllowList.parse(settings.proxy_allow_list)
        self.timeout = settings.proxy_timeout
        self.max_bytes = settings.proxy_max_bytes
        self.max_redirects = settings.proxy_max_redirects
        self.connections = settings.proxy_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.connections, resolver=GuardedResolver(self.allow), ttl_dns_cache=30)
        # trust_env=False: HTTP(S)_PROXY from the pod's environment must not reroute these calls.
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> dict[str, Any]:
        """GET ``url`` (following permitted redirects); 403, 502 or 504 problems on failure."""
        if self._session is None:
            raise RuntimeError("outbound client used before the lifespan started it")
        hops: list[str] = []
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    self.allow.check_url(url)
                    async with self._session.get(url, allow_redirects=False) as resp:
                        location = resp.headers.get("Location")
                        if resp.status in REDIRECT_STATUSES and location:
                            if len(hops) >= self.max_redirects:
                                raise Problem(502, f"more than {self.max_redirects} redirects", title="Bad Gateway")
                            hops.append(url)
                            url = urljoin(url, location)
                            continue
                        body, truncated = await self._read_capped(resp)
                        return {
                            "url": url,
                            "status": resp.status,
                            "content_type": resp.headers.get("Content-Type"),
                            "body": _decode(body, resp.charset),
                            "truncated": truncated,
                            "redirects": hops,
                        }
        except ProxyRefused as exc:
            raise Problem(403, str(exc), title="Forbidden by the proxy allow-list") from None
        except TimeoutError:
            raise Problem(504, f"{url} did not answer within {self.timeout:g}s", title="Upstream timeout") from None
        except aiohttp.ClientError as exc:
            raise Problem(502, f"{url} could not be fetched: {type(exc).__name__}", title="Bad Gateway") from None

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                return b"".join(chunks)[: self.max_bytes], True
        return b"".join(chunks), False
