"""The alert notification hook: the in-process live stream and the outgoing webhook.

The webhook is tested against a real HTTP receiver on 127.0.0.1 (``http.server``
in a thread) that records every post and can fail the first N of them.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine

from voicewatch import alerts
from voicewatch.alerts import notify
from voicewatch.alerts.notify import AlertStream, Notifier, WebhookSender
from voicewatch.clock import parse_iso_ms
from voicewatch.config import ALERT_WEBHOOK_URL_ENV, AlertThresholds, Settings
from voicewatch.config import ENV_VARS as CONFIG_ENV_VARS
from voicewatch.store import write_transaction
from voicewatch.store.tables import ai_service_health

NOW = parse_iso_ms("2026-01-11T12:00:00Z")


class Receiver:
    """A Slack-like webhook endpoint: records posts; the first ``fail_first`` get ``status``."""

    def __init__(self, *, fail_first: int = 0, status: int = 500, delay_s: float = 0.0) -> None:
        self.fail_first = fail_first
        self.status = status
        self.delay_s = delay_s
        self.attempts: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                record = {
                    "path": self.path,
                    "content_type": self.headers.get("content-type", ""),
                    "json": json.loads(body),
                }
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                with receiver.lock:
                    receiver.attempts.append(record)
                    failing = len(receiver.attempts) <= receiver.fail_first
                    if not failing:
                        receiver.accepted.append(record)
                self.send_response(receiver.status if failing else 200)
                self.end_headers()
                self.wfile.write(b"no" if failing else b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody-home"


def _alert(**fields: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "alert_kind": "circuit_breaker_open",
        "scope": "transcription",
        "severity": "critical",
        "message": "The circuit breaker is open",
    } | fields


# --- the live stream ----------------------------------------------------------------------


def test_stream_fans_out_to_every_subscriber_until_unsubscribed() -> None:
    stream = AlertStream()
    a, b = stream.subscribe(), stream.subscribe()
    assert stream.publish({"n": 1}) == 2
    assert a.get_nowait() == {"n": 1} and b.get_nowait() == {"n": 1}
    stream.unsubscribe(a)
    stream.unsubscribe(a)  # twice is harmless
    assert stream.publish({"n": 2}) == 1
    assert a.empty() and b.get_nowait() == {"n": 2}
    assert stream.subscriber_count == 1


def test_a_slow_subscriber_loses_its_oldest_messages_not_the_publisher() -> None:
    stream = AlertStream()
    slow = stream.subscribe(maxsize=3)
    started = time.monotonic()
    for n in range(10):
        stream.publish({"n": n})
    assert time.monotonic() - started < 1.0
    assert [slow.get_nowait()["n"] for _ in range(3)] == [7, 8, 9]
    assert stream.dropped == 7


def test_publishing_from_many_threads_loses_nothing() -> None:
    stream = AlertStream()
    inbox = stream.subscribe(maxsize=10_000)
    threads = [
        threading.Thread(target=lambda t=t: [stream.publish({"t": t, "n": n}) for n in range(500)])
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = []
    while True:
        try:
            got.append(inbox.get_nowait())
        except queue.Empty:
            break
    assert len(got) == 4000
    for t in range(8):  # each publisher's messages arrive in its order
        assert [m["n"] for m in got if m["t"] == t] == list(range(500))


def test_module_stream_is_what_the_default_notifier_publishes_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ALERT_WEBHOOK_URL_ENV, raising=False)
    notify.reset_default_notifier()
    inbox = notify.subscribe()
    try:
        notify.default_notifier().alert_changed(notify.RAISED, _alert())
        message = inbox.get(timeout=1)
        assert message == {"type": "alert", "change": "raised", "alert": _alert()}
    finally:
        notify.unsubscribe(inbox)
        notify.reset_default_notifier()


# --- the webhook ---------------------------------------------------------------------------


def test_webhook_posts_slack_json_and_retries_until_it_lands(receiver_factory: Any) -> None:
    receiver = receiver_factory(fail_first=2)
    sender = WebhookSender(receiver.url, retries=3, backoff_s=0.01)
    assert sender.send({"text": "hello"}) is True
    assert sender.flush(timeout=10)
    assert len(receiver.attempts) == 3
    assert [r["json"] for r in receiver.accepted] == [{"text": "hello"}]
    assert receiver.accepted[0]["path"] == "/hooks/alerts"
    assert receiver.accepted[0]["content_type"].startswith("application/json")
    assert (sender.stats.sent, sender.stats.retries, sender.stats.failed) == (1, 2, 0)
    sender.close()


def test_webhook_gives_up_after_its_retries_and_counts_it(receiver_factory: Any) -> None:
    receiver = receiver_factory(fail_first=1000, status=503)
    sender = WebhookSender(receiver.url, retries=2, backoff_s=0.01)
    sender.send({"text": "one"})
    sender.send({"text": "two"})
    assert sender.flush(timeout=10)
    assert len(receiver.attempts) == 6  # 1 + 2 retries, each
    assert (sender.stats.sent, sender.stats.failed, sender.stats.retries) == (0, 2, 4)
    assert sender.stats.last_error == "HTTP 503"
    sender.close()


def test_webhook_does_not_retry_a_refusal(receiver_factory: Any) -> None:
    receiver = receiver_factory(fail_first=1, status=400)
    sender = WebhookSender(receiver.url, retries=3, backoff_s=0.01)
    sender.send({"text": "bad"})
    sender.send({"text": "good"})
    assert sender.flush(timeout=10)
    assert [r["json"]["text"] for r in receiver.attempts] == ["bad", "good"]
    assert (sender.stats.sent, sender.stats.failed, sender.stats.retries) == (1, 1, 0)
    sender.close()


def test_webhook_retries_a_rate_limit(receiver_factory: Any) -> None:
    receiver = receiver_factory(fail_first=1, status=429)
    sender = WebhookSender(receiver.url, retries=1, backoff_s=0.01)
    sender.send({"text": "x"})
    assert sender.flush(timeout=10)
    assert (sender.stats.sent, sender.stats.retries) == (1, 1)
    sender.close()


def test_webhook_to_nobody_counts_failures() -> None:
    sender = WebhookSender(_closed_port_url(), retries=1, backoff_s=0.01, timeout_s=2)
    sender.send({"text": "x"})
    assert sender.flush(timeout=10)
    assert (sender.stats.sent, sender.stats.failed, sender.stats.retries) == (0, 1, 1)
    assert "ConnectError" in sender.stats.last_error
    sender.close()


def test_send_never_waits_for_the_receiver_and_keeps_order(receiver_factory: Any) -> None:
    receiver = receiver_factory(delay_s=0.2)
    sender = WebhookSender(receiver.url, retries=0)
    started = time.monotonic()
    for n in range(5):
        sender.send({"text": f"m{n}"})
    assert time.monotonic() - started < 0.15  # five posts take a second to answer
    assert sender.flush(timeout=10)
    assert [r["json"]["text"] for r in receiver.accepted] == [f"m{n}" for n in range(5)]
    sender.close()


def test_a_full_queue_drops_and_counts() -> None:
    blocker = threading.Event()

    class StuckClient:
        def post(self, *_args: Any, **_kwargs: Any) -> Any:
            blocker.wait(10)
            raise RuntimeError("stuck")

        def close(self) -> None:
            pass

    sender = WebhookSender("http://x.test/", max_queue=2, client_factory=StuckClient)  # type: ignore[arg-type,return-value]
    results = [sender.send({"text": str(n)}) for n in range(6)]
    assert results.count(False) >= 3 and sender.stats.dropped == results.count(False)
    blocker.set()
    assert sender.flush(timeout=10)
    sender.close()


# --- the hook --------------------------------------------------------------------------------


def test_notifier_sends_changes_to_stream_and_webhook(receiver_factory: Any) -> None:
    receiver = receiver_factory()
    stream = AlertStream()
    inbox = stream.subscribe()
    hook = Notifier(stream=stream, webhook=WebhookSender(receiver.url, backoff_s=0.01))
    hook.alert_changed(notify.RAISED, _alert())
    hook.alert_changed(notify.ESCALATED, _alert(alert_kind="budget", scope="org_a"))
    hook.alert_changed(notify.RESOLVED, _alert(scope=""))
    hook.alert_changed(notify.ACKNOWLEDGED, _alert())  # the stream only
    assert hook.flush(timeout=10)
    assert [inbox.get_nowait()["change"] for _ in range(4)] == [
        "raised", "escalated", "resolved", "acknowledged",
    ]  # fmt: skip
    assert [r["json"] for r in receiver.accepted] == [
        {"text": "[CRITICAL] circuit_breaker_open (transcription): The circuit breaker is open"},
        {"text": "[CRITICAL, escalated] budget (org_a): The circuit breaker is open"},
        {"text": "[RESOLVED] circuit_breaker_open (platform): The circuit breaker is open"},
    ]
    assert hook.webhook is not None
    hook.webhook.close()


def test_notifier_for_the_configured_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://127.0.0.1:9/hook"
    hook = notify.notifier_for(url)
    assert hook.webhook is not None and hook.webhook.url == url
    assert hook.stream is notify.STREAM
    assert notify.notifier_for("").webhook is None
    assert ALERT_WEBHOOK_URL_ENV == "VOICEWATCH_ALERT_WEBHOOK_URL"
    assert ALERT_WEBHOOK_URL_ENV in CONFIG_ENV_VARS
    monkeypatch.setenv(ALERT_WEBHOOK_URL_ENV, f" {url} ")
    assert Settings.from_env().alert_webhook_url == url  # config.py reads it, trimmed
    monkeypatch.delenv(ALERT_WEBHOOK_URL_ENV)
    assert Settings.from_env().alert_webhook_url == ""


def _open_circuit(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            ai_service_health.insert().values(
                service="transcription", status="down", circuit_breaker_state="open",
                updated_at=NOW,
            )
        )  # fmt: skip


def test_check_health_posts_raised_alerts_to_the_webhook(
    engine: Engine, receiver_factory: Any
) -> None:
    receiver = receiver_factory(fail_first=1)
    hook = Notifier(stream=AlertStream(), webhook=WebhookSender(receiver.url, backoff_s=0.01))
    _open_circuit(engine)
    report = alerts.check_health(engine, NOW, AlertThresholds(), notifier=hook)
    assert len(report.raised) == 1
    assert hook.flush(timeout=10)
    [post] = receiver.accepted
    assert post["json"]["text"].startswith("[CRITICAL] circuit_breaker_open (transcription):")
    assert hook.webhook is not None
    hook.webhook.close()


def test_a_dead_webhook_neither_blocks_nor_fails_check_health(engine: Engine) -> None:
    sender = WebhookSender(_closed_port_url(), retries=3, backoff_s=0.5, timeout_s=5)
    hook = Notifier(stream=AlertStream(), webhook=sender)
    _open_circuit(engine)
    started = time.monotonic()
    report = alerts.check_health(engine, NOW, AlertThresholds(), notifier=hook)
    assert time.monotonic() - started < 2.0  # the retries (0.5 + 1 + 2 s) run elsewhere
    assert len(report.raised) == 1
    assert sender.flush(timeout=15)
    assert sender.stats.failed == 1 and sender.stats.retries == 3
    sender.close()
