"""Store a decoded OTLP request: events, then AI usage, through the native paths.

Events go through the caller's ``store`` (the server's group commit, i.e.
``events.log_events``): one transaction with their counters and artifact
states, duplicates skipped by event id. AI calls are then recorded with
``costs.record_usage`` and added to the organization's budget with
``budgets.add_spend`` — but only for calls whose carrier event was newly
stored, so an exporter's retry records nothing twice. (If the process died
between the two steps, the cost would be in the counters but not in the
usage log: the order favours never counting twice.)
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from voicewatch import events
from voicewatch.ingest_guard import RESERVED_ERROR, pipeline_artifacts
from voicewatch.otlp import figures
from voicewatch.otlp.mapping import Mapped, map_spans
from voicewatch.otlp.spans import Decoded
from voicewatch.pipeline import budgets, costs

#: ``GroupCommit.store``: items, and the indexes of those that are rows already
Store = Callable[[Sequence[Any], Collection[int]], events.LogResult]
_MESSAGE_MAX = 1000


@dataclass(frozen=True)
class Outcome:
    """What the exporter is told: spans refused and one line about them (or about orphans)."""

    spans: int
    rejected_spans: int
    error_message: str
    events_accepted: int
    events_duplicate: int
    unmapped: int


def clean_line(text: str, limit: int = _MESSAGE_MAX) -> str:
    """One printable line, safe to encode (no lone surrogates, no control characters)."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else " " for c in safe)[:limit]


@dataclass(frozen=True)
class Prepared:
    """A request's spans mapped, without the spans themselves (see ``prepare``)."""

    mapped: Mapped
    spans: int  # spans sent, refused ones included
    refused: list[str]  # why spans were refused while decoding


def prepare(decoded: Decoded) -> Prepared:
    """Map ``decoded``'s spans; never raises for span content.

    A step of its own so that a batch's ``Span`` objects are gone before its
    write, the longest step: pass ``decode(...)`` straight in and keep no
    reference. (Alive through the write, the garbage collector's young
    generations saw them there and promoted them, and a few hundred requests
    of 512 spans made it scan the server's whole heap.)
    """
    return Prepared(
        map_spans(decoded.spans), len(decoded.spans) + len(decoded.rejected), decoded.rejected
    )


def ingest(
    engine: Engine, prepared: Prepared, store: Store, now_ms: int, *, guarded: bool = True
) -> Outcome:
    """Store ``prepared``; never raises for span content (only for the store).

    ``guarded`` (an ingest token sent it): spans about an artifact of the built-in
    pipeline are refused, as ``/api/v1/events`` refuses such events (``ingest_guard``).
    """
    mapped = prepared.mapped
    if guarded:
        _refuse_pipeline_artifacts(engine, mapped)
    problems: dict[tuple[str, str], str] = dict(mapped.rejected)
    result = store(mapped.events, mapped.checked) if mapped.events else events.LogResult()
    for bad in result.rejected:
        key = mapped.event_spans[bad.index]
        problems.setdefault(key, bad.error)
    if mapped.usages:
        _record_calls(engine, mapped, set(result.accepted_ids), problems, store, now_ms)
    figures.add_unmapped(engine, mapped.unmapped, now_ms)
    reasons = [*prepared.refused, *problems.values()]
    rejected = len(prepared.refused) + len(problems)
    message = ""
    if reasons:
        first = reasons[0]
        message = f"{rejected} span(s) refused; first: {first}"
    elif mapped.orphan_calls:
        message = (
            f"{mapped.orphan_calls} GenAI span(s) had no voicewatch span above them in this"
            " request; their usage was not recorded"
        )
    return Outcome(
        spans=prepared.spans,
        rejected_spans=rejected,
        error_message=clean_line(message),
        events_accepted=result.accepted,
        events_duplicate=result.duplicates,
        unmapped=mapped.unmapped,
    )


def _refuse_pipeline_artifacts(engine: Engine, mapped: Mapped) -> None:
    """Drop the events naming a built-in pipeline artifact, and so their AI usage.

    Their ids start with ``otlp.`` and cannot collide with the pipeline's, but
    they would still move that artifact's tracked state and counters, which only
    the pipeline may. One indexed read for the request's distinct artifact ids;
    the common request names none of ours and changes nothing.
    """
    named = {e.get("artifact_id") for e in mapped.events}
    # ours are short ASCII ids ("art_..."): anything else (a lone surrogate too) is not
    candidates = {a for a in named if isinstance(a, str) and a.isascii() and 0 < len(a) <= 128}
    ours = pipeline_artifacts(engine, candidates) if candidates else set()
    if not ours:
        return
    keep: list[int] = []
    for index, event in enumerate(mapped.events):
        if event.get("artifact_id") in ours:
            error = RESERVED_ERROR.format(field="voicewatch.artifact_id")
            mapped.rejected.setdefault(mapped.event_spans[index], error)
        else:
            keep.append(index)
    moved = {old: new for new, old in enumerate(keep)}
    mapped.checked = {moved[i] for i in mapped.checked if i in moved}
    mapped.events = [mapped.events[i] for i in keep]
    mapped.event_spans = [mapped.event_spans[i] for i in keep]


def _record_calls(
    engine: Engine,
    mapped: Mapped,
    fresh: set[str],
    problems: dict[tuple[str, str], str],
    store: Store,
    now_ms: int,
) -> None:
    """Usage rows and budget spend for the calls whose carrier event is new."""
    spend: dict[str, float] = defaultdict(float)
    for usage in mapped.usages:
        if usage.carrier_event_id not in fresh or usage.span in problems:
            continue
        if not usage.organization_id:
            continue  # ai_usage_log and budgets are per organization; the event has the cost
        call = usage.call
        costs.record_usage(
            engine,
            usage.organization_id,
            usage.artifact_id,
            call.operation,
            call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            now_ms=usage.created_at,
            cost_usd=call.cost,
        )
        spend[usage.organization_id] += call.cost
    notices: list[dict[str, Any]] = []

    def emit(event_type: str, **fields: Any) -> None:
        notices.append({"event_id": f"otlp.{uuid.uuid4().hex}", "event_type": event_type, **fields})

    for organization_id, amount in spend.items():
        if amount > 0:
            budgets.add_spend(engine, organization_id, round(amount, 12), now_ms, emit)
    if notices:
        store(notices, ())
