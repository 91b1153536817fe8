"""How one event reads on a page: its kind (the colour) and its one-line summary.

One wording for every place that shows an event in a line: the overview's
activity feed, the live stream, the event log, an artifact's timeline.
"""

from __future__ import annotations

from typing import Any

from voicewatch import event_queries, events, model

#: The five stages of the flow graph, in pipeline order, with their labels.
FLOW_STAGES: tuple[tuple[str, str], ...] = (
    ("ingestion", "Ingestion"),
    ("transcription", "Transcription"),
    ("claims_extraction", "Claims Extraction"),
    ("entity_resolution", "Entity Resolution"),
    ("draft_generation", "Draft Generation"),
)
STAGE_LABELS: dict[str, str] = dict(FLOW_STAGES)


def is_stage(stage: str | None) -> bool:
    """Whether ``stage`` is one of the flow graph's stages (a ``/pipeline/{stage}`` page)."""
    return stage in STAGE_LABELS


def kind(event_type: str) -> str:
    """The event type's kind (success, failure, info, ...): its colour on every page."""
    found = model.EVENT_TYPES_BY_NAME.get(event_type)
    return found.kind.value if found else "info"


def event_summary(event: dict[str, Any]) -> str:
    """The one-line summary of an event (plain text): its figures, status change, cost, error.

    The AI cost is shown only where it is a cost incurred (budget events carry
    a running total in ``ai_cost``, ``events.NOT_COST_BEARING``).
    """
    meta = event.get("metadata") or {}
    parts: list[str] = []
    if meta.get("claim_count") is not None:
        parts.append(f"{meta['claim_count']} claims")
    if meta.get("entity_count") is not None:
        parts.append(f"{meta['entity_count']} entities")
    if meta.get("disambiguation_count"):
        parts.append(f"{meta['disambiguation_count']} need review")
    if meta.get("draft_count") is not None:
        parts.append(f"{meta['draft_count']} drafts")
    if meta.get("confidence_score") is not None:
        parts.append(f"confidence {float(meta['confidence_score']):.2f}")
    if meta.get("transcript_word_count") is not None:
        parts.append(f"{meta['transcript_word_count']} words")
    if meta.get("transcript_duration") is not None:
        parts.append(f"{float(meta['transcript_duration']):.0f}s audio")
    if meta.get("retry_attempt") is not None:
        parts.append(f"attempt {meta['retry_attempt']}")
    if event.get("new_status"):
        parts.append(f"{event.get('previous_status') or '—'} → {event['new_status']}")
    if meta.get("ai_cost") is not None and event.get("event_type") not in events.NOT_COST_BEARING:
        parts.append(f"${float(meta['ai_cost']):.4f}")
    if event.get("error_code"):
        parts.append(f"[{event['error_code']}]")
    if event.get("error_message"):
        parts.append(str(event["error_message"]))
    return " · ".join(parts)


def feed_event(row: Any) -> dict[str, Any]:
    """An event row as the feed and the live stream send it: the event, row id, kind, summary."""
    out = event_queries.event_to_dict(row)
    out["id"] = int(row.id)
    out["kind"] = kind(out["event_type"])
    out["summary"] = event_summary(out)
    return out
