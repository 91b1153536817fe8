"""Spans -> pipeline events and AI calls: the one mapping (the README has it as a table).

A span's role comes from its own ``voicewatch.*`` attributes:

* ``voicewatch.pipeline_stage`` = a processing stage: the stage's ``*_started``
  event at the span's start, and at its end the completion event (or the one
  named by ``voicewatch.event_type``, e.g. ``entity_needs_disambiguation``),
  or on status ERROR the stage's failed event with the exception's message
  and type, followed by ``artifact_failed`` (as the native pipeline does);
* ``voicewatch.event_type`` = any other type: that one event at the span's end;
* ``voicewatch.pipeline_stage`` = ``ingestion``: ``artifact_received`` at its start;
* ``voicewatch.artifact_id`` with none of those, on the highest span of the
  request that carries one (the artifact's span): ``artifact_received`` at
  its start, ``artifact_completed`` or (ERROR) ``artifact_failed`` at its end.

Identity (``artifact_id``, ``organization_id``, ``coach_user_id``,
``voice_note_id``) is inherited from the nearest ancestor span of the same
trace *in the same request* that carries it. GenAI spans become ``Call``s
whose cost is added to the closing event of the nearest span (itself or an
ancestor) that made events, as the pipeline adds a stage's AI cost to its
completion event's ``metadata.ai_cost``.

Event ids are ``otlp.<span start, ms, hex>.<trace id>.<span id>.<start|end>``:
an exporter's retry gives the same ids, hence duplicates (the start time leads
so that ids arrive in about time order: random ids cost the unique index).
The artifact's lifecycle events (received, completed, failed) are keyed by
the trace and the artifact instead of a span (``otlp.<trace id>.a<hash>.<kind>``),
so an artifact has at most one of each per trace however many spans report
it (a failing stage and the artifact span that the exception goes through
both say ``artifact_failed``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from voicewatch import model
from voicewatch.otlp import genai, rows
from voicewatch.otlp.spans import STATUS_ERROR, Span

IDENTITY: dict[str, str] = {
    "artifact_id": "voicewatch.artifact_id",
    "organization_id": "voicewatch.organization_id",
    "coach_user_id": "voicewatch.coach_user_id",
    "voice_note_id": "voicewatch.voice_note_id",
}
_STAGES = {s.value: s for s in model.Stage}
#: The processing stages' event types, by the stage's name.
_KINDS: dict[str, model.StageEvents] = {s.stage.value: s for s in model.PROCESSING_STAGES}
_IDENTITY_ATTRS = tuple(IDENTITY.items())
_MAX_DEPTH = 1000


@dataclass
class Usage:
    """An AI call to record once its carrier event is stored (``created_at`` epoch ms)."""

    span: tuple[str, str]
    carrier_event_id: str
    organization_id: str | None
    artifact_id: str | None
    call: genai.Call
    created_at: int


@dataclass
class Mapped:
    """What a request's spans became."""

    events: list[dict[str, Any]] = field(default_factory=list)
    #: the span each event came from, by index in ``events``
    event_spans: list[tuple[str, str]] = field(default_factory=list)
    #: indexes in ``events`` of the rows ``rows.stage_rows`` built (checked already)
    checked: set[int] = field(default_factory=set)
    usages: list[Usage] = field(default_factory=list)
    #: spans accepted that map to nothing (counted, not errors)
    unmapped: int = 0
    #: GenAI spans with no span above them that made events (their usage is not recorded)
    orphan_calls: int = 0
    #: spans refused by the mapping, with why
    rejected: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(slots=True)
class _Context:
    """What a span inherits from its ancestors in the request."""

    identity: dict[str, Any]
    artifact_above: bool  # a strict ancestor carries its own voicewatch.artifact_id
    carrier: dict[str, Any] | None  # the closing event of the nearest span that made events
    depth: int


#: The context above a span whose parent is not in the request (never changed).
_TOP = _Context({}, False, None, -1)


def _role(span: Span, artifact_above: bool) -> str:
    attrs = span.attributes
    stage = attrs.get("voicewatch.pipeline_stage")
    event_type = attrs.get("voicewatch.event_type")
    if (
        isinstance(stage, str)
        and stage in _KINDS
        and (event_type is None or event_type in _KINDS[stage].completed)
    ):
        return "stage"
    if event_type is not None:
        return "event"
    if stage == model.Stage.INGESTION.value:
        return "ingestion"
    if attrs.get("voicewatch.artifact_id") is not None and not artifact_above:
        return "artifact"
    return "none"


def _lifecycle_id(trace_id: str, artifact_id: Any, kind: str) -> str:
    digest = hashlib.sha1(str(artifact_id).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"otlp.{trace_id}.a{digest}.{kind}"


def _error_fields(span: Span) -> dict[str, Any]:
    exc = span.exception
    message = exc.get("exception.message") or span.status_message or "the span ended in ERROR"
    code = span.attributes.get("voicewatch.error_code") or exc.get("exception.type") or "error"
    return {
        "error_message": str(message)[: model.ERROR_MESSAGE_MAX_LEN],
        "error_code": str(code)[: model.ERROR_CODE_MAX_LEN],
    }


_METADATA_ATTRS = tuple((f"voicewatch.{key}", key) for key in model.METADATA_FIELDS)
_METADATA_KEYS = frozenset(attr for attr, _ in _METADATA_ATTRS)


def _metadata(span: Span) -> dict[str, Any] | None:
    attrs = span.attributes
    if _METADATA_KEYS.isdisjoint(attrs):
        return None  # the common stage span: identity, stage, no metadata (checked in C)
    found = {key: attrs[attr] for attr, key in _METADATA_ATTRS if attrs.get(attr) is not None}
    return found or None


class _Builder:
    """Collects a request's events in the order they happened."""

    def __init__(self, rows: bool) -> None:
        self.out = Mapped()
        #: plain stage spans become checked rows (``rows``), not events to validate
        self.rows = rows
        #: (time ns, at end, depth order, arrival, is a checked row, span key, event): one
        #: flat tuple per event, sorted as it is (arrival is unique: comparisons stop there)
        self._pending: list[tuple[int, int, int, int, bool, tuple[str, str], dict[str, Any]]] = []

    def add(
        self, span: Span, depth: int, at_end: bool, event: dict[str, Any], row: bool = False
    ) -> dict[str, Any]:
        """Add ``event`` (or with ``row``, a row from ``rows.stage_rows``)."""
        # Same nanosecond: a parent starts before its child and ends after it.
        pending = self._pending
        if at_end:
            pending.append((span.end_ns, 1, -depth, len(pending), row, span.key, event))
        else:
            pending.append((span.start_ns, 0, depth, len(pending), row, span.key, event))
        return event

    def finish(self) -> Mapped:
        # None values are fine as they are: the validator reads None as "absent".
        self._pending.sort()
        self.out.events = [item[6] for item in self._pending]
        self.out.event_spans = [item[5] for item in self._pending]
        self.out.checked = {i for i, item in enumerate(self._pending) if item[4]}
        return self.out


def _events_of(span: Span, role: str, ctx: _Context, build: _Builder) -> dict[str, Any] | None:
    """Add ``span``'s events; returns its closing event (the carrier of AI cost), if any."""
    start_ms, end_ms = span.start_ns // 1_000_000, span.end_ns // 1_000_000
    # The span's start (ms, hex) leads so that ids arrive in about time order and land
    # at one end of the unique index, as the SDK's do; it is the span's own, so a
    # retry of the span gives the same id.
    prefix = f"otlp.{start_ms:011x}.{span.trace_id}.{span.span_id}"
    failed = span.status_code == STATUS_ERROR
    metadata = _metadata(span)
    if role == "stage" and not failed and metadata is None and build.rows:
        closing = _stage_rows(span, ctx, build, prefix)
        if closing is not None:
            return closing
    base = {**ctx.identity}
    timed = {
        "stage_started_at": start_ms,
        "stage_completed_at": end_ms,
        "duration_ms": round((span.end_ns - span.start_ns) / 1_000_000, 3),
        "timestamp": end_ms,
        "metadata": metadata,
    }
    if role in ("ingestion", "artifact"):
        return _artifact_events(span, role, ctx, build, base, timed, failed)
    if role == "event":
        event_type = span.attributes.get("voicewatch.event_type")
        stage = span.attributes.get("voicewatch.pipeline_stage")
        closing = {
            **base,
            **timed,
            **(_error_fields(span) if failed else {}),
            "event_id": f"{prefix}.end",
            "event_type": event_type,
            "pipeline_stage": stage,
        }
        return build.add(span, ctx.depth, True, closing)
    return _stage_events(span, ctx, build, base, timed, failed, prefix)


def _artifact_events(
    span: Span,
    role: str,
    ctx: _Context,
    build: _Builder,
    base: dict[str, Any],
    timed: dict[str, Any],
    failed: bool,
) -> dict[str, Any] | None:
    """An artifact's (or ingestion's) span: ``artifact_received``, then how it ended."""
    artifact_id = ctx.identity.get("artifact_id")
    start_ms = span.start_ns // 1_000_000
    build.add(
        span,
        ctx.depth,
        False,
        {
            **base,
            "event_id": _lifecycle_id(span.trace_id, artifact_id, "received"),
            "event_type": "artifact_received",
            "pipeline_stage": model.Stage.INGESTION.value,
            "new_status": model.ArtifactStatus.RECEIVED.value,
            "timestamp": start_ms,
        },
    )
    if role == "ingestion":
        return None
    kind = "failed" if failed else "completed"
    closing = {
        **base,
        **timed,
        **(_error_fields(span) if failed else {}),
        "event_id": _lifecycle_id(span.trace_id, artifact_id, kind),
        "event_type": f"artifact_{kind}",
        "new_status": kind,
    }
    return build.add(span, ctx.depth, True, closing)


def _stage_rows(span: Span, ctx: _Context, build: _Builder, prefix: str) -> dict[str, Any] | None:
    """A completed stage span's two events as checked rows (``rows``), if it is the plain case."""
    stage = span.attributes["voicewatch.pipeline_stage"]
    kinds = _KINDS[stage]
    completed = span.attributes.get("voicewatch.event_type") or kinds.completed[0]
    made = rows.stage_rows(
        ctx.identity, prefix, stage, kinds.started, completed, span.start_ns, span.end_ns
    )
    if made is None:
        return None
    build.add(span, ctx.depth, False, made[0], True)
    return build.add(span, ctx.depth, True, made[1], True)


def _stage_events(
    span: Span,
    ctx: _Context,
    build: _Builder,
    base: dict[str, Any],
    timed: dict[str, Any],
    failed: bool,
    prefix: str,
) -> dict[str, Any] | None:
    """A stage's span: its started event, then completed or failed (and the artifact's)."""
    artifact_id = ctx.identity.get("artifact_id")
    end_ms = span.end_ns // 1_000_000
    start_ms = span.start_ns // 1_000_000
    stage = _STAGES[span.attributes["voicewatch.pipeline_stage"]]
    kinds = model.STAGE_EVENTS[stage]
    build.add(
        span,
        ctx.depth,
        False,
        {
            **base,
            "event_id": f"{prefix}.start",
            "event_type": kinds.started,
            "pipeline_stage": stage.value,
            "stage_started_at": start_ms,
            "timestamp": start_ms,
        },
    )
    if not failed:
        completed = span.attributes.get("voicewatch.event_type") or kinds.completed[0]
        closing = {**base, **timed, "event_id": f"{prefix}.end", "event_type": completed}
        closing["pipeline_stage"] = stage.value
        return build.add(span, ctx.depth, True, closing)
    errors = _error_fields(span)
    fail_id = f"{prefix}.end"
    if kinds.failed == "artifact_failed" and artifact_id is not None:
        fail_id = _lifecycle_id(span.trace_id, artifact_id, "failed")
    closing = {**base, **timed, **errors, "event_id": fail_id, "event_type": kinds.failed}
    closing["pipeline_stage"] = stage.value
    build.add(span, ctx.depth, True, closing)
    if kinds.failed != "artifact_failed" and artifact_id is not None:
        build.add(
            span,
            ctx.depth,
            True,
            {
                **base,
                **errors,
                "event_id": _lifecycle_id(span.trace_id, artifact_id, "failed"),
                "event_type": "artifact_failed",
                "pipeline_stage": stage.value,
                "new_status": model.ArtifactStatus.FAILED.value,
                "timestamp": end_ms,
            },
        )
    return closing


def _check_times(span: Span) -> str | None:
    if span.start_ns <= 0 or span.end_ns <= 0:
        return "a span must have a start and an end time"
    if span.end_ns < span.start_ns:
        return "a span must not end before it starts"
    return None


def map_spans(spans: list[Span], *, checked_rows: bool = True) -> Mapped:
    """Map one request's spans (see the module docstring); never raises on span content.

    With ``checked_rows`` (the default) plain completed stage spans give their two
    events as rows (``rows``; their indexes in ``Mapped.checked``), the same rows
    ``log_events`` would make of the events given without it. A request with
    GenAI spans always gets events: their cost is added to a closing event's
    ``metadata``.
    """
    by_key = {span.key: span for span in spans}
    contexts: dict[tuple[str, str], _Context] = {}
    build = _Builder(checked_rows and not any(span.is_genai for span in spans))
    out = build.out
    calls: list[tuple[Span, _Context]] = []
    for span in spans:
        if span.key in contexts:
            continue  # the same span twice in one request: the first one counts
        ctx = _context_of(span, by_key, contexts, build)
        if span.is_genai:
            calls.append((span, ctx))
    for span, ctx in calls:
        if span.key in out.rejected:
            continue
        try:
            call = genai.call_of(span.attributes)
        except genai.BadUsage as exc:
            out.rejected[span.key] = str(exc)
            continue
        carrier = ctx.carrier
        if carrier is None:
            out.orphan_calls += 1
            out.unmapped += 1
            continue
        meta = carrier.setdefault("metadata", None) or {}
        meta["ai_cost"] = round(float(meta.get("ai_cost") or 0.0) + call.cost, 12)
        meta.setdefault("ai_model", call.model)
        carrier["metadata"] = meta
        out.usages.append(
            Usage(
                span.key,
                carrier["event_id"],
                carrier.get("organization_id"),
                carrier.get("artifact_id"),
                call,
                span.end_ns // 1_000_000,
            )
        )
    return build.finish()


def _context_of(
    span: Span,
    by_key: dict[tuple[str, str], Span],
    contexts: dict[tuple[str, str], _Context],
    build: _Builder,
) -> _Context:
    """The span's context, working out its ancestors' first (and their events) as needed."""
    parent_id = span.parent_span_id
    if not parent_id or (span.trace_id, parent_id) not in by_key:
        ctx = contexts[span.key] = _enter(span, _TOP, build)  # the common case: no parent here
        return ctx
    chain: list[Span] = []
    seen: set[tuple[str, str]] = set()
    current: Span | None = span
    while current is not None and current.key not in contexts and current.key not in seen:
        if len(chain) >= _MAX_DEPTH:
            break
        seen.add(current.key)
        chain.append(current)
        parent = current.parent_span_id
        current = by_key.get((current.trace_id, parent)) if parent else None
    above = contexts.get(current.key) if current is not None else None
    if above is None:
        above = _TOP
    for item in reversed(chain):
        above = _enter(item, above, build)
        contexts[item.key] = above
    return contexts[span.key]


def _enter(span: Span, parent: _Context, build: _Builder) -> _Context:
    """A span's own context from its parent's, adding its events to ``build``."""
    attrs = span.attributes
    own: dict[str, Any] = {}
    for field_name, attr in _IDENTITY_ATTRS:  # a loop: a comprehension would allocate
        value = attrs.get(attr)
        if value is not None:
            own[field_name] = value
    identity = {**parent.identity, **own} if own and parent.identity else own or parent.identity
    # Made once and finished below (nothing else holds it yet): the parent's context
    # is shared by its other children and never changed.
    ctx = _Context(identity, parent.artifact_above, parent.carrier, parent.depth + 1)
    role = _role(span, parent.artifact_above)
    problem = _check_times(span)
    if problem is not None:
        build.out.rejected[span.key] = problem
    elif role == "none":
        if not span.is_genai:
            build.out.unmapped += 1
    else:
        closing = _events_of(span, role, ctx, build)
        if closing is not None:
            ctx.carrier = closing
    if attrs.get("voicewatch.artifact_id") is not None:
        ctx.artifact_above = True
    return ctx
