"""Fetching web pages for indexing without reaching inside the network (SSRF).

Every hop of a fetch — the pasted URL and each redirect — must be http(s) and its host must
resolve only to public addresses, and the connection goes to exactly the address that was
checked (pinned, so a DNS answer that changes between check and connect cannot slip through).
Operators allow internal hosts by name (``RAG_FETCH_ALLOW_HOSTS``). Each fetch has one total
deadline and a size cap, so a slow-drip server cannot hold the index lock.

httpx does the HTTP; this module only decides where it may connect.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urljoin

import httpx

from rag.ingest.formats import LoadError

USER_AGENT = "policy-desk-indexer/1.0"


def is_public(address: str) -> bool:
    """Not loopback, private, link-local, multicast, reserved or unspecified (IPv4-mapped too)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``allowed`` holds host names, or ``*.example.org`` for a domain and its subdomains."""
    host = host.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower().strip()
        if pattern.startswith("*.") and (host == pattern[2:] or host.endswith(pattern[1:])):
            return True
        if host == pattern:
            return True
    return False


class PinnedTransport(httpx.HTTPTransport):
    """Connects to one checked IP address while speaking to the URL's host (Host header, TLS SNI
    and certificate check all use the name)."""

    def __init__(self, address: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.address = address

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        request.url = request.url.copy_with(host=self.address)
        request.headers["Host"] = host if request.url.port is None else f"{host}:{request.url.port}"
        request.extensions = {**request.extensions, "sni_hostname": host}
        return super().handle_request(request)


class Fetcher:
    """``fetch(url) -> (body, content type)`` for ``rag.ingest.load.load_sources``; raises ``LoadError``."""

    def __init__(self, *, allow_hosts: tuple[str, ...] = (), timeout_s: float = 30.0,
                 max_bytes: int = 20 * 1024 * 1024, max_redirects: int = 5) -> None:
        self.allow_hosts = allow_hosts
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects

    @classmethod
    def from_settings(cls, settings) -> Fetcher:
        hosts = tuple(h.strip() for h in settings.fetch_allow_hosts.split(",") if h.strip())
        return cls(allow_hosts=hosts, timeout_s=settings.fetch_timeout_s,
                   max_bytes=settings.fetch_max_mb * 1024 * 1024)

    def __call__(self, url: str, deadline: float | None = None) -> tuple[bytes, str]:
        """``deadline`` (``time.monotonic()`` seconds): a source's own, earlier end (a feed's pages
        share one); the fetch never runs past it nor past its own ``timeout_s``."""
        deadline = min(time.monotonic() + self.timeout_s, deadline or float("inf"))
        for _ in range(self.max_redirects + 1):
            try:
                target = httpx.URL(url)
            except (httpx.InvalidURL, TypeError) as exc:
                raise LoadError(f"not a valid URL: {url[:200]}") from exc
            try:
                with httpx.Client(transport=self._transport_for(target), trust_env=False, timeout=self._timeout(deadline),
                                  headers={"User-Agent": USER_AGENT}) as client, \
                        client.stream("GET", target) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(str(target), response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise LoadError(f"HTTP {response.status_code} {response.reason_phrase}")
                    return self._read(response, deadline), response.headers.get("content-type", "")
            except httpx.TimeoutException as exc:
                raise LoadError(f"no complete answer within {self.timeout_s:g} s") from exc
            except httpx.HTTPError as exc:
                raise LoadError(f"cannot fetch: {type(exc).__name__}: {str(exc)[:200]}") from exc
        raise LoadError(f"more than {self.max_redirects} redirects")

    def _transport_for(self, url: httpx.URL) -> httpx.HTTPTransport:
        if url.scheme not in ("http", "https"):
            raise LoadError(f"only http and https URLs can be indexed (a redirect led to {url.scheme}:)")
        if not url.host:
            raise LoadError("the URL has no host")
        if host_allowed(url.host, self.allow_hosts):
            return httpx.HTTPTransport()
        try:
            infos = socket.getaddrinfo(url.host, url.port or (443 if url.scheme == "https" else 80),
                                       type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise LoadError(f"cannot resolve {url.host}") from exc
        addresses = sorted({info[4][0] for info in infos})
        internal = [a for a in addresses if not is_public(a)]
        if internal or not addresses:
            raise LoadError(f"{url.host} is an internal address ({', '.join(internal[:3])}); only public hosts are "
                            f"fetched unless RAG_FETCH_ALLOW_HOSTS names it")
        return PinnedTransport(addresses[0])

    def _timeout(self, deadline: float) -> httpx.Timeout:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LoadError(f"no complete answer within {self.timeout_s:g} s")
        return httpx.Timeout(min(remaining, 10.0))

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise LoadError(f"page larger than {self.max_bytes / 1e6:g} MB")
        body = bytearray()
        for piece in response.iter_bytes():
            body += piece
            if len(body) > self.max_bytes:
                raise LoadError(f"page larger than {self.max_bytes / 1e6:g} MB")
            if time.monotonic() > deadline:
                raise LoadError(f"no complete answer within {self.timeout_s:g} s")
        return bytes(body)
