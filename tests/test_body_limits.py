"""Bodies are capped before they are read, callers are known before an upload is read,
and trickling clients are timed out (issue 16, items 1 and 6).

A counting shim sits between uvicorn and the app and adds up every body byte
the app pulls (what "the server read"), so the figures do not come from the
middleware under test. 200 MB bodies are generated on the fly over a raw
socket, never written to disk; the client stops sending as soon as an answer
arrives.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer
from voicewatch.web.body_limit import FORM_MAX_BYTES, UPLOAD_MAX_BYTES

HUGE = 200 * 1000 * 1000
CHUNK = 64 * 1024
#: one socket read (asyncio reads up to 256 KiB at a time): the most a refusal can overshoot
SOCKET_READ = 256 * 1024
BOUNDARY = "vwboundary"


class CountingShim:
    """ASGI wrapper recording, per request path, the body bytes the app received."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.read: list[tuple[str, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = len(self.read)
        self.read.append((scope["path"], 0))

        async def counted() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                path, seen = self.read[slot]
                self.read[slot] = (path, seen + len(message.get("body", b"")))
            return message

        await self.app(scope, counted, send)

    def last(self, path: str) -> int:
        return [n for p, n in self.read if p == path][-1]


def _start(db_url: str, tmp_path: Path, **settings: Any) -> tuple[LiveServer, CountingShim]:
    server = LiveServer(
        db_url,
        audio_dir=str(tmp_path / "audio"),
        queue_url=f"sqlite:///{tmp_path / 'queue.db'}",
        **settings,
    )
    config = server._server.config  # new connections pick up the app from here
    shim = CountingShim(config.loaded_app)
    config.loaded_app = shim
    return server, shim


@pytest.fixture
def counted(db_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, CountingShim]]:
    server, shim = _start(db_url, tmp_path)
    yield server, shim
    server.stop()


@pytest.fixture
def tmp_spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the server's temporary files go during the test (it runs in this process)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    return spool


def _open_fds_to_deleted_files() -> int:
    """Temporary files still open (spooled uploads are unlinked at once on Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.endswith("(deleted)") and "/spool/" in target
    return count


def _send_huge(
    server: LiveServer,
    path: str,
    head: dict[str, str],
    body: Iterator[bytes],
    *,
    declare: int | None,
) -> tuple[int, int, bytes]:
    """Send a request, stopping once the server answers; (status, bytes sent, answer)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{k}: {v}" for k, v in head.items()]
    lines.append(
        f"Content-Length: {declare}" if declare is not None else "Transfer-Encoding: chunked"
    )
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sent = 0
    answer = b""
    try:
        for chunk in body:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            frame = chunk if declare is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk)
            sock.sendall(frame)
            sent += len(chunk)
        else:
            if declare is None:
                sock.sendall(b"0\r\n\r\n")
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except (BrokenPipeError, ConnectionResetError):
        sock.settimeout(2)
        with contextlib.suppress(OSError):
            answer += sock.recv(65536)
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, sent, answer


def _zeros(total: int, prefix: bytes = b"", suffix: bytes = b"") -> Iterator[bytes]:
    yield prefix
    block = b"\0" * CHUNK
    left = total - len(prefix) - len(suffix)
    while left > 0:
        yield block[: min(CHUNK, left)]
        left -= CHUNK
    yield suffix


def _multipart_audio(total: int) -> tuple[Iterator[bytes], dict[str, str]]:
    fields = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in (("organization_id", "org_x"), ("coach_user_id", "coach_1"))
    )
    head = (
        f'{fields}--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio"; '
        'filename="note.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF\0\0\0\0WAVE'
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return _zeros(total, head, tail), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_200_mb_anonymous_upload_is_refused_before_it_is_read(
    counted: tuple[LiveServer, CountingShim], tmp_spool: Path, tmp_path: Path, declared: bool
) -> None:
    server, shim = counted
    body, head = _multipart_audio(HUGE)
    status, sent, _ = _send_huge(
        server, "/api/v1/artifacts", head, body, declare=HUGE if declared else None
    )
    assert status == (413 if declared else 401)
    assert shim.last("/api/v1/artifacts") == 0  # not one byte of the body was read
    assert sent < HUGE // 4, sent  # the client was stopped early (kernel buffers aside)
    assert list(tmp_spool.iterdir()) == [] and _open_fds_to_deleted_files() == 0
    assert not (tmp_path / "audio").exists() or list((tmp_path / "audio").iterdir()) == []
    print(
        f"\nanonymous upload ({'declared' if declared else 'chunked'}): status {status}, "
        f"server read 0 bytes, client managed to send {sent:,} of {HUGE:,}"
    )


def test_a_200_mb_upload_with_a_token_stops_at_the_limit(
    counted: tuple[LiveServer, CountingShim], tmp_spool: Path, tmp_path: Path
) -> None:
    server, shim = counted
    body, head = _multipart_audio(HUGE)
    head["Authorization"] = f"Bearer {server.ingest_token}"
    status, sent, answer = _send_huge(server, "/api/v1/artifacts", head, body, declare=None)
    assert status == 413, answer[:300]
    read = shim.last("/api/v1/artifacts")
    assert UPLOAD_MAX_BYTES - SOCKET_READ < read <= UPLOAD_MAX_BYTES + SOCKET_READ, read
    assert b"connection: close" in answer.lower()
    assert list(tmp_spool.iterdir()) == [] and _open_fds_to_deleted_files() == 0
    assert not (tmp_path / "audio").exists() or list((tmp_path / "audio").iterdir()) == []
    print(
        f"\nchunked 200 MB upload with a token: 413 after the server read {read:,} bytes "
        f"(limit {UPLOAD_MAX_BYTES:,}); client sent {sent:,}"
    )


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_200_mb_anonymous_login_body_is_refused_at_the_form_limit(
    counted: tuple[LiveServer, CountingShim], tmp_spool: Path, declared: bool
) -> None:
    server, shim = counted
    fields = (b"f%d=" % i + b"x" * (1000 * 1000 - 8) + b"&" for i in range(200))
    head = {"Content-Type": "application/x-www-form-urlencoded"}
    status, sent, _ = _send_huge(
        server, "/login", head, _flatten(fields), declare=HUGE if declared else None
    )
    assert status == 413
    read = shim.last("/login")
    assert read == 0 if declared else read <= FORM_MAX_BYTES + SOCKET_READ, read
    assert list(tmp_spool.iterdir()) == [] and _open_fds_to_deleted_files() == 0
    print(
        f"\nanonymous 200 MB /login ({'declared' if declared else 'chunked'}): 413 after "
        f"the server read {read:,} bytes (limit {FORM_MAX_BYTES:,}); client sent {sent:,}"
    )


def _flatten(parts: Iterator[bytes]) -> Iterator[bytes]:
    for part in parts:
        for start in range(0, len(part), CHUNK):
            yield part[start : start + CHUNK]


def test_a_small_upload_still_lands(counted: tuple[LiveServer, CountingShim]) -> None:
    """The caps and the early check do not get in the way of a real note."""
    import httpx

    from voicewatch.pipeline import clubs

    server, _ = counted
    server.app.state.enqueue = lambda *args: None
    clubs.upsert_organization(server.engine, "org_x", "X")
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\0" * 2000
    sent = httpx.post(
        f"{server.url}/api/v1/artifacts",
        data={"organization_id": "org_x", "coach_user_id": "coach_1"},
        files={"audio": ("n.wav", wav, "audio/wav")},
        headers=server.headers(server.ingest_token),
        timeout=30,
    )
    assert sent.status_code == 202, sent.text


# --- trickling clients -------------------------------------------------------------------


@pytest.fixture
def impatient(sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server, _ = _start(sqlite_url, tmp_path, header_timeout_s=0.5, body_timeout_s=0.5)
    yield server
    server.stop()


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within ``seconds``; what it sent first."""
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True, got
            got += data
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got


def test_the_server_keeps_uvicorns_fastest_protocol() -> None:
    """httptools (uvicorn's "auto" choice) stays in use, with the timeout mixed in."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from voicewatch.config import Settings
    from voicewatch.web.serving import HeadTimeout, protocol_for

    chosen = protocol_for(Settings(header_timeout_s=3))
    assert issubclass(chosen, HttpToolsProtocol) and issubclass(chosen, HeadTimeout)
    assert chosen.head_timeout_s == 3


@pytest.fixture(params=["httptools", "h11"])
def head_timed(
    request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    """A server with a 0.5 s head timeout, on each of uvicorn's HTTP protocols."""
    from voicewatch.web import serving

    if request.param == "h11":
        monkeypatch.setattr(serving, "_fastest_base", lambda: serving.HeadTimeoutH11Protocol)
    server, _ = _start(sqlite_url, tmp_path, header_timeout_s=0.5)
    yield server
    server.stop()


def test_a_trickled_request_head_is_timed_out(head_timed: LiveServer) -> None:
    impatient = head_timed
    sock = socket.create_connection(("127.0.0.1", impatient.port), timeout=5)
    started = time.monotonic()
    sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    closed = False
    for _ in range(20):  # one byte every 0.1 s would keep an untimed server waiting for ever
        try:
            sock.sendall(b"a")
        except OSError:
            closed = True
            break
        closed, _ = _closed_within(sock, 0.1)
        if closed:
            break
    elapsed = time.monotonic() - started
    sock.close()
    assert closed and elapsed < 1.8, elapsed
    print(f"\ntrickled head closed after {elapsed:.2f} s (header timeout 0.5 s)")


def test_a_stalled_body_is_answered_408(impatient: LiveServer) -> None:
    sock = socket.create_connection(("127.0.0.1", impatient.port), timeout=5)
    sock.sendall(
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        b"\r\nContent-Length: 100\r\n\r\nemail=a"
    )
    started = time.monotonic()
    closed, answer = _closed_within(sock, 3)
    elapsed = time.monotonic() - started
    sock.close()
    assert closed and answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert elapsed < 2.5, elapsed


@pytest.mark.parametrize(
    ("audio", "status"),
    [
        (b"RIFF\x24\x00\x00\x00WAVE" + b"\0" * (25 * 1024 * 1024 + 100_000), 413),
        (b"<html>not audio</html>" * 100, 422),
        (b"", 422),
    ],
    ids=["over 25 MB inside the body cap", "not audio", "empty"],
)
def test_a_refused_upload_leaves_no_file_behind(
    counted: tuple[LiveServer, CountingShim], tmp_path: Path, audio: bytes, status: int
) -> None:
    import httpx

    from voicewatch.pipeline import clubs

    server, _ = counted
    clubs.upsert_organization(server.engine, "org_x", "X")
    sent = httpx.post(
        f"{server.url}/api/v1/artifacts",
        data={"organization_id": "org_x", "coach_user_id": "coach_1"},
        files={"audio": ("n.wav", audio, "audio/wav")},
        headers=server.headers(server.ingest_token),
        timeout=60,
    )
    assert sent.status_code == status, sent.text
    audio_dir = tmp_path / "audio"
    assert not audio_dir.exists() or list(audio_dir.iterdir()) == []
    assert _open_fds_to_deleted_files() == 0


def test_a_session_upload_needs_its_csrf_header_before_the_body_is_read(
    counted: tuple[LiveServer, CountingShim],
) -> None:
    """A multipart body is never read to look for a CSRF field: the header comes first."""
    import re

    import httpx

    from conftest import STAFF_EMAIL, STAFF_PASSWORD
    from voicewatch.auth import create_staff

    server, shim = counted
    create_staff(server.engine, STAFF_EMAIL, STAFF_PASSWORD)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        form = {"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token[1]}
        assert client.post("/login", data=form).status_code == 303
        cookie = client.cookies["vw_session"]
    body, head = _multipart_audio(HUGE)
    head["Cookie"] = f"vw_session={cookie}"
    status, sent, answer = _send_huge(server, "/api/v1/artifacts", head, body, declare=None)
    assert status == 403 and b"X-CSRF-Token" in answer, answer[:300]
    assert shim.last("/api/v1/artifacts") == 0
    assert sent < HUGE // 4
