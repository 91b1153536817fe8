"""Claims extraction with chat completions and a strict JSON schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voicewatch.pipeline.openai_provider.client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ProviderError,
    as_dict,
    count,
    finite,
    invalid,
    make_client,
    map_error,
)
from voicewatch.pipeline.topics import TOPIC_NAMES, TOPICS
from voicewatch.pipeline.transcription import Usage

DEFAULT_CHAT_MODEL = "gpt-4o-mini"

#: The longest note sent for extraction (characters); a voice note is far shorter.
MAX_NOTE_CHARS = 20_000


@dataclass(frozen=True)
class ExtractedClaim:
    """One atomic claim from the model; the same fields as the rules extractor's ``Claim``."""

    topic: str
    source_text: str
    mentioned_names: tuple[str, ...]
    extraction_confidence: float


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
        data = as_dict(completion)
        usage = _chat_usage(data, self.model)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise invalid("the chat reply has no choices")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise invalid("the chat reply has no message")
        if message.get("refusal"):
            raise ProviderError(
                f"the model refused: {str(message['refusal'])[:200]}", "refused", False
            )
        content = message.get("content")
        if choices[0].get("finish_reason") == "length":
            raise invalid("the chat reply was cut off (finish_reason=length)")
        return parse_claims(content), usage


def parse_claims(content: Any) -> list[ExtractedClaim]:
    """Validate a reply's JSON text against ``CLAIMS_SCHEMA``; ``ProviderError`` if it fails."""
    if not isinstance(content, str) or not content.strip():
        raise invalid("the chat reply is empty")
    try:
        doc = json.loads(content)
    except json.JSONDecodeError as exc:
        raise invalid(f"the chat reply is not JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(doc, dict) or set(doc) != {"claims"} or not isinstance(doc["claims"], list):
        raise invalid('the chat reply is not an object {"claims": [...]}')
    claims: list[ExtractedClaim] = []
    for n, item in enumerate(doc["claims"]):
        where = f"claim {n}"
        if not isinstance(item, dict):
            raise invalid(f"{where} is not an object")
        if set(item) != _CLAIM_KEYS:
            missing, extra = _CLAIM_KEYS - set(item), set(item) - _CLAIM_KEYS
            raise invalid(f"{where}: missing {sorted(missing)}, unexpected {sorted(extra)}")
        topic, source = item["topic"], item["source_text"]
        names, conf = item["mentioned_names"], item["extraction_confidence"]
        if topic not in TOPIC_NAMES:
            raise invalid(f"{where}: unknown topic {str(topic)[:40]!r}")
        if not isinstance(source, str) or not source.strip():
            raise invalid(f"{where}: source_text must be a non-empty string")
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise invalid(f"{where}: mentioned_names must be a list of strings")
        if isinstance(conf, bool) or not finite(conf) or not 0.0 <= conf <= 1.0:
            raise invalid(f"{where}: extraction_confidence must be a number in [0, 1]")
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
        input_tokens=count(prompt_tokens),
        output_tokens=count(completion_tokens),
    )
