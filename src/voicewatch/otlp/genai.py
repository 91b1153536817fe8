"""GenAI spans: what an AI call used and cost, from its span's attributes.

The OpenTelemetry GenAI conventions name the model and tokens
``gen_ai.request.model`` / ``gen_ai.response.model`` and
``gen_ai.usage.input_tokens`` / ``output_tokens``; instrumentations still in
use send older spellings (``gen_ai.usage.prompt_tokens`` /
``completion_tokens``, OpenLLMetry's ``llm.usage.*``, OpenInference's
``llm.model_name`` and ``llm.token_count.*``), so each figure is looked up
under every name, the current one first. The cost comes from our price table
(``pipeline.costs``) unless the sender gives ``gen_ai.usage.cost``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from voicewatch.otlp.spans import GENAI_KEYS
from voicewatch.pipeline import costs

_MODEL_KEYS = (
    "gen_ai.response.model",
    "llm.response.model",
    "gen_ai.request.model",
    "llm.request.model",
    "llm.model_name",
)
_INPUT_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.usage.prompt_tokens",
    "llm.token_count.prompt",
)
_OUTPUT_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
    "llm.token_count.completion",
)
_OPERATION_KEYS = ("gen_ai.operation.name", "llm.request.type")
_MAX_TOKENS = 2**31 - 1
_OPERATION_MAX_LEN = 64  # ai_usage_log.operation
_MODEL_MAX_LEN = 128  # ai_usage_log.model


class BadUsage(ValueError):
    """A GenAI span whose usage cannot be priced or stored; the message says why."""


@dataclass(frozen=True)
class Call:
    """One AI call: ``cost`` in USD."""

    operation: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float


def _first(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _tokens(attributes: dict[str, Any], keys: tuple[str, ...], name: str) -> int:
    value = _first(attributes, keys)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadUsage(f"{name} tokens must be a number")
    if value < 0 or value > _MAX_TOKENS or value != int(value):
        raise BadUsage(f"{name} tokens must be a whole number between 0 and {_MAX_TOKENS}")
    return int(value)


def is_genai(attributes: dict[str, Any]) -> bool:
    """True when the span describes an AI call (it names a GenAI operation, model or usage)."""
    return not GENAI_KEYS.isdisjoint(attributes)


def call_of(attributes: dict[str, Any]) -> Call:
    """The AI call a GenAI span describes; ``BadUsage`` when it cannot be priced."""
    model = _first(attributes, _MODEL_KEYS)
    if not isinstance(model, str) or not model:
        raise BadUsage("a GenAI span must name its model (gen_ai.response.model)")
    if len(model) > _MODEL_MAX_LEN:
        raise BadUsage(f"the GenAI model name is longer than {_MODEL_MAX_LEN} characters")
    input_tokens = _tokens(attributes, _INPUT_KEYS, "input")
    output_tokens = _tokens(attributes, _OUTPUT_KEYS, "output")
    given = attributes.get("gen_ai.usage.cost")
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int | float):
            raise BadUsage("gen_ai.usage.cost must be a number (USD)")
        if not math.isfinite(given) or not 0 <= given <= 1e6:
            raise BadUsage("gen_ai.usage.cost must be between 0 and 1,000,000 USD")
        cost = round(float(given), 12)
    else:
        try:
            cost = costs.cost_of(model, input_tokens, output_tokens)
        except costs.UnknownModel as exc:
            raise BadUsage(f"{exc}; or send gen_ai.usage.cost") from exc
    operation = _first(attributes, _OPERATION_KEYS)
    operation = operation if isinstance(operation, str) and operation else "chat"
    return Call(operation[:_OPERATION_MAX_LEN], model, input_tokens, output_tokens, cost)
