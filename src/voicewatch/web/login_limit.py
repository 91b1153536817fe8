"""Login rate limiting: after 5 failures from one address, wait a minute.

In memory, one per app (``app.state.login_limiter``), so per server process:
a brute-force attempt against one server is slowed at once; across servers
each keeps its own count.
"""

from __future__ import annotations

import threading
import time


class LoginLimiter:
    def __init__(self, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        self._failures[client] = kept
        return kept

    def allow(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, time.monotonic())) < self.max_failures

    def fail(self, client: str) -> None:
        with self._lock:
            self._recent(client, time.monotonic()).append(time.monotonic())
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                self._failures.pop(next(iter(self._failures)))

    def succeed(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
