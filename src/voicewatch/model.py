"""The vocabulary of voicewatch: event types, stages, statuses and limits.

One registry that the validator, the metric definitions, the docs and the
dashboard's colour map all read. Nothing here does I/O and nothing here
imports another voicewatch module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Stage(StrEnum):
    """A step of the voice-note pipeline (the event field ``pipeline_stage``)."""

    INGESTION = "ingestion"
    TRANSCRIPTION = "transcription"
    CLAIMS_EXTRACTION = "claims_extraction"
    ENTITY_RESOLUTION = "entity_resolution"
    DRAFT_GENERATION = "draft_generation"
    CONFIRMATION = "confirmation"


class Kind(StrEnum):
    """How an event reads on the dashboard (colour) and in the error filter."""

    INFO = "info"
    SUCCESS = "success"
    FAILURE = "failure"
    WARNING = "warning"


@dataclass(frozen=True)
class EventType:
    """One of the 25 event types of the seed architecture (section 4.1.1)."""

    name: str
    kind: Kind
    stage: Stage | None
    doc: str


EVENT_TYPES: tuple[EventType, ...] = (
    # Artifact lifecycle
    EventType("artifact_received", Kind.INFO, Stage.INGESTION, "A new artifact was created."),
    EventType("artifact_status_changed", Kind.INFO, None, "An artifact moved to a new status."),
    EventType("artifact_completed", Kind.SUCCESS, None, "An artifact finished every stage."),
    EventType("artifact_failed", Kind.FAILURE, None, "An artifact stopped with an error."),
    # Transcription
    EventType("transcription_started", Kind.INFO, Stage.TRANSCRIPTION, "Transcription began."),
    EventType(
        "transcription_completed", Kind.SUCCESS, Stage.TRANSCRIPTION, "A transcript was stored."
    ),
    EventType("transcription_failed", Kind.FAILURE, Stage.TRANSCRIPTION, "Transcription failed."),
    # Claims extraction
    EventType("claims_extraction_started", Kind.INFO, Stage.CLAIMS_EXTRACTION, "Extraction began."),
    EventType("claims_extracted", Kind.SUCCESS, Stage.CLAIMS_EXTRACTION, "Claims were stored."),
    EventType(
        "claims_extraction_failed", Kind.FAILURE, Stage.CLAIMS_EXTRACTION, "Extraction failed."
    ),
    # Entity resolution
    EventType(
        "entity_resolution_started", Kind.INFO, Stage.ENTITY_RESOLUTION, "Name matching began."
    ),
    EventType(
        "entity_resolution_completed",
        Kind.SUCCESS,
        Stage.ENTITY_RESOLUTION,
        "Every mentioned name was resolved.",
    ),
    EventType(
        "entity_needs_disambiguation",
        Kind.WARNING,
        Stage.ENTITY_RESOLUTION,
        "Some names need a person to choose.",
    ),
    # Draft generation and confirmation
    EventType(
        "draft_generation_started", Kind.INFO, Stage.DRAFT_GENERATION, "Drafting insights began."
    ),
    EventType(
        "drafts_generated", Kind.SUCCESS, Stage.DRAFT_GENERATION, "Insight drafts are ready."
    ),
    EventType("draft_confirmed", Kind.SUCCESS, Stage.CONFIRMATION, "A coach confirmed a draft."),
    EventType("draft_rejected", Kind.INFO, Stage.CONFIRMATION, "A coach rejected a draft."),
    # System
    EventType("circuit_breaker_opened", Kind.FAILURE, None, "The AI provider circuit opened."),
    EventType("circuit_breaker_closed", Kind.SUCCESS, None, "The AI provider circuit closed."),
    EventType("retry_initiated", Kind.INFO, None, "Staff started a retry."),
    EventType("retry_succeeded", Kind.SUCCESS, None, "A retry ended well."),
    EventType("retry_failed", Kind.FAILURE, None, "A retry failed again."),
    # Cost
    EventType(
        "budget_threshold_reached", Kind.WARNING, None, "An organization neared its AI budget."
    ),
    EventType("budget_exceeded", Kind.FAILURE, None, "An organization exceeded its AI budget."),
    EventType("rate_limit_hit", Kind.WARNING, None, "A rate limit refused a call."),
)

EVENT_TYPES_BY_NAME: dict[str, EventType] = {t.name: t for t in EVENT_TYPES}
EVENT_TYPE_NAMES: frozenset[str] = frozenset(EVENT_TYPES_BY_NAME)
FAILURE_EVENT_TYPES: frozenset[str] = frozenset(
    t.name for t in EVENT_TYPES if t.kind is Kind.FAILURE
)


@dataclass(frozen=True)
class StageEvents:
    """Which event types start, complete and fail a processing stage.

    Entity resolution and draft generation have no ``*_failed`` type among the
    seed's 25, so their failures are ``artifact_failed`` events that carry the
    stage in ``pipeline_stage``.
    """

    stage: Stage
    started: str
    completed: tuple[str, ...]
    failed: str


PROCESSING_STAGES: tuple[StageEvents, ...] = (
    StageEvents(
        Stage.TRANSCRIPTION,
        "transcription_started",
        ("transcription_completed",),
        "transcription_failed",
    ),
    StageEvents(
        Stage.CLAIMS_EXTRACTION,
        "claims_extraction_started",
        ("claims_extracted",),
        "claims_extraction_failed",
    ),
    StageEvents(
        Stage.ENTITY_RESOLUTION,
        "entity_resolution_started",
        ("entity_resolution_completed", "entity_needs_disambiguation"),
        "artifact_failed",
    ),
    StageEvents(
        Stage.DRAFT_GENERATION,
        "draft_generation_started",
        ("drafts_generated",),
        "artifact_failed",
    ),
)
STAGE_EVENTS: dict[Stage, StageEvents] = {s.stage: s for s in PROCESSING_STAGES}


class ArtifactStatus(StrEnum):
    """Artifact statuses, seed section 3.2."""

    RECEIVED = "received"
    TRANSCRIBING = "transcribing"
    TRANSCRIBED = "transcribed"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class ClaimStatus(StrEnum):
    EXTRACTED = "extracted"
    RESOLVING = "resolving"
    RESOLVED = "resolved"
    NEEDS_DISAMBIGUATION = "needs_disambiguation"
    MERGED = "merged"
    DISCARDED = "discarded"
    FAILED = "failed"


class ResolutionStatus(StrEnum):
    AUTO_RESOLVED = "auto_resolved"
    NEEDS_DISAMBIGUATION = "needs_disambiguation"
    USER_RESOLVED = "user_resolved"
    UNRESOLVED = "unresolved"


class DraftStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    APPLIED = "applied"
    REJECTED = "rejected"
    EXPIRED = "expired"


class TrackedState(StrEnum):
    """Where an artifact stands as seen from its events alone."""

    IN_FLIGHT = "in_flight"
    COMPLETED = "completed"
    FAILED = "failed"


class TokenScope(StrEnum):
    """An API token's scope: ingest may only send events; staff may read too;
    coach is bound to one coach and reaches only that coach's inbox (``/api/v1/coach``)."""

    INGEST = "ingest"
    STAFF = "staff"
    COACH = "coach"


#: The event's top-level fields and what each holds.
EVENT_FIELDS: dict[str, str] = {
    "event_id": "client-made unique id (UUID string); a duplicate is ignored",
    "event_type": "one of the 25 event types",
    "artifact_id": "the artifact the event is about",
    "voice_note_id": "the source voice note",
    "organization_id": "the organization (club)",
    "coach_user_id": "the coach who sent the note",
    "pipeline_stage": "one of the six stages",
    "stage_started_at": "epoch ms, UTC",
    "stage_completed_at": "epoch ms, UTC",
    "duration_ms": "stage duration in milliseconds (>= 0)",
    "previous_status": "status before a transition",
    "new_status": "status after a transition",
    "error_message": "human-readable failure reason",
    "error_code": "machine-readable failure code",
    "metadata": "object with the metadata fields below",
    "timestamp": "when it happened, epoch ms, UTC",
}

#: metadata keys: name -> "int" (a non-negative count), "float" (>= 0), "str".
METADATA_FIELDS: dict[str, str] = {
    "claim_count": "int",
    "entity_count": "int",
    "disambiguation_count": "int",
    "draft_count": "int",
    "confidence_score": "float",
    "transcript_duration": "float",
    "transcript_word_count": "int",
    "ai_model": "str",
    "ai_cost": "float",
    "retry_attempt": "int",
}

ID_MAX_LEN = 128
STATUS_MAX_LEN = 64
ERROR_MESSAGE_MAX_LEN = 4000
ERROR_CODE_MAX_LEN = 128
MAX_BATCH_EVENTS = 1000


#: ``resolved_by`` of an entity resolution that a learned alias decided (a person's
#: choice taught it; see ``pipeline/alias_use.py``).
RESOLVED_BY_ALIAS = "alias"
