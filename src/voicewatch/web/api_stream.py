"""``GET /api/v1/stream``: server-sent events of new pipeline events and alert changes.

Events are written by worker processes, so the stream reads the database:
one poller task per web process (``LiveHub``) asks every half second for the
events stored after the last row id it saw (a bounded primary-key range) and
every second for the active alerts, whose differences from the last look are
the alert changes (raised, escalated, acknowledged, resolved). Alert changes
made in this process (``notify.STREAM``) arrive without waiting for the poll;
both paths go through the same comparison, so a change is sent once.

The poller fans each message out to one ``asyncio.Queue`` per connected
client, starts with the first client and stops when the last one leaves. All
database work runs in the thread pool, never on the event loop.

Messages (``data:`` lines of JSON):
``{"type": "event", "event": {...}}`` — the event as the API shows it, plus
``id`` (row id) and ``kind`` (success / failure / warning / info);
``{"type": "alert", "change": "raised"|"escalated"|"acknowledged"|"resolved"|"sync",
"alert": {...} | null, "active_count": n}`` — "sync" is sent once on connect.
A comment line (``: ping``) every 15 s keeps proxies from closing the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine

from voicewatch import alerts
from voicewatch.alerts import notify
from voicewatch.auth import Principal
from voicewatch.dashboard import stream as reads
from voicewatch.web.deps import authenticated, still_signed_in
from voicewatch.web.errors import ApiError
from voicewatch.web.responses import COMMON_ERRORS

log = logging.getLogger("voicewatch.web.stream")

router = APIRouter(prefix="/api/v1", tags=["stream"])

EVENT_POLL_S = 0.5
ALERT_POLL_S = 1.0
HEARTBEAT_S = 15.0
EVENT_BATCH = 500
#: How long a skipped row id (a transaction that committed out of id order, on
#: PostgreSQL) is looked for again before it is taken for a rolled-back insert.
GAP_WAIT_S = 5.0
MAX_GAPS = 2000
CLIENT_QUEUE = 2000
_RANK = {"info": 0, "warning": 1, "critical": 2}


class LiveHub:
    """One poller shared by every stream client of an app, fanning out to queues."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self.active_count = 0
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._last_id = 0
        self._gaps: dict[int, float] = {}
        self._known: dict[int, dict[str, Any]] = {}
        self._resolved: deque[int] = deque(maxlen=500)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def join(self) -> asyncio.Queue[dict[str, Any]]:
        """A new client queue; starts the poller and waits until it has its bearings,
        so that everything stored after this returns is delivered."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=CLIENT_QUEUE)
        self.clients.add(q)
        if not self.running:
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._ready), name="voicewatch-live-hub")
        assert self._ready is not None
        ready = asyncio.ensure_future(self._ready.wait())
        task = self._task
        assert task is not None
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():  # the poller could not start (database down)
            self.clients.discard(q)
            task.result()
        return q

    def leave(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self.clients.discard(q)
        if not self.clients and self._task is not None:
            self._task.cancel()
            self._task = None

    def _broadcast(self, message: dict[str, Any]) -> None:
        for q in list(self.clients):
            while True:
                try:
                    q.put_nowait(message)
                    break
                except asyncio.QueueFull:  # a stalled reader loses its oldest message
                    with contextlib.suppress(asyncio.QueueEmpty):
                        q.get_nowait()

    # --- the poller ---------------------------------------------------------------------

    async def _run(self, ready: asyncio.Event) -> None:
        inbox = notify.subscribe()
        try:
            self._last_id = await run_in_threadpool(reads.latest_event_id, self.engine)
            self._gaps.clear()
            state = await run_in_threadpool(reads.alerts_state, self.engine)
            self._known = {a["id"]: a for a in state["active"]}
            self.active_count = len(self._known)
            ready.set()
            next_alerts = time.monotonic() + ALERT_POLL_S
            while self.clients:
                try:
                    self._drain_inbox(inbox)
                    await self._poll_events()
                    if time.monotonic() >= next_alerts:
                        await self._poll_alerts()
                        next_alerts = time.monotonic() + ALERT_POLL_S
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database is away: keep trying, quietly
                    log.warning("live stream poll failed: %s", str(exc).splitlines()[0][:200])
                    await asyncio.sleep(2.0)
                await asyncio.sleep(EVENT_POLL_S)
        finally:
            notify.unsubscribe(inbox)

    async def _poll_events(self) -> None:
        found = await run_in_threadpool(reads.events_after, self.engine, self._last_id, EVENT_BATCH)
        now = time.monotonic()
        if self._gaps:
            expired = [i for i, since in self._gaps.items() if now - since > GAP_WAIT_S]
            for i in expired:
                del self._gaps[i]
            if self._gaps:
                late = await run_in_threadpool(reads.events_by_ids, self.engine, list(self._gaps))
                for event in late:
                    self._gaps.pop(event["id"], None)
                    self._broadcast({"type": "event", "event": event})
        expected = self._last_id + 1
        for event in found:
            for missing in range(expected, min(event["id"], expected + MAX_GAPS)):
                if len(self._gaps) < MAX_GAPS:
                    self._gaps[missing] = now
            expected = event["id"] + 1
            self._last_id = event["id"]
            self._broadcast({"type": "event", "event": event})

    def _drain_inbox(self, inbox: queue.Queue[dict[str, Any]]) -> None:
        while True:
            try:
                message = inbox.get_nowait()
            except queue.Empty:
                return
            alert = message.get("alert")
            if message.get("type") == "alert" and isinstance(alert, dict) and "id" in alert:
                self._see(alert)

    async def _poll_alerts(self) -> None:
        state = await run_in_threadpool(reads.alerts_state, self.engine)
        active_ids = set()
        for alert in state["active"]:
            active_ids.add(alert["id"])
            self._see(alert)
        for gone in [i for i in self._known if i not in active_ids]:
            alert = await run_in_threadpool(alerts.get_alert, self.engine, gone)
            if alert is None:
                self._known.pop(gone, None)
                self.active_count = len(self._known)
            else:
                self._see(alert)

    def _see(self, alert: dict[str, Any]) -> None:
        """Compare an alert with what was last seen of it; send what changed, once."""
        alert_id = alert["id"]
        before = self._known.get(alert_id)
        change: str | None = None
        if alert.get("state") != "active":
            if before is not None or alert_id not in self._resolved:
                change = "resolved"
                self._known.pop(alert_id, None)
                self._resolved.append(alert_id)
        elif alert_id in self._resolved:
            return  # a stale message about an alert already resolved
        elif before is None:
            change = "raised"
        elif _RANK.get(alert["severity"], 0) > _RANK.get(before["severity"], 0):
            change = "escalated"
        elif alert.get("acknowledged_at") and not before.get("acknowledged_at"):
            change = "acknowledged"
        if alert.get("state") == "active":
            self._known[alert_id] = alert
        self.active_count = len(self._known)
        if change:
            self._broadcast(
                {"type": "alert", "change": change, "alert": alert,
                 "active_count": self.active_count}
            )  # fmt: skip


def hub_for(app: FastAPI) -> LiveHub:
    hub = getattr(app.state, "live_hub", None)
    if hub is None:
        hub = app.state.live_hub = LiveHub(app.state.engine)
    return hub  # type: ignore[no-any-return]


def stream_viewer(request: Request) -> Principal:
    """Staff only (a GET needs no CSRF token); sync, so the token lookup runs in a thread."""
    principal = authenticated(request)
    if not principal.is_staff:
        raise ApiError(403, "platform staff only")
    return principal


def _sse(message: dict[str, Any]) -> str:
    return f"data: {json.dumps(message, separators=(',', ':'), default=str)}\n\n"


@router.get(
    "/stream",
    summary="Server-sent events: new pipeline events and alert changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **COMMON_ERRORS},
)
async def stream(
    request: Request, _principal: Annotated[Principal, Depends(stream_viewer)]
) -> StreamingResponse:
    hub = hub_for(request.app)

    async def messages() -> AsyncIterator[str]:
        q = await hub.join()
        try:
            yield "retry: 2000\n\n"
            yield _sse(
                {"type": "alert", "change": "sync", "alert": None,
                 "active_count": hub.active_count}
            )  # fmt: skip
            idle = 0.0
            while True:
                try:
                    message = await asyncio.wait_for(q.get(), timeout=1.0)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    idle += 1.0
                    if idle >= HEARTBEAT_S:
                        idle = 0.0
                        if not await run_in_threadpool(still_signed_in, request, _principal):
                            return  # signed out, removed or revoked meanwhile (issue 16)
                        yield ": ping\n\n"
                    continue
                idle = 0.0
                yield _sse(message)
        finally:
            hub.leave(q)

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
