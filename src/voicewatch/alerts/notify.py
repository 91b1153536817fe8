"""Telling people that an alert changed: a live in-process stream and an outgoing webhook.

Why a separate module: raising an alert is a database fact (``alerts.lifecycle``);
telling someone about it is best-effort delivery that must never slow down or
fail the health check that found it. So everything here is non-blocking and
swallows its own errors:

* ``AlertStream`` is a small thread-safe publish/subscribe hub. Each subscriber
  (the dashboard's server-sent-events connection, one per open browser tab)
  gets its own bounded ``queue.Queue``; ``publish`` never waits for a slow
  reader: when a reader's queue is full its oldest message is dropped (and
  counted), because a toast about an alert from minutes ago is worth less than
  the newest one.
* ``WebhookSender`` posts Slack-compatible JSON ``{"text": "..."}`` to one URL
  from a single background thread, with retries and exponential backoff on
  connection errors, timeouts, HTTP 429 and 5xx. One thread (not one per
  message) keeps the order of messages and bounds the resources a dead
  receiver can tie up; its queue is bounded too, and what does not fit is
  dropped and counted.
* ``Notifier`` is the hook ``alerts.lifecycle`` calls for every raised, escalated and
  resolved alert (and the stream only, for acknowledgements).

The webhook URL is ``Settings.alert_webhook_url`` (``VOICEWATCH_ALERT_WEBHOOK_URL``,
read by ``config.py``; unset: no webhook).
A short-lived process (``voicewatch check-health``) should call
``default_notifier().flush(timeout)`` before exiting, or queued webhook posts
die with the process's daemon thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from voicewatch.config import Settings

log = logging.getLogger("voicewatch.notify")

#: What an alert change is called in messages.
RAISED = "raised"
ESCALATED = "escalated"
RESOLVED = "resolved"
ACKNOWLEDGED = "acknowledged"


# --- the live stream ---------------------------------------------------------------------


class AlertStream:
    """Thread-safe fan-out of messages (dicts) to any number of subscriber queues."""

    def __init__(self, *, maxsize: int = 1000) -> None:
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._subscribers: list[queue.Queue[dict[str, Any]]] = []
        self.dropped = 0

    def subscribe(self, maxsize: int | None = None) -> queue.Queue[dict[str, Any]]:
        """A new queue that receives every message published from now on."""
        q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=maxsize or self._maxsize)
        with self._lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[dict[str, Any]]) -> None:
        """Stop delivering to ``q`` (a closed SSE connection); unknown queues are ignored."""
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, message: dict[str, Any]) -> int:
        """Hand ``message`` to every subscriber without ever blocking; returns how many.

        A full subscriber queue loses its oldest message to make room (counted
        in ``dropped``): a stalled reader must not stall the publisher.
        """
        with self._lock:
            subscribers = list(self._subscribers)
        for q in subscribers:
            while True:
                try:
                    q.put_nowait(message)
                    break
                except queue.Full:
                    try:
                        q.get_nowait()
                        with self._lock:
                            self.dropped += 1
                    except queue.Empty:
                        pass
        return len(subscribers)


#: The process's stream: the web server's SSE route subscribes to it.
STREAM = AlertStream()


def subscribe(maxsize: int | None = None) -> queue.Queue[dict[str, Any]]:
    """Subscribe to the process-wide alert stream (see ``AlertStream.subscribe``)."""
    return STREAM.subscribe(maxsize)


def unsubscribe(q: queue.Queue[dict[str, Any]]) -> None:
    STREAM.unsubscribe(q)


def publish(message: dict[str, Any]) -> int:
    """Publish to the process-wide alert stream (see ``AlertStream.publish``)."""
    return STREAM.publish(message)


# --- the outgoing webhook ---------------------------------------------------------------


@dataclass
class WebhookStats:
    """What the webhook sender did; ``failed`` counts messages given up on."""

    sent: int = 0
    failed: int = 0
    retries: int = 0
    dropped: int = 0
    last_error: str = ""


@dataclass
class _Job:
    payload: dict[str, Any]
    attempt: int = 0


class _Retryable(Exception):
    """A delivery attempt failed in a way a later attempt may not."""


class WebhookSender:
    """Posts JSON payloads to ``url`` from one background thread, with retries.

    ``send`` only enqueues and returns at once. Each payload is tried up to
    ``1 + retries`` times; the wait before retry ``n`` is
    ``backoff_s * 2 ** (n - 1)``, capped at ``max_backoff_s``. A 4xx answer
    other than 429 is not retried (the receiver rejects the message; sending
    it again will not help). Failures are counted in ``stats``, never raised.
    """

    def __init__(
        self,
        url: str,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
        max_queue: int = 1000,
        client_factory: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.url = url
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.stats = WebhookStats()
        self._client_factory = client_factory or (lambda: httpx.Client(timeout=self.timeout_s))
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, payload: dict[str, Any]) -> bool:
        """Queue ``payload`` for delivery; False (and counted) if the queue is full or closed."""
        if self._closing.is_set():
            return False
        with self._lock:
            try:
                self._queue.put_nowait(_Job(payload))
            except queue.Full:
                self.stats.dropped += 1
                return False
            self._pending += 1
            self._start_locked()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued payload was delivered or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop the thread."""
        self.flush(timeout)
        self._closing.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            thread.join(timeout)

    def _start_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="voicewatch-alert-webhook", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        client = self._client_factory()
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                try:
                    self._deliver(client, job)
                except Exception as exc:  # never let the thread die on a surprise
                    log.exception("alert webhook: unexpected error")
                    with self._lock:
                        self.stats.failed += 1
                        self.stats.last_error = f"{type(exc).__name__}: {exc}"
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()
        finally:
            client.close()

    def _deliver(self, client: httpx.Client, job: _Job) -> None:
        while True:
            try:
                self._post(client, job.payload)
            except _Retryable as exc:
                with self._lock:
                    self.stats.last_error = str(exc)
                if job.attempt >= self.retries or self._closing.is_set():
                    with self._lock:
                        self.stats.failed += 1
                    log.warning("alert webhook gave up after %d attempts: %s", job.attempt + 1, exc)
                    return
                job.attempt += 1
                with self._lock:
                    self.stats.retries += 1
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (job.attempt - 1))
                if self._closing.wait(delay):
                    with self._lock:
                        self.stats.failed += 1
                    return
            except ValueError as exc:  # a permanent refusal
                with self._lock:
                    self.stats.failed += 1
                    self.stats.last_error = str(exc)
                log.warning("alert webhook refused: %s", exc)
                return
            else:
                with self._lock:
                    self.stats.sent += 1
                return

    def _post(self, client: httpx.Client, payload: dict[str, Any]) -> None:
        try:
            response = client.post(self.url, json=payload, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")


# --- the hook ------------------------------------------------------------------------------


def slack_text(change: str, alert: dict[str, Any]) -> str:
    """One line a person reads in a chat channel."""
    scope = alert.get("scope") or "platform"
    severity = str(alert.get("severity", "")).upper()
    if change == RESOLVED:
        return f"[RESOLVED] {alert.get('alert_kind')} ({scope}): {alert.get('message', '')}"
    prefix = f"[{severity}]" if change == RAISED else f"[{severity}, {change}]"
    return f"{prefix} {alert.get('alert_kind')} ({scope}): {alert.get('message', '')}"


@dataclass
class Notifier:
    """The hook ``alerts.lifecycle`` calls on every alert change: stream, then webhook.

    ``alert_changed`` never raises and never blocks on the network.
    """

    stream: AlertStream | None = field(default_factory=lambda: STREAM)
    webhook: WebhookSender | None = None
    #: Changes that go to the webhook (acknowledgements only reach the live stream).
    webhook_changes: frozenset[str] = frozenset({RAISED, ESCALATED, RESOLVED})

    def alert_changed(self, change: str, alert: dict[str, Any]) -> None:
        try:
            if self.stream is not None:
                self.stream.publish({"type": "alert", "change": change, "alert": alert})
        except Exception:
            log.exception("alert stream publish failed")
        try:
            if self.webhook is not None and change in self.webhook_changes:
                self.webhook.send({"text": slack_text(change, alert)})
        except Exception:
            log.exception("alert webhook enqueue failed")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for queued webhook posts (for short-lived processes); True when done."""
        return self.webhook.flush(timeout) if self.webhook is not None else True


_default: Notifier | None = None
_default_lock = threading.Lock()


def notifier_for(webhook_url: str) -> Notifier:
    """A notifier on the process stream, with a webhook when ``webhook_url`` is set."""
    url = webhook_url.strip()
    return Notifier(stream=STREAM, webhook=WebhookSender(url) if url else None)


def default_notifier() -> Notifier:
    """The process-wide notifier, built from the settings (``config.py``) on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = notifier_for(Settings.from_env().alert_webhook_url)
        return _default


def reset_default_notifier() -> None:
    """Forget the process-wide notifier (its webhook thread is closed); for tests and reloads."""
    global _default
    with _default_lock:
        old, _default = _default, None
    if old is not None and old.webhook is not None:
        old.webhook.close(timeout=1.0)
