"""Per-client limits for the web app: backoff after wrong passwords, rate limits on writes.

Clients are identified by ``client_key`` of their address: the connecting address, or behind a
proxy the operator trusts (``RAG_TRUSTED_PROXIES``) the address it forwards (``rag.web.guard``).
State is per process and bounded: the oldest clients are forgotten first.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_CLIENTS = 10_000


def client_key(address: str) -> str:
    """What limits count against: an IPv4 address as is, an IPv6 client by its /64 (one subscriber
    is usually handed a whole /64, so counting single addresses would give it 2^64 identities)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"  # never an invented name: everything unparseable shares one identity
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LimitExceeded(Exception):
    pass


class _Bounded(OrderedDict):
    def touch(self, key, default):
        value = self.pop(key, None) or default()
        self[key] = value
        while len(self) > MAX_CLIENTS:
            self.popitem(last=False)
        return value


class LoginThrottle:
    """The first ``free`` wrong passwords from a client cost nothing; after that each try must wait
    ``base_s`` × 2^(failures − free) seconds (at most ``max_wait_s``) after the last failure, and a
    try made sooner is refused without checking the password. Failures are logged, passwords never."""

    def __init__(self, free: int = 5, base_s: float = 2.0, max_wait_s: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.base_s, self.max_wait_s, self.clock = free, base_s, max_wait_s, clock
        self._failures: _Bounded = _Bounded()  # client -> [count, time of the last failure]
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before its next try (0 = may try now)."""
        with self._lock:
            count, last = self._failures.get(client, (0, 0.0))
        if count < self.free:
            return 0.0
        wait = min(self.max_wait_s, self.base_s * 2 ** (count - self.free))
        return max(0.0, last + wait - self.clock())

    def check(self, client: str) -> None:
        if (wait := self.wait_s(client)) > 0:
            raise LimitExceeded(f"too many wrong passwords; try again in {wait:.0f} s")

    def failed(self, client: str, role: str) -> None:
        with self._lock:
            entry = self._failures.touch(client, lambda: [0, 0.0])
            entry[0] += 1
            entry[1] = self.clock()
            count = entry[0]
        log.warning("wrong %s password from %s (%d in a row)", role, client, count)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class RateLimit:
    """At most ``limit`` actions per client in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.what, self.clock = limit, window_s, what, clock
        self._times: _Bounded = _Bounded()
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            times = self._times.touch(client, deque)
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) >= self.limit:
                raise LimitExceeded(f"too many {self.what}; try again in {times[0] + self.window_s - now:.0f} s")
            times.append(now)
