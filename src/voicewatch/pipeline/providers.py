"""Choosing the transcriber and the claims extractor, and guarding every AI call.

Offline by default (pocketsphinx, the rules extractor); the OpenAI-compatible
provider when configured. Every call to a recogniser or a model goes through
``GuardedCall``: the organization's budget and rate limit are checked, the
service's circuit breaker must allow it, the outcome is recorded on the
breaker, and its usage is costed, logged and added to the day's spend.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.pipeline import budgets, costs, ratelimit
from voicewatch.pipeline.breaker import CircuitBreaker, CircuitOpen
from voicewatch.pipeline.guard import Emit
from voicewatch.pipeline.transcription import Usage

T = TypeVar("T")

#: AI calls an organization may make per minute before rate limiting.
AI_CALLS_PER_MINUTE = 600


class GuardRefused(Exception):
    """A guard rail refused the call (budget spent, rate limited, circuit open)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.error_code = code


class GuardedCall:
    """Runs AI calls for one service behind budget, rate limit and circuit breaker."""

    def __init__(
        self, engine: Engine, service: str, emit: Emit, *, stage: str, settings: Settings
    ) -> None:
        self.engine = engine
        self.service = service
        self.emit = emit
        self.breaker = CircuitBreaker(
            engine,
            service,
            emit=emit,
            pipeline_stage=stage,
            failure_threshold=settings.breaker_failures,
            cooldown_ms=settings.breaker_cooldown_ms,
        )

    def __call__(
        self,
        artifact: dict[str, Any],
        operation: str,
        call: Callable[[], tuple[T, Usage]],
    ) -> tuple[T, float]:
        """Run ``call`` for ``artifact``; returns its result and its cost in USD."""
        org = artifact["organization_id"]
        start = now_ms()
        try:
            budgets.check_budget(self.engine, org, start, emit=self.emit)
        except budgets.BudgetExceeded as exc:
            raise GuardRefused(str(exc), "budget_exceeded") from exc
        if not ratelimit.hit(
            self.engine,
            ratelimit.org_scope(org),
            f"ai_calls:{self.service}",
            AI_CALLS_PER_MINUTE,
            60_000,
            start,
            emit=self.emit,
        ):
            raise GuardRefused(
                f"rate limit of {AI_CALLS_PER_MINUTE} AI calls a minute hit", "rate_limited"
            )
        try:
            self.breaker.require(start)
        except CircuitOpen as exc:
            raise GuardRefused(str(exc), "circuit_open") from exc
        try:
            result, usage = call()
        except Exception as exc:
            self.breaker.record_failure(now_ms(), exc)
            raise
        finished = now_ms()
        self.breaker.record_success(finished, ai_model=usage.model)
        cost = costs.record_usage(
            self.engine,
            org,
            artifact["artifact_id"],
            operation,
            usage.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            audio_seconds=usage.audio_seconds,
            now_ms=finished,
        )
        if cost:
            budgets.add_spend(self.engine, org, cost, finished, self.emit)
        return result, cost


def transcriber_for(
    settings: Settings, engine: Engine, emit: Emit
) -> Callable[[dict[str, Any], list[str]], tuple[Any, float]]:
    """``transcribe(artifact, hints) -> (Transcript, cost)`` for the configured provider."""
    from voicewatch.pipeline.transcription import TextPassthrough

    guarded = GuardedCall(engine, "transcription", emit, stage="transcription", settings=settings)
    passthrough = TextPassthrough()
    recognizer: Any = None

    def transcribe(artifact: dict[str, Any], hints: list[str]) -> tuple[Any, float]:
        nonlocal recognizer
        if artifact["kind"] == "text":
            return passthrough.transcribe_text(artifact["text"] or ""), 0.0
        if recognizer is None:
            recognizer = _audio_transcriber(settings)
        path = Path(artifact["audio_path"] or "")

        def call() -> tuple[Any, Usage]:
            transcript = recognizer.transcribe(path, hints=hints)
            return transcript, Usage(
                model=transcript.model, audio_seconds=float(transcript.duration_seconds or 0.0)
            )

        return guarded(artifact, "transcription", call)

    return transcribe


def _audio_transcriber(settings: Settings) -> Any:
    if settings.transcriber == "openai":
        from voicewatch.pipeline.openai_provider import WhisperTranscriber

        return WhisperTranscriber(
            api_key=settings.openai_api_key, base_url=settings.openai_base_url or None
        )
    from voicewatch.pipeline.transcription import LocalTranscriber

    return LocalTranscriber()


def extractor_for(
    settings: Settings, engine: Engine, emit: Emit
) -> Callable[[dict[str, Any], str, list[str]], tuple[list[Any], float]]:
    """``extract(artifact, text, roster_names) -> (claims, cost)`` for the configured extractor."""
    if settings.extractor != "openai":
        from voicewatch.pipeline.claims import extract_claims
        from voicewatch.pipeline.repository import aliases_for

        def extract_rules(
            artifact: dict[str, Any], text: str, names: list[str]
        ) -> tuple[list[Any], float]:
            # The roster's and the coach's aliases are names too ("Podge injured his ankle").
            nicknames = aliases_for(engine, artifact["coach_user_id"], artifact["organization_id"])
            return extract_claims(text, names, nicknames=sorted(nicknames)), 0.0

        extract_rules.model = "rules"  # type: ignore[attr-defined]
        return extract_rules

    from voicewatch.pipeline.openai_provider import ChatClaimsExtractor

    chat = ChatClaimsExtractor(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url or None,
        model=settings.openai_chat_model,
    )
    guarded = GuardedCall(engine, "claims", emit, stage="claims_extraction", settings=settings)

    def extract_chat(
        artifact: dict[str, Any], text: str, names: list[str]
    ) -> tuple[list[Any], float]:
        def call() -> tuple[list[Any], Usage]:
            return chat.extract(text, names)

        return guarded(artifact, "claims_extraction", call)

    extract_chat.model = settings.openai_chat_model  # type: ignore[attr-defined]
    return extract_chat
