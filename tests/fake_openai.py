"""A small OpenAI-compatible server on loopback, for testing the real ``openai`` client.

Why a fake at all: the provider's code talks to a service we cannot reach from a
test run (no account, no network). This server stands in for it at the HTTP
level, so ``openai_provider`` is exercised through the real client: its request
encoding (multipart upload, JSON schema), its retries and backoff, its timeouts
and its error classes. It is the only fake in the test suite.

It serves ``POST /v1/audio/transcriptions`` and ``POST /v1/chat/completions`` on
127.0.0.1 at a random port, from a background thread. What it answers is
switchable per test:

* ``fake.behaviour = "ok"`` (default): a normal reply. A transcription's text is
  ``fake.transcript_text`` split into timed segments, its duration read from the
  uploaded WAV's header; a chat reply's claims are derived from the note and
  roster the client sent (one claim per sentence, names found by first name).
* ``"500"``, ``"429"``, ``"401"``, ``"400"``: that HTTP error with an OpenAI-style body.
* ``"invalid_json"``: the chat message's content is not JSON;
  ``"wrong_shape"``: valid JSON that breaks the claims schema;
  ``"invalid_body"``: the HTTP body itself is not JSON.
* ``"slow"``: sleep ``fake.delay`` seconds, then answer normally (past the client's timeout).
* ``fake.script(["500", "ok"])`` queues behaviours for the next requests, then
  falls back to ``fake.behaviour``: a transient failure followed by success.

Every request is recorded in ``fake.requests`` (path, headers, parsed body).
Transient errors carry ``retry-after-ms`` so the client's retries stay fast.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import re
import threading
import time
import wave
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_TRANSCRIPT = "Liam rolled his ankle in the second half. Keep him out of contact drills."

_ERRORS: dict[str, tuple[int, str, str]] = {
    "500": (500, "server_error", "The server had an error while processing your request."),
    "429": (429, "rate_limit_exceeded", "Rate limit reached for requests."),
    "401": (401, "invalid_api_key", "Incorrect API key provided."),
    "400": (400, "invalid_request_error", "Invalid request."),
}

_TOPIC_WORDS: tuple[tuple[str, str], ...] = (
    ("ankle", "injury"), ("hamstring", "injury"), ("knee", "injury"),
    ("scored", "match_result"), ("won", "match_result"), ("lost", "match_result"),
    ("late", "attendance"), ("missed", "attendance"), ("parents", "parent_communication"),
    ("drills", "skill"), ("passing", "skill"), ("tired", "fitness"),
)  # fmt: skip


@dataclass
class Recorded:
    """One request as the fake saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


class FakeOpenAI:
    """The server; use as a context manager, or ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.delay = 2.0
        self.transcript_text = DEFAULT_TRANSCRIPT
        self.avg_logprob: float | None = -0.25
        self.requests: list[Recorded] = []
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def script(self, behaviours: list[str]) -> None:
        """Answer the next requests with these behaviours, in order."""
        with self._lock:
            self._queue.extend(behaviours)

    def reset(self) -> None:
        """Back to normal replies with no history (between tests sharing one server)."""
        with self._lock:
            self._queue.clear()
        self.behaviour = "ok"
        self.delay = 2.0
        self.transcript_text = DEFAULT_TRANSCRIPT
        self.avg_logprob = -0.25
        self.requests.clear()

    def next_behaviour(self) -> str:
        with self._lock:
            return self._queue.popleft() if self._queue else self.behaviour

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            owner = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False  # a "slow" handler must not hold up stop()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-openai")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- replies -------------------------------------------------------------------------

    def transcription_reply(self, rec: Recorded) -> dict[str, Any]:
        """A verbose_json transcription of the canned text, timed over the upload's length."""
        duration = _wav_seconds(rec.files.get("file", b"")) or 5.0
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", self.transcript_text.strip()) if s]
        total_words = sum(len(s.split()) for s in sentences) or 1
        segments, t = [], 0.0
        for i, sentence in enumerate(sentences):
            span = duration * len(sentence.split()) / total_words
            seg: dict[str, Any] = {
                "id": i, "seek": 0, "start": round(t, 2), "end": round(t + span, 2),
                "text": " " + sentence, "tokens": [1, 2, 3], "temperature": 0.0,
                "compression_ratio": 1.2, "no_speech_prob": 0.01,
            }  # fmt: skip
            if self.avg_logprob is not None:
                seg["avg_logprob"] = self.avg_logprob
            segments.append(seg)
            t += span
        return {
            "task": "transcribe",
            "language": "english",
            "duration": round(duration, 3),
            "text": self.transcript_text,
            "segments": segments,
            "usage": {"type": "duration", "seconds": round(duration)},
        }

    def claims_content(self, rec: Recorded) -> dict[str, Any]:
        """Claims derived from the note the client sent: one per sentence."""
        user = next(m["content"] for m in rec.body["messages"] if m["role"] == "user")
        payload = json.loads(user)
        note, roster = payload["note"], payload["roster_names"]
        claims = []
        for sentence in re.split(r"(?<=[.!?])\s+", note.strip()):
            if not sentence:
                continue
            lower = sentence.lower()
            topic = next((t for w, t in _TOPIC_WORDS if w in lower), "general")
            names = [n.split()[0] for n in roster if n.split() and n.split()[0] in sentence]
            claims.append(
                {"topic": topic, "source_text": sentence, "mentioned_names": names,
                 "extraction_confidence": 0.9}
            )  # fmt: skip
        return {"claims": claims}

    def chat_reply(self, rec: Recorded, content: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{rec.body.get('model', 'gpt-4o-mini')}-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375},
        }


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_POST(self) -> None:
        fake = self.owner
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        rec = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, {})
        ctype = self.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            rec.body, rec.files = _parse_multipart(ctype, raw)
        elif raw:
            rec.body = json.loads(raw)
        fake.requests.append(rec)
        behaviour = fake.next_behaviour()

        if behaviour == "slow":
            time.sleep(fake.delay)
        elif behaviour in _ERRORS:
            status, code, message = _ERRORS[behaviour]
            body = {"error": {"message": message, "type": code, "param": None, "code": code}}
            extra = {"retry-after-ms": "10"} if status in (429, 500) else {}
            self._send(status, json.dumps(body).encode(), extra)
            return
        elif behaviour == "invalid_body":
            self._send(200, b"<html>not json</html>", {}, "application/json")
            return

        if self.path.endswith("/audio/transcriptions"):
            self._send_json(fake.transcription_reply(rec))
        elif self.path.endswith("/chat/completions"):
            if behaviour == "invalid_json":
                content = '{"claims": [ {"topic": "injury", '
            elif behaviour == "wrong_shape":
                content = json.dumps(
                    {"claims": [{"topic": "weather", "source_text": "x",
                                 "mentioned_names": [], "extraction_confidence": 2}]}
                )  # fmt: skip
            else:
                content = json.dumps(fake.claims_content(rec))
            self._send_json(fake.chat_reply(rec, content))
        else:
            self._send(404, b'{"error": {"message": "no such route"}}', {})

    def _send_json(self, doc: dict[str, Any]) -> None:
        self._send(200, json.dumps(doc).encode(), {})

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str],
        ctype: str = "application/json",
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer


def _parse_multipart(ctype: str, raw: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Form fields and uploaded files of a multipart body (stdlib ``email`` parser)."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"content-type: {ctype}\r\n\r\n".encode() + raw
    )
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        if part.get_filename():
            files[str(name)] = payload
        else:
            fields[str(name)] = payload.decode("utf-8")
    return fields, files


def _wav_seconds(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return w.getnframes() / w.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        return None
