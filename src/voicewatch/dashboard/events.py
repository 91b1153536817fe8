"""The ``/events`` page: the event log, newest first, with names, summaries and export filters.

The route calls ``events_page`` and renders its dict; "Load more" renders the
same dict's rows. Times are UTC epoch ms; the page's dates are UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from voicewatch import event_queries, model
from voicewatch.dashboard import filters as page
from voicewatch.dashboard.filters import BadFilter, day_range
from voicewatch.dashboard.summary import event_summary, kind
from voicewatch.names import names, organization_choices

_STAGE_ORDER = [s.value for s in model.Stage]


@dataclass(frozen=True)
class EventQuery:
    event_types: tuple[str, ...] = ()
    pipeline_stage: str = ""
    organization_id: str = ""
    artifact_id: str = ""
    errors_only: bool = False
    date_from: str = ""
    date_to: str = ""
    cursor: str = ""

    def to_filter(self) -> event_queries.EventFilter:
        unknown = [t for t in self.event_types if t not in model.EVENT_TYPE_NAMES]
        if unknown:
            raise BadFilter(f"unknown event type: {unknown[0][:64]}")
        if self.pipeline_stage and self.pipeline_stage not in _STAGE_ORDER:
            raise BadFilter(f"unknown stage: {self.pipeline_stage[:64]}")
        since, until = day_range(self.date_from, self.date_to)
        return event_queries.EventFilter(
            event_types=self.event_types,
            pipeline_stage=self.pipeline_stage or None,
            organization_id=self.organization_id or None,
            artifact_id=self.artifact_id.strip() or None,
            errors_only=self.errors_only,
            since=since,
            until=until,
        )

    def params(self) -> list[tuple[str, str]]:
        """The page's own query parameters (repeatable ``event_type``)."""
        out = [("event_type", t) for t in self.event_types]
        for key, value in (
            ("pipeline_stage", self.pipeline_stage),
            ("organization_id", self.organization_id),
            ("artifact_id", self.artifact_id.strip()),
            ("errors_only", "1" if self.errors_only else ""),
            ("from", self.date_from),
            ("to", self.date_to),
        ):
            if value:
                out.append((key, value))
        return out


def _api_event_params(f: event_queries.EventFilter) -> list[tuple[str, str]]:
    """The same filters as ``/api/v1/events(.csv)`` takes them (times in epoch ms)."""
    out = [("event_type", t) for t in f.event_types]
    for key, value in (
        ("pipeline_stage", f.pipeline_stage),
        ("organization_id", f.organization_id),
        ("artifact_id", f.artifact_id),
        ("errors_only", "true" if f.errors_only else None),
        ("since", f.since),
        ("until", f.until),
    ):
        if value is not None:
            out.append((key, str(value)))
    return out


def _decorate_events(engine: Engine, items: list[dict[str, Any]]) -> None:
    orgs, _users = names(engine, (e.get("organization_id") for e in items), ())
    for item in items:
        item["payload"] = dict(item)  # the event as stored and served by the API
        item["organization_name"] = orgs.get(item.get("organization_id") or "", None)
        item["details"] = event_summary(item)
        item["kind"] = kind(item["event_type"])


def events_page(engine: Engine, query: EventQuery, *, limit: int | None = None) -> dict[str, Any]:
    """The event log, newest first, with names, one-line details and the export filters."""
    limit = limit or page.PAGE_SIZE
    filters = query.to_filter()
    try:
        items, next_cursor = event_queries.recent_events(
            engine, filters, limit=limit, cursor=query.cursor or None
        )
    except event_queries.CursorError as exc:
        raise BadFilter("invalid cursor") from exc
    _decorate_events(engine, items)
    orgs = organization_choices(engine)
    api_params = _api_event_params(filters)
    return {
        "query": query,
        "items": items,
        "next_cursor": next_cursor,
        "page_params": query.params(),
        "api_params": api_params,
        "organizations": orgs,
        "event_types": [t.name for t in model.EVENT_TYPES],
        "stages": _STAGE_ORDER,
        # what the live updates need to tell whether a new event matches the filters
        "live": {
            "event_types": list(filters.event_types),
            "pipeline_stage": filters.pipeline_stage,
            "organization_id": filters.organization_id,
            "artifact_id": filters.artifact_id,
            "errors_only": filters.errors_only,
            "since": filters.since,
            "until": filters.until,
            "failure_types": sorted(model.FAILURE_EVENT_TYPES),
            "kinds": {t.name: t.kind.value for t in model.EVENT_TYPES},
            "org_names": {o["id"]: o["name"] for o in orgs},
            "paused": bool(query.cursor),
        },
    }
