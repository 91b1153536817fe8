"""The AI provider: Whisper transcription and chat-completion claims extraction.

Why: offline recognition and rules are the default, but a club that configures an
API gets better transcripts and claims. Everything goes through the official
``openai`` client with a configurable ``base_url``, so any OpenAI-compatible
endpoint works (OpenAI, Azure-style gateways, a local vLLM or LiteLLM server, or
the loopback fake the tests use).

Contract for the caller (``providers.GuardedCall``, which wraps every call in the
circuit breaker, budget and rate limit):

* every call returns what it consumed (``Usage``: model, input and output tokens,
  audio seconds), so it can be costed;
* every failure is a ``ProviderError`` with a machine-readable ``code`` and a
  ``transient`` flag: timeouts, connection failures, 408/409/429 and 5xx are
  transient (worth retrying later, and they count against the circuit breaker);
  400, 401, 403, 404, 422 and a reply we cannot use are not;
* a reply is validated strictly: invalid JSON, a missing field, an unknown topic or
  a confidence outside [0, 1] is an ``invalid_response`` error, never a guess.

The client's own retries (``max_retries``, with backoff that honours
``Retry-After``) happen inside one call; ``timeout`` bounds each attempt.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicewatch.pipeline.audio import AudioError, inspect_audio
from voicewatch.pipeline.topics import TOPIC_NAMES, TOPICS
from voicewatch.pipeline.transcription import (
    DEFAULT_MAX_DURATION_SECONDS,
    Transcript,
    TranscriptionError,
    Usage,
)

DEFAULT_TRANSCRIPTION_MODEL = "whisper-1"
DEFAULT_CHAT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
#: Whisper reads at most 224 tokens of prompt; names beyond this many characters are dropped.
MAX_PROMPT_CHARS = 800
#: The longest note sent for extraction (characters); a voice note is far shorter.
MAX_NOTE_CHARS = 20_000
#: Whisper's upload limit.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024

_TRANSIENT_STATUS = frozenset({408, 409, 429})


class ProviderError(Exception):
    """A provider call failed.

    ``code``: ``timeout``, ``connection_error``, ``rate_limited``, ``server_error``,
    ``unauthorized``, ``forbidden``, ``bad_request``, ``not_found``, ``http_<status>``,
    ``invalid_response``, ``refused``, ``missing_api_key``, ``provider_unavailable``.
    ``transient`` says whether the same call may succeed later; ``status`` is the
    HTTP status when there was one.
    """

    def __init__(
        self, message: str, code: str, transient: bool, *, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_code = code  # the name the pipeline's stage errors use
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class ExtractedClaim:
    """One atomic claim from the model; the same fields as the rules extractor's ``Claim``."""

    topic: str
    source_text: str
    mentioned_names: tuple[str, ...]
    extraction_confidence: float


def make_client(
    *,
    api_key: str = "",
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> Any:
    """An ``openai.OpenAI`` client for any OpenAI-compatible endpoint.

    The key comes from the settings (``Settings.openai_api_key``: the environment is
    read in ``voicewatch.config`` only); a custom ``base_url`` without a key gets a
    placeholder, since self-hosted servers often need none. Against the real
    API a missing key is a ``ProviderError`` now rather than a 401 later.
    """
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ProviderError(
            "the openai package is not installed: pip install openai",
            "provider_unavailable",
            False,
        ) from exc
    key = api_key
    if not key:
        if not base_url:
            raise ProviderError(
                "no API key: set VOICEWATCH_OPENAI_API_KEY (or OPENAI_API_KEY)",
                "missing_api_key",
                False,
            )
        key = "not-needed"
    return openai.OpenAI(
        api_key=key, base_url=base_url or None, timeout=timeout, max_retries=max_retries
    )


def map_error(exc: BaseException) -> ProviderError:
    """Translate an ``openai`` exception into a ``ProviderError`` (transient or not)."""
    import openai

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError("the AI provider did not answer in time", "timeout", True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(
            f"cannot reach the AI provider: {_cause(exc)}", "connection_error", True
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _error_detail(exc)
        if status == 429:
            code, transient = "rate_limited", True
        elif status >= 500:
            code, transient = "server_error", True
        elif status == 401:
            code, transient = "unauthorized", False
        elif status == 403:
            code, transient = "forbidden", False
        elif status == 400:
            code, transient = "bad_request", False
        elif status == 404:
            code, transient = "not_found", False
        else:
            code, transient = f"http_{status}", status in _TRANSIENT_STATUS
        return ProviderError(
            f"the AI provider answered {status}: {detail}", code, transient, status=status
        )
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        # the client could not parse the body (json.JSONDecodeError is a ValueError)
        return ProviderError(
            f"the AI provider's reply did not parse: {exc}", "invalid_response", False
        )
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(f"AI provider error: {exc}", "provider_error", False)
    return ProviderError(f"AI provider call failed: {exc!r}", "provider_error", False)


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}: {inner}" if inner else str(exc)


def _error_detail(exc: Any) -> str:
    """The ``error.message`` of an OpenAI-style error body, else a short text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:300]
    return str(getattr(exc, "message", exc))[:300]


# --- transcription ----------------------------------------------------------------------


class WhisperTranscriber:
    """Transcription with Whisper (``audio.transcriptions.create``, ``verbose_json``).

    ``hints`` become Whisper's ``prompt`` ("Players: Liam Carter, ..."), which is how
    Whisper is steered toward spellings. The file is checked locally first (exists,
    is audio, not longer than ``max_duration_seconds``) so a bad upload costs nothing.
    Confidence is the duration-weighted mean of ``exp(avg_logprob)`` over segments,
    or None when the server gives no log-probabilities.
    """

    def __init__(
        self,
        *,
        api_key: str = "",
        base_url: str | None = None,
        model: str = DEFAULT_TRANSCRIPTION_MODEL,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        language: str | None = "en",
        max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS,
        client: Any = None,
    ) -> None:
        self.model = model
        self.language = language
        self.max_duration_seconds = max_duration_seconds
        self.client = client or make_client(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    def transcribe(self, audio_path: Path, *, hints: Sequence[str] = ()) -> Transcript:
        """Upload ``audio_path`` and return its transcript, with ``usage`` set.

        Raises ``TranscriptionError`` for a local problem with the file and
        ``ProviderError`` for a failed call or an unusable reply.
        """
        path = Path(audio_path)
        try:
            _fmt, local_seconds = inspect_audio(path, max_seconds=self.max_duration_seconds)
        except AudioError as exc:
            raise TranscriptionError(str(exc), exc.code) from exc
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise TranscriptionError(
                f"{path.name} is over the provider's 25 MB upload limit", "audio_too_large"
            )
        params: dict[str, Any] = {"model": self.model, "response_format": "verbose_json"}
        prompt = hint_prompt(hints)
        if prompt:
            params["prompt"] = prompt
        if self.language:
            params["language"] = self.language
        try:
            with path.open("rb") as fh:
                reply = self.client.audio.transcriptions.create(file=(path.name, fh), **params)
        except Exception as exc:
            raise map_error(exc) from exc
        return self._transcript(reply, local_seconds)

    def _transcript(self, reply: Any, local_seconds: float | None) -> Transcript:
        data = _as_dict(reply)
        text = data.get("text")
        if not isinstance(text, str):
            raise _invalid("the transcription reply has no text")
        segments: list[dict[str, Any]] = []
        weighted = weight_total = 0.0
        raw_segments = data.get("segments") or []
        if not isinstance(raw_segments, list):
            raise _invalid("the transcription reply's segments are not a list")
        for seg in raw_segments:
            if not isinstance(seg, dict):
                raise _invalid("a transcription segment is not an object")
            start, end, seg_text = (
                _number(seg.get("start")),
                _number(seg.get("end")),
                seg.get("text"),
            )
            if start is None or end is None or not isinstance(seg_text, str):
                raise _invalid("a transcription segment lacks start, end or text")
            if end < start or start < 0:
                raise _invalid("a transcription segment ends before it starts")
            segments.append(
                {"start": round(start, 2), "end": round(end, 2), "text": seg_text.strip()}
            )
            logprob = _number(seg.get("avg_logprob"))
            if logprob is not None:
                span = max(end - start, 0.01)
                weighted += span * math.exp(min(logprob, 0.0))
                weight_total += span
        duration = _number(data.get("duration"))
        if duration is None or duration < 0:
            if local_seconds is not None:
                duration = local_seconds
            else:
                duration = float(segments[-1]["end"]) if segments else 0.0
        usage_seconds = _usage_seconds(data.get("usage"))
        language = data.get("language")
        clean = " ".join(text.split())
        if not segments and clean:
            segments = [{"start": 0.0, "end": round(duration, 2), "text": clean}]
        return Transcript(
            full_text=clean,
            segments=segments,
            duration_seconds=round(duration, 3),
            word_count=len(clean.split()),
            confidence=round(weighted / weight_total, 4) if weight_total else None,
            model=self.model,
            language=language if isinstance(language, str) else None,
            usage=Usage(
                model=self.model,
                audio_seconds=usage_seconds if usage_seconds is not None else duration,
            ),
        )


def hint_prompt(hints: Sequence[str]) -> str:
    """Whisper's prompt from roster names: it biases spelling toward words it has seen."""
    names: list[str] = []
    size = 0
    for hint in hints:
        name = " ".join(str(hint).split())
        if not name or name in names:
            continue
        if size + len(name) + 2 > MAX_PROMPT_CHARS:
            break
        names.append(name)
        size += len(name) + 2
    return f"Coach's note about players: {', '.join(names)}." if names else ""


def _usage_seconds(usage: Any) -> float | None:
    seconds = _number(usage.get("seconds")) if isinstance(usage, dict) else None
    return seconds if seconds is not None and seconds >= 0 else None


# --- claims extraction ------------------------------------------------------------------

CLAIMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "claims": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "topic": {"type": "string", "enum": list(TOPIC_NAMES)},
                    "source_text": {"type": "string"},
                    "mentioned_names": {"type": "array", "items": {"type": "string"}},
                    "extraction_confidence": {"type": "number"},
                },
                "required": ["topic", "source_text", "mentioned_names", "extraction_confidence"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["claims"],
    "additionalProperties": False,
}

_CLAIM_KEYS = frozenset(CLAIMS_SCHEMA["properties"]["claims"]["items"]["properties"])


def _system_prompt() -> str:
    topics = "\n".join(f"- {t.name}: {t.definition}" for t in TOPICS)
    return (
        "You split a youth sports coach's note into atomic claims: one fact, observation "
        "or instruction each, about one topic.\n"
        "For every claim give:\n"
        "- topic: exactly one of the topics below;\n"
        "- source_text: the words of the note the claim comes from, copied verbatim;\n"
        "- mentioned_names: the people the claim is about, spelled as the coach wrote "
        "them (no possessive 's); use the roster only to recognise names, never add a "
        "name the claim does not mention;\n"
        "- extraction_confidence: your confidence from 0 to 1 that topic and names are "
        "right.\n"
        "Return no claims for a note with nothing to record.\n\n"
        f"Topics:\n{topics}"
    )


class ChatClaimsExtractor:
    """Claims extraction with chat completions and a strict JSON schema.

    The note and the roster go to the model as a JSON object; the reply must follow
    ``CLAIMS_SCHEMA`` (``response_format={"type": "json_schema", ...}``) and is
    validated again here, because an OpenAI-compatible server may ignore the schema.
    """

    def __init__(
        self,
        *,
        api_key: str = "",
        base_url: str | None = None,
        model: str = DEFAULT_CHAT_MODEL,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        temperature: float = 0.0,
        client: Any = None,
    ) -> None:
        self.model = model
        self.temperature = temperature
        self.client = client or make_client(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    def messages(self, text: str, roster_names: Sequence[str]) -> list[dict[str, str]]:
        """The chat messages sent for one note (exposed for tests and debugging)."""
        payload = {"roster_names": [str(n) for n in roster_names], "note": text}
        return [
            {"role": "system", "content": _system_prompt()},
            {"role": "user", "content": json.dumps(payload, ensure_ascii=False)},
        ]

    def extract(self, text: str, roster_names: Sequence[str]) -> tuple[list[ExtractedClaim], Usage]:
        """The note's claims and the call's usage; ``ProviderError`` on any failure."""
        if len(text) > MAX_NOTE_CHARS:
            raise ProviderError(
                f"the note is {len(text)} characters; the limit is {MAX_NOTE_CHARS}",
                "note_too_long",
                False,
            )
        if not text.strip():
            return [], Usage(model=self.model)
        messages = self.messages(text, roster_names)
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=self.temperature,
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "coach_note_claims",
                        "strict": True,
                        "schema": CLAIMS_SCHEMA,
                    },
                },
            )
        except Exception as exc:
            raise map_error(exc) from exc
        data = _as_dict(completion)
        usage = _chat_usage(data, self.model)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _invalid("the chat reply has no choices")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise _invalid("the chat reply has no message")
        if message.get("refusal"):
            raise ProviderError(
                f"the model refused: {str(message['refusal'])[:200]}", "refused", False
            )
        content = message.get("content")
        if choices[0].get("finish_reason") == "length":
            raise _invalid("the chat reply was cut off (finish_reason=length)")
        return parse_claims(content), usage


def parse_claims(content: Any) -> list[ExtractedClaim]:
    """Validate a reply's JSON text against ``CLAIMS_SCHEMA``; ``ProviderError`` if it fails."""
    if not isinstance(content, str) or not content.strip():
        raise _invalid("the chat reply is empty")
    try:
        doc = json.loads(content)
    except json.JSONDecodeError as exc:
        raise _invalid(f"the chat reply is not JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(doc, dict) or set(doc) != {"claims"} or not isinstance(doc["claims"], list):
        raise _invalid('the chat reply is not an object {"claims": [...]}')
    claims: list[ExtractedClaim] = []
    for n, item in enumerate(doc["claims"]):
        where = f"claim {n}"
        if not isinstance(item, dict):
            raise _invalid(f"{where} is not an object")
        if set(item) != _CLAIM_KEYS:
            missing, extra = _CLAIM_KEYS - set(item), set(item) - _CLAIM_KEYS
            raise _invalid(f"{where}: missing {sorted(missing)}, unexpected {sorted(extra)}")
        topic, source = item["topic"], item["source_text"]
        names, conf = item["mentioned_names"], item["extraction_confidence"]
        if topic not in TOPIC_NAMES:
            raise _invalid(f"{where}: unknown topic {str(topic)[:40]!r}")
        if not isinstance(source, str) or not source.strip():
            raise _invalid(f"{where}: source_text must be a non-empty string")
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise _invalid(f"{where}: mentioned_names must be a list of strings")
        if isinstance(conf, bool) or not _finite(conf) or not 0.0 <= conf <= 1.0:
            raise _invalid(f"{where}: extraction_confidence must be a number in [0, 1]")
        clean_names = tuple(dict.fromkeys(" ".join(x.split()) for x in names if x.strip()))
        claims.append(ExtractedClaim(topic, " ".join(source.split()), clean_names, float(conf)))
    return claims


def _chat_usage(data: dict[str, Any], fallback_model: str) -> Usage:
    """Tokens from the reply's ``usage``; the model as the server names it (a dated snapshot)."""
    model = data.get("model")
    usage = data.get("usage")
    counts = usage if isinstance(usage, dict) else {}
    prompt_tokens, completion_tokens = counts.get("prompt_tokens"), counts.get("completion_tokens")
    return Usage(
        model=model if isinstance(model, str) and model else fallback_model,
        input_tokens=_count(prompt_tokens),
        output_tokens=_count(completion_tokens),
    )


# --- helpers ----------------------------------------------------------------------------


def _as_dict(reply: Any) -> dict[str, Any]:
    """A reply as plain data: the SDK's pydantic models keep unknown fields in the dump."""
    if isinstance(reply, dict):
        return reply
    dump = getattr(reply, "model_dump", None)
    if callable(dump):
        data = dump()
        if isinstance(data, dict):
            return data
    raise _invalid(f"unexpected reply of type {type(reply).__name__}")


def _invalid(message: str) -> ProviderError:
    return ProviderError(
        f"unusable reply from the AI provider: {message}", "invalid_response", False
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float | None:
    """``value`` as a float when it is a finite JSON number (not a bool), else None."""
    return float(value) if _finite(value) else None


def _count(value: Any) -> int:
    """A token count from a reply: a non-negative int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
