"""What an AI call costs, and the usage log that records every call.

Why: budgets and the dashboard's cost figures need a dollar amount per call,
worked out the same way everywhere. One price table says what each model
charges; ``cost_of`` applies it; ``record_usage`` stores the call's tokens,
audio seconds and cost in ``ai_usage_log`` and returns the cost, so the caller
can hand it on to ``budgets.add_spend`` and to the stage's event
(``metadata.ai_cost``).

Prices (USD) are the public list prices:

* ``whisper-1``: $0.006 per minute of audio (charged pro rata by the second);
* ``gpt-4o-mini``: $0.15 per 1M input tokens, $0.60 per 1M output tokens;
* ``gpt-4o``: $2.50 per 1M input tokens, $10 per 1M output tokens;
* the offline models ``pocketsphinx``, ``faster-whisper-*.en``, ``rules`` and
  ``text`` (a text message needs no transcription) cost nothing.

A model the table does not know raises ``UnknownModel`` rather than costing 0:
a silent zero would let spending escape every budget. A provider's dated
snapshot name (``gpt-4o-mini-2024-07-18``, as the API reports it) is priced as
its base model. Callers with other models pass their own ``prices`` table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import Connection, Engine, func, insert, select

from voicewatch.store import read_connection, write_transaction
from voicewatch.store.tables import ai_usage_log as usage_t


@dataclass(frozen=True)
class ModelPrice:
    """What one model charges, in USD."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0
    audio_per_minute: float = 0.0


#: The models voicewatch uses and what they cost.
PRICES: Mapping[str, ModelPrice] = MappingProxyType(
    {
        "whisper-1": ModelPrice(audio_per_minute=0.006),
        "gpt-4o-mini": ModelPrice(input_per_million=0.15, output_per_million=0.60),
        "gpt-4o": ModelPrice(input_per_million=2.50, output_per_million=10.00),
        "pocketsphinx": ModelPrice(),
        "faster-whisper-tiny.en": ModelPrice(),
        "faster-whisper-base.en": ModelPrice(),
        "faster-whisper-small.en": ModelPrice(),
        "rules": ModelPrice(),
        "text": ModelPrice(),
    }
)

#: Models that run on this machine: no account, no cost.
LOCAL_MODELS: frozenset[str] = frozenset(
    {
        "pocketsphinx",
        "faster-whisper-tiny.en",
        "faster-whisper-base.en",
        "faster-whisper-small.en",
        "rules",
        "text",
    }
)

#: The OpenAI model each offline model stands in for, when it is priced by the
#: estimated cost model (so budgets mean something offline too, e.g. in the demo).
STANDS_IN_FOR: Mapping[str, str] = MappingProxyType(
    {
        "pocketsphinx": "whisper-1",
        "faster-whisper-tiny.en": "whisper-1",
        "faster-whisper-base.en": "whisper-1",
        "faster-whisper-small.en": "whisper-1",
        "rules": "gpt-4o-mini",
    }
)


def estimated_prices(
    audio_per_minute: float, input_per_1k_tokens: float, output_per_1k_tokens: float
) -> Mapping[str, ModelPrice]:
    """``PRICES`` with the offline models given an *estimated* price (USD).

    Why: offline recognisers cost nothing, so with them budgets and cost cards
    would always read $0. Pricing each as the hosted model it replaces (see
    ``STANDS_IN_FOR``) shows what the same traffic would cost online; the
    dashboard labels these figures as estimated.
    """
    for name, value in (
        ("audio_per_minute", audio_per_minute),
        ("input_per_1k_tokens", input_per_1k_tokens),
        ("output_per_1k_tokens", output_per_1k_tokens),
    ):
        _quantity(name, value)
    table = dict(PRICES)
    for local, hosted in STANDS_IN_FOR.items():
        if PRICES[hosted].audio_per_minute:  # a recogniser: priced by the audio minute
            table[local] = ModelPrice(audio_per_minute=audio_per_minute)
        else:  # the claims extractor: priced by the token
            table[local] = ModelPrice(
                input_per_million=input_per_1k_tokens * 1000,
                output_per_million=output_per_1k_tokens * 1000,
            )
    return MappingProxyType(table)


def estimate_tokens(text: str) -> int:
    """Tokens a hosted model would count for ``text``: the usual ~4 characters a token."""
    return (len(text) + 3) // 4


_DATED_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_MODEL_MAX_LEN = 128  # ai_usage_log.model is String(128)


class UnknownModel(LookupError):
    """The price table has no entry for a model, so its cost cannot be counted."""

    def __init__(self, model: str, known: list[str]) -> None:
        self.model = model
        super().__init__(
            f"no price for AI model {model!r}; known models: {', '.join(known)}"
            " (pass prices= to price another model)"
        )

    def __str__(self) -> str:  # LookupError would show the repr of the message
        return str(self.args[0])


def price_of(model: str, prices: Mapping[str, ModelPrice] = PRICES) -> ModelPrice:
    """The price of ``model``, trying its base name when it carries a snapshot date."""
    found = prices.get(model)
    if found is None:
        found = prices.get(_DATED_SNAPSHOT.sub("", model))
    if found is None:
        raise UnknownModel(model, sorted(prices))
    return found


def _quantity(name: str, value: float) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    return number


def cost_of(
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    audio_seconds: float = 0,
    *,
    prices: Mapping[str, ModelPrice] = PRICES,
) -> float:
    """The cost in USD of one call to ``model``.

    Raises ``UnknownModel`` for a model missing from ``prices`` and
    ``ValueError`` for a negative or non-finite quantity.
    """
    price = price_of(model, prices)
    cost = (
        _quantity("input_tokens", input_tokens) * price.input_per_million / 1_000_000
        + _quantity("output_tokens", output_tokens) * price.output_per_million / 1_000_000
        + _quantity("audio_seconds", audio_seconds) * price.audio_per_minute / 60
    )
    # Twelve decimals: far below a billed amount, and no 1e-19 float noise.
    return round(cost, 12)


def record_usage(
    engine: Engine,
    organization_id: str,
    artifact_id: str | None,
    operation: str,
    model: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    audio_seconds: float = 0.0,
    now_ms: int,
    prices: Mapping[str, ModelPrice] = PRICES,
    cost_usd: float | None = None,
) -> float:
    """Price one AI call and append it to ``ai_usage_log``; return its cost in USD.

    ``operation`` names what the call did (``"transcription"``,
    ``"claims_extraction"``, ...). The cost is worked out before anything is
    written, so an unknown model or a bad quantity stores nothing.
    ``cost_usd`` is a cost the caller already knows (an OTLP sender's
    ``gen_ai.usage.cost``, or one priced by ``cost_of``); without it the call
    is priced from ``prices``.
    """
    if not organization_id:
        raise ValueError("organization_id is required")
    if len(model) > _MODEL_MAX_LEN:
        raise ValueError(f"model name is longer than {_MODEL_MAX_LEN} characters")
    if cost_usd is None:
        cost = cost_of(model, input_tokens, output_tokens, audio_seconds, prices=prices)
    else:
        cost = round(_quantity("cost_usd", cost_usd), 12)
    with write_transaction(engine) as conn:
        conn.execute(
            insert(usage_t).values(
                organization_id=organization_id,
                artifact_id=artifact_id,
                operation=operation,
                model=model,
                input_tokens=int(input_tokens),
                output_tokens=int(output_tokens),
                audio_seconds=float(audio_seconds),
                cost_usd=cost,
                created_at=now_ms,
            )
        )
    return cost


def usage_cost(
    bind: Engine | Connection, organization_id: str, start_ms: int, end_ms: int
) -> float:
    """Total logged AI cost of an organization for calls in ``[start_ms, end_ms)``.

    ``bind`` may be a connection, to read inside the caller's transaction.
    """
    stmt = select(func.coalesce(func.sum(usage_t.c.cost_usd), 0.0)).where(
        usage_t.c.organization_id == organization_id,
        usage_t.c.created_at >= start_ms,
        usage_t.c.created_at < end_ms,
    )
    if isinstance(bind, Connection):
        total = bind.execute(stmt).scalar_one()
    else:
        with read_connection(bind) as conn:
            total = conn.execute(stmt).scalar_one()
    return round(float(total), 12)
