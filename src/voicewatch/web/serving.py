"""How uvicorn runs our app: which proxies it believes, and how long a request head may take.

Every place that starts a server (``voicewatch serve``, ``voicewatch demo``, the
tests' live server) passes ``server_options(settings)`` to uvicorn, so they all
behave the same:

- uvicorn's own default trusts ``X-Forwarded-For`` from loopback, which lets a
  client on the same machine (or behind a local proxy it does not control)
  choose the address the login throttle counts. Here forwarding headers are
  believed only from ``VOICEWATCH_TRUSTED_PROXIES`` (default: nobody).
- uvicorn times out idle keep-alive connections but not a request head sent a
  byte at a time; ``HeadTimeout`` (mixed into uvicorn's httptools or h11
  protocol) closes a connection whose head is not complete within
  ``VOICEWATCH_HEADER_TIMEOUT_S``. Bodies are timed by
  ``body_limit.BodyLimit``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from voicewatch.config import Settings


class HeadTimeout:
    """Mixed into uvicorn's protocols: close connections that trickle a request head.

    Both protocols make a new ``cycle`` when a request head is complete, so a
    timer armed while idle (no cycle, or the last one answered) and still
    seeing the same cycle when it fires means the head never arrived.
    """

    head_timeout_s: float = 10.0
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    logger: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._armed_cycle: object = None

    def _arm(self) -> None:
        if self._head_timer is None:
            self._armed_cycle = self.cycle
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._arm()  # a new request head starts arriving
        super().data_received(data)  # type: ignore[misc]
        if self._head_timer is not None and self.cycle is not self._armed_cycle:
            self._disarm()  # the head was complete: a new request cycle began

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is self._armed_cycle and not self.transport.is_closing():
            self.logger.info("closing a connection whose request head took too long")
            self.transport.close()


class HeadTimeoutH11Protocol(HeadTimeout, H11Protocol):
    """uvicorn's pure-Python h11 protocol, with the head timeout."""


def _fastest_base() -> type[asyncio.Protocol]:
    """httptools' protocol when installed (uvicorn's own "auto" choice), else h11's."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return HeadTimeoutH11Protocol

    class HeadTimeoutHttpToolsProtocol(HeadTimeout, HttpToolsProtocol):
        """uvicorn's httptools protocol, with the head timeout."""

    return HeadTimeoutHttpToolsProtocol


def protocol_for(settings: Settings, *, base: type[asyncio.Protocol] | None = None) -> type:
    """A protocol class carrying this server's head timeout."""
    return type(
        "VoicewatchHttpProtocol",
        (base or _fastest_base(),),
        {"head_timeout_s": float(settings.header_timeout_s)},
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``."""
    proxies = settings.proxy_list()
    return {
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": ",".join(proxies) if proxies else "",
        "http": protocol_for(settings),
        "timeout_keep_alive": 5,
        "server_header": False,
    }
