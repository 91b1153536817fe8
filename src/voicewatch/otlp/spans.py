"""The span as the mapping sees it: one plain value, whichever encoding it came in.

Only the attributes the mapping reads are kept (``voicewatch.*``, the GenAI
usage keys, the exception keys), so a span with 10,000 other attributes costs
no more to carry than one with none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: OTLP ``Status.code``: 0 unset, 1 ok, 2 error.
STATUS_ERROR = 2

#: GenAI usage keys, current and older spellings (OpenLLMetry, OpenInference, OpenLIT).
GENAI_KEYS: frozenset[str] = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.system",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.prompt_tokens",
        "gen_ai.usage.completion_tokens",
        "gen_ai.usage.cost",
        "llm.request.type",
        "llm.request.model",
        "llm.response.model",
        "llm.model_name",
        "llm.usage.prompt_tokens",
        "llm.usage.completion_tokens",
        "llm.token_count.prompt",
        "llm.token_count.completion",
    }
)
EXCEPTION_KEYS: frozenset[str] = frozenset({"exception.message", "exception.type"})
VOICEWATCH_PREFIX = "voicewatch."


def wanted(key: str) -> bool:
    """True for an attribute the mapping reads; the rest are dropped while decoding."""
    return key.startswith(VOICEWATCH_PREFIX) or key in GENAI_KEYS


@dataclass(slots=True)
class Span:
    """One decoded span. Ids are lowercase hex; times are Unix nanoseconds (UTC)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int = 0
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    #: the first ``exception`` event's ``exception.message`` / ``exception.type``
    exception: dict[str, Any] = field(default_factory=dict)
    #: ``(trace_id, span_id)``, made once: the mapping looks spans up by it many times
    key: tuple[str, str] = field(init=False)
    #: it carries a GenAI attribute (an AI call: see genai.py)
    is_genai: bool = field(init=False)

    def __post_init__(self) -> None:
        self.key = (self.trace_id, self.span_id)
        self.is_genai = not GENAI_KEYS.isdisjoint(self.attributes)


@dataclass
class Decoded:
    """A request's spans, and the spans refused while decoding (one line each)."""

    spans: list[Span] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
