"""Browser hardening headers, Host-free redirects, encoded links and the CSV formula guard
(issue 16, items 5 and 6). The framing and CSP checks run in Chromium.
"""

from __future__ import annotations

import csv
import io
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import LiveServer
from voicewatch.clock import now_ms
from voicewatch.web.api_events import _csv_safe
from voicewatch.web.headers import CSP

EXPECTED = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@pytest.fixture
def lite(sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(sqlite_url, queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    yield server
    server.stop()


def _hardened(response: httpx.Response, *, cached: bool = False) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (response.url, name)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    if cached:
        assert "no-store" not in response.headers.get("cache-control", "")
    else:
        assert response.headers.get("cache-control") == "no-store", response.url
    assert "strict-transport-security" not in response.headers


def test_every_kind_of_answer_carries_the_headers(lite: LiveServer) -> None:
    staff = lite.headers()
    event = {"event_id": "evt_h1", "event_type": "artifact_received", "timestamp": now_ms()}
    with httpx.Client(base_url=lite.url, timeout=10) as client:
        answers = {
            "page": client.get("/alerts", headers=staff),
            "login page": client.get("/login"),
            "API": client.get("/api/v1/events", headers=staff),
            "ingest": client.post("/api/v1/events", json=event, headers=staff),
            "CSV": client.get("/api/v1/events.csv", headers=staff),
            "401": client.get("/api/v1/events"),
            "404": client.get("/api/v1/artifacts/nope", headers=staff),
            "HTML error": client.get("/nope", headers={**staff, "Accept": "text/html"}),
            "redirect": client.get("/"),
            "413": client.post(
                "/login", content=b"x" * 70_000, headers={"Content-Type": "text/plain"}
            ),
            "NUL 400": client.get("/api/v1/events?organization_id=%00", headers=staff),
            "docs": client.get("/docs", headers=staff),
        }
        static = client.get("/static/app.css")
    assert answers["CSV"].headers["content-type"].startswith("text/csv")
    assert answers["413"].status_code == 413 and answers["NUL 400"].status_code == 400
    assert answers["redirect"].status_code == 303
    for what, response in answers.items():
        assert response.status_code < 500, what
        _hardened(response)
    _hardened(static, cached=True)


def test_an_unexpected_error_carries_the_headers_too(lite: LiveServer) -> None:
    """A 500 is sent by Starlette's outermost error middleware, past ours."""

    def boom() -> None:
        raise RuntimeError("a bug")

    lite.app.add_api_route("/api/v1/test-boom", boom)
    answer = httpx.get(f"{lite.url}/api/v1/test-boom")
    assert answer.status_code == 500 and answer.json() == {
        "error": "internal error",
        "detail": None,
    }
    _hardened(answer)


def test_hsts_only_when_secure_cookies_are_on(sqlite_url: str, tmp_path: Path) -> None:
    server = LiveServer(sqlite_url, secure_cookies=True, queue_url=f"sqlite:///{tmp_path / 'q.db'}")
    try:
        answer = httpx.get(f"{server.url}/api/v1/health")
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000")
    finally:
        server.stop()


def _raw_get(server: LiveServer, path: str, host: str) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_redirects_never_name_the_requests_host(lite: LiveServer) -> None:
    answer = _raw_get(lite, "/events/", "evil.example")
    head = answer.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 30"), head
    location = re.search(r"^location: (.*)$", head, re.M)
    assert location is not None and location[1].strip() == "/events", head
    assert "evil.example" not in head


def test_trusted_hosts_refuse_any_other_host(sqlite_url: str, tmp_path: Path) -> None:
    server = LiveServer(
        sqlite_url,
        trusted_hosts="voicewatch.test,127.0.0.1,*.club.example",
        queue_url=f"sqlite:///{tmp_path / 'q.db'}",
    )
    try:
        refused = _raw_get(server, "/api/v1/health", "evil.example")
        assert refused.startswith(b"HTTP/1.1 400")
        assert refused.split(b"\r\n\r\n", 1)[1].startswith(b'{"error": ')
        assert b"content-security-policy" in refused.lower()
        assert _raw_get(server, "/api/v1/health", "api.voicewatch.test").startswith(b"HTTP/1.1 400")
        assert _raw_get(server, "/api/v1/health", "voicewatch.test").startswith(b"HTTP/1.1 200")
        assert _raw_get(server, "/api/v1/health", "ops.club.example:8443").startswith(
            b"HTTP/1.1 200"
        )
    finally:
        server.stop()


@pytest.mark.parametrize(
    "cell",
    [
        "=1+1",
        "+1",
        "-1+1",
        "@SUM(A1)",
        '\n=HYPERLINK("http://x")',
        " =1+1",
        "\u00a0=1+1",
        "\u200b=1+1",
        "\ufeff=1",
        "\uff1d1+1",
        "\uff0b1",
        "\uff201",
        "\uff0d1",
        "\t=1",
        "\r=1",
        "note\n=1+1",
    ],
)
def test_the_csv_guard_quotes_every_formula_start(cell: str) -> None:
    assert _csv_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["art_1", "knee injury", "a=b", "1.5", "", "café +1"])
def test_the_csv_guard_leaves_plain_text_alone(cell: str) -> None:
    assert _csv_safe(cell) == cell


def test_the_csv_export_applies_the_guard(lite: LiveServer) -> None:
    tricky = '\u00a0=HYPERLINK("http://evil.example")'
    event = {
        "event_id": "evt_csv_guard",
        "event_type": "artifact_failed",
        "error_message": tricky,
        "timestamp": now_ms(),
    }
    assert httpx.post(f"{lite.url}/api/v1/events", json=event, headers=lite.headers()).is_success
    text = httpx.get(f"{lite.url}/api/v1/events.csv", headers=lite.headers()).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["error_message"] for r in rows] == ["'" + tricky]


def test_server_rendered_links_keep_an_id_in_one_path_segment(lite: LiveServer) -> None:
    event = {
        "event_id": "evt_link",
        "event_type": "artifact_received",
        "artifact_id": "x/../../events",
        "timestamp": now_ms(),
    }
    sent = httpx.post(f"{lite.url}/api/v1/events", json=event, headers=lite.headers())
    assert sent.status_code == 200, sent.text
    page = httpx.get(f"{lite.url}/events", headers=lite.headers()).text
    assert 'href="/artifacts/x%2F..%2F..%2Fevents"' in page
    assert 'href="/artifacts/x/../../events"' not in page


# --- in Chromium ----------------------------------------------------------------------------


class FramingSite:
    """Another origin (same host, another port: same site, so the staff cookie goes
    along, as in the attack of issue 16) serving a page that frames ``target``."""

    def __init__(self, target: str) -> None:
        import http.server
        import threading

        body = f'<iframe id="f" src="{target}" width="900" height="700"></iframe>'.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_page_framed_from_another_origin_does_not_render(staff_browser) -> None:
    server = staff_browser.server
    page = staff_browser.page
    site = FramingSite(f"{server.url}/alerts")
    try:
        page.goto(site.url)
        page.wait_for_load_state("load")
        inner = next(f for f in page.frames if f != page.main_frame)
        ours = "meta[name=csrf-token], #alert-badge, input[name=password], nav"
        assert not inner.url.startswith(server.url), inner.url  # the browser refused it
        assert inner.locator(ours).count() == 0  # nothing of ours was drawn
    finally:
        site.close()
    staff_browser.console_errors.clear()  # refusing the frame is the expected error here


def test_the_dashboard_runs_under_the_csp_and_a_violation_would_be_caught(staff_browser) -> None:
    page = staff_browser.page
    for path in ("/", "/pipeline", "/artifacts", "/metrics", "/alerts", "/events"):
        staff_browser.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("() => document.querySelector('nav') !== null"), path
    assert staff_browser.console_errors == []
    # an injected inline script is refused, and the refusal is reported as an error
    with page.expect_console_message(
        lambda m: m.type == "error" and "CSP violation" in m.text, timeout=5000
    ):
        page.evaluate(
            """() => {
                const s = document.createElement('script');
                s.textContent = 'window.__inlineRan = true';
                document.body.appendChild(s);
            }"""
        )
    assert page.evaluate("() => window.__inlineRan") is None
    assert any("CSP violation" in e for e in staff_browser.console_errors)
