"""Choosing the transcriber and the claims extractor, and guarding every AI call.

Offline by default (Whisper on verified local weights when the ``whisper`` extra is
installed, else pocketsphinx; the rules extractor); the OpenAI-compatible provider
when configured. Every call to a recogniser or a model goes through
``GuardedCall``: the organization's budget and rate limit are checked, the
service's circuit breaker must allow it, the outcome is recorded on the
breaker, and its usage is costed, logged and added to the day's spend.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from voicewatch.clock import now_ms
from voicewatch.config import Settings
from voicewatch.pipeline import budgets, costs, outages, ratelimit
from voicewatch.pipeline.breaker import CircuitBreaker, CircuitOpen
from voicewatch.pipeline.guard import Emit
from voicewatch.pipeline.transcription import Usage
from voicewatch.store.tables import PLATFORM

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: The guarded AI services and the stage each serves (breaker rows, rate limits).
AI_SERVICES: dict[str, str] = {"transcription": "transcription", "claims": "claims_extraction"}

#: ``fail_plan`` prefix of a simulated provider outage (``simulate --outage SERVICE``):
#: the call to that service fails *inside* the guard, so the breaker counts it.
OUTAGE_PREFIX = "outage:"


class GuardRefused(Exception):
    """A guard rail refused the call (budget spent, rate limited, circuit open)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.error_code = code


class RateLimited(GuardRefused):
    """The rate limit refused the call for now: the stage is deferred until ``until_ms``."""

    def __init__(self, message: str, *, now_ms: int, until_ms: int) -> None:
        super().__init__(message, "rate_limited")
        self.now_ms = now_ms
        self.until_ms = until_ms


class ProviderOutage(RuntimeError):
    """A simulated provider outage (``voicewatch simulate --outage``)."""


def prices_for(settings: Settings) -> Mapping[str, costs.ModelPrice]:
    """The price table with the offline models priced by the estimated cost model."""
    return costs.estimated_prices(
        settings.offline_price_audio_minute,
        settings.offline_price_input_1k_tokens,
        settings.offline_price_output_1k_tokens,
    )


class GuardedCall:
    """Runs AI calls for one service behind budget, rate limit and circuit breaker.

    ``clock`` gives the time (epoch ms) the guards judge by; tests pass their own.
    """

    def __init__(
        self,
        engine: Engine,
        service: str,
        emit: Emit,
        *,
        stage: str,
        settings: Settings,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.engine = engine
        self.service = service
        self.emit = emit
        self.clock = clock
        self.default_limit = settings.rate_limit_per_minute
        self.prices = prices_for(settings)
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
        start = self.clock()
        budgeted = self._check_budgets(org, start)
        self._check_rate_limit(org, start)
        try:
            self.breaker.require(start)
        except CircuitOpen as exc:
            raise GuardRefused(str(exc), "circuit_open") from exc
        try:
            self._simulated_outage(artifact, start)
            result, usage = call()
        except Exception as exc:
            self.breaker.record_failure(self.clock(), exc)
            raise
        finished = self.clock()
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
            prices=self.prices,
        )
        for scope in budgeted if cost else ():  # a write only where a budget keeps the spend
            budgets.add_spend(self.engine, scope, cost, finished, self.emit)
        return result, cost

    def _simulated_outage(self, artifact: dict[str, Any], now: int) -> None:
        """``simulate --outage``: this note's first call, or every call in the window, fails."""
        planned = artifact.get("fail_plan") == OUTAGE_PREFIX + self.service
        if (planned and not artifact.get("attempt")) or outages.in_outage(
            self.engine, self.service, now
        ):
            raise ProviderOutage(f"simulated {self.service} provider outage")

    def _check_budgets(self, org: str, now: int) -> list[str]:
        """The organization's daily budget, then the platform-wide one; those that exist."""
        budgeted = []
        for scope in (org, PLATFORM):
            try:
                if budgets.check_budget(self.engine, scope, now, emit=self.emit):
                    budgeted.append(scope)
            except budgets.BudgetExceeded as exc:
                raise GuardRefused(str(exc), "budget_exceeded") from exc
        return budgeted

    def _check_rate_limit(self, org: str, now: int) -> None:
        """Count the call; refused, it raises ``RateLimited`` with when the window opens."""
        limit = ratelimit.limit_for(self.engine, org, self.service, self.default_limit)
        window = ratelimit.MINUTE_MS
        if ratelimit.hit(
            self.engine,
            ratelimit.org_scope(org),
            ratelimit.ai_limit_type(self.service),
            limit,
            window,
            now,
            emit=None,  # the stage says rate_limit_hit per deferred note, with its time
        ):
            return
        until = ratelimit.window_start(now, window) + window
        raise RateLimited(
            f"rate limit of {limit} {self.service} AI calls a minute for {org} reached",
            now_ms=now,
            until_ms=until,
        )


def transcriber_for(
    settings: Settings, engine: Engine, emit: Emit, *, clock: Callable[[], int] = now_ms
) -> Callable[[dict[str, Any], list[str]], tuple[Any, float]]:
    """``transcribe(artifact, hints) -> (Transcript, cost)`` for the configured provider."""
    from voicewatch.pipeline.transcription import TextPassthrough

    guarded = GuardedCall(
        engine, "transcription", emit, stage="transcription", settings=settings, clock=clock
    )
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
    """The recogniser ``transcriber_choice.choose_transcriber`` picks (health says the same)."""
    from voicewatch.pipeline.transcriber_choice import choose_transcriber

    choice = choose_transcriber(settings)
    if choice.engine == "openai":
        from voicewatch.pipeline.openai_provider import WhisperTranscriber

        return WhisperTranscriber(
            api_key=settings.openai_api_key, base_url=settings.openai_base_url or None
        )
    if choice.engine == "whisper" and choice.model_dir is not None:
        from voicewatch.pipeline.whisper import LocalWhisperTranscriber

        return LocalWhisperTranscriber(choice.model_dir, threads=settings.whisper_threads)
    if choice.reason and settings.transcriber != "auto":
        logger.warning("transcriber: %s; using pocketsphinx", choice.reason)
    from voicewatch.pipeline.pocketsphinx import LocalTranscriber

    return LocalTranscriber()


def extractor_for(
    settings: Settings, engine: Engine, emit: Emit, *, clock: Callable[[], int] = now_ms
) -> Callable[[dict[str, Any], str, list[str]], tuple[list[Any], float]]:
    """``extract(artifact, text, roster_names) -> (claims, cost)`` for the configured extractor."""
    if settings.extractor != "openai":
        from voicewatch.pipeline.claims import extract_claims
        from voicewatch.pipeline.clubs import aliases_for

        rules = GuardedCall(
            engine, "claims", emit, stage="claims_extraction", settings=settings, clock=clock
        )

        def extract_rules(
            artifact: dict[str, Any], text: str, names: list[str]
        ) -> tuple[list[Any], float]:
            # The roster's and the coach's aliases are names too ("Podge injured his ankle").
            nicknames = aliases_for(engine, artifact["coach_user_id"], artifact["organization_id"])

            def call() -> tuple[list[Any], Usage]:
                claims = extract_claims(text, names, nicknames=sorted(nicknames))
                return claims, _rules_usage(text, names, claims)

            return rules(artifact, "claims_extraction", call)

        extract_rules.model = "rules"  # type: ignore[attr-defined]
        return extract_rules

    from voicewatch.pipeline.openai_provider import ChatClaimsExtractor

    chat = ChatClaimsExtractor(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url or None,
        model=settings.openai_chat_model,
    )
    guarded = GuardedCall(
        engine, "claims", emit, stage="claims_extraction", settings=settings, clock=clock
    )

    def extract_chat(
        artifact: dict[str, Any], text: str, names: list[str]
    ) -> tuple[list[Any], float]:
        def call() -> tuple[list[Any], Usage]:
            return chat.extract(text, names)

        return guarded(artifact, "claims_extraction", call)

    extract_chat.model = settings.openai_chat_model  # type: ignore[attr-defined]
    return extract_chat


def _rules_usage(text: str, names: list[str], claims: list[Any]) -> Usage:
    """What the rules extractor's work would cost as a chat call (the estimated cost model).

    Input: the note and the roster names the prompt would carry; output: the
    claims as the JSON a model would return.
    """
    reply = json.dumps(
        [
            {"topic": c.topic, "text": c.source_text, "names": list(c.mentioned_names)}
            for c in claims
        ]
    )
    return Usage(
        model="rules",
        input_tokens=costs.estimate_tokens(text + " " + ", ".join(names)),
        output_tokens=costs.estimate_tokens(reply),
    )
