"""Login throttling: exponential back-off per account and per client address.

Each key (an address, an account, or an account on a known device) may fail
a few times for free; after that every further failure doubles the wait
before the next attempt is even checked (1 s, 2 s, 4 s, ... up to 15 min).
While a key waits, every attempt is answered 429 with ``Retry-After``, the
right password too, so guessing gains nothing. It is a back-off, never a hard
lock: once the wait is over the owner's correct password signs them in, and
the failures are forgotten after an hour of quiet.

- The address is the socket's peer: forwarding headers only count when the
  operator lists the proxy in ``VOICEWATCH_TRUSTED_PROXIES`` (``serving.py``),
  so rotating ``X-Forwarded-For`` changes nothing.
- The account key holds across addresses, so a botnet spraying one account
  meets the same back-off.
- A browser that signed in to an account before carries a signed *known
  device* cookie for it. Its attempts at that account are counted on their own
  key, not the address's nor the account's: someone guessing from a shared
  office address (or at the account from anywhere) cannot lock its owner out.

In memory, one per app (``app.state.login_limiter``), so per server process.
Time is a parameter (``clock``, epoch ms) so tests never sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from voicewatch.clock import now_ms

#: failures allowed before the back-off starts
FREE_PER_ACCOUNT = 5
FREE_PER_ADDRESS = 10
FREE_PER_DEVICE = 5
BASE_DELAY_MS = 1_000
MAX_DELAY_MS = 15 * 60_000
FORGET_AFTER_MS = 60 * 60_000
MAX_KEYS = 50_000  # bounded memory under a spray of addresses or names


@dataclass
class _Record:
    failures: int
    last_ms: int


class LoginLimiter:
    def __init__(
        self,
        *,
        per_account: int = FREE_PER_ACCOUNT,
        per_address: int = FREE_PER_ADDRESS,
        per_device: int = FREE_PER_DEVICE,
        base_delay_ms: int = BASE_DELAY_MS,
        max_delay_ms: int = MAX_DELAY_MS,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.free = {"addr": per_address, "acct": per_account, "device": per_device}
        self.base_delay_ms = base_delay_ms
        self.max_delay_ms = max_delay_ms
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(address: str, account: str, known_device: bool) -> list[str]:
        """The keys an attempt is counted on."""
        account = account.strip().lower()
        if known_device:
            return [f"device:{account}"]
        return [f"addr:{address}", f"acct:{account}"]

    def _wait(self, key: str, now: int) -> int:
        record = self._records.get(key)
        if record is None:
            return 0
        if now - record.last_ms > FORGET_AFTER_MS:
            del self._records[key]
            return 0
        extra = record.failures - self.free[key.partition(":")[0]]
        if extra < 0:
            return 0
        delay = min(self.max_delay_ms, self.base_delay_ms * (2 ** min(extra, 40)))
        return max(0, record.last_ms + delay - now)

    def wait_ms(self, keys: list[str]) -> int:
        """How long (ms) before an attempt on ``keys`` is checked; 0 = now."""
        with self._lock:
            now = self.clock()
            return max((self._wait(k, now) for k in keys), default=0)

    def fail(self, keys: list[str]) -> None:
        with self._lock:
            now = self.clock()
            for key in keys:
                record = self._records.get(key)
                if record is None or now - record.last_ms > FORGET_AFTER_MS:
                    if len(self._records) >= MAX_KEYS:
                        self._records.pop(next(iter(self._records)))
                    self._records[key] = _Record(1, now)
                else:
                    record.failures += 1
                    record.last_ms = now

    def succeed(self, keys: list[str]) -> None:
        """A correct password clears its account (and device) key, never the address's.

        Keeping the address's count means one valid account cannot be used
        to reset the throttle between guesses at others.
        """
        with self._lock:
            for key in keys:
                if not key.startswith("addr:"):
                    self._records.pop(key, None)
