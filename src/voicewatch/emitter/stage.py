"""Stage timing: ``with monitor.stage("transcription", ...) as st:`` emits started, then
completed (with ``duration_ms``) or failed (with the error), and never swallows the
pipeline's exception."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from voicewatch import model
from voicewatch.emitter.log import log

if TYPE_CHECKING:
    from voicewatch.emitter.monitor import Monitor


class StageRun:
    """One timed run of a stage, as handed out by ``Monitor.stage``.

    ``metadata`` (or ``set(...)``) adds metadata to the closing event, e.g.
    ``st.set(claim_count=4, confidence_score=0.9)``; ``fields`` adds top-level
    fields to it. ``completed_event`` picks the completion type where a stage
    has two (``entity_needs_disambiguation``).
    """

    def __init__(
        self,
        monitor: Monitor,
        stage: str | model.Stage,
        *,
        artifact_id: str | None,
        organization_id: str | None,
        fields: dict[str, Any],
    ) -> None:
        self._monitor = monitor
        self.events: model.StageEvents | None
        try:
            self.events = model.STAGE_EVENTS[model.Stage(stage)]
        except Exception:
            # Monitoring never stops a pipeline: run the block unmonitored and say so.
            self.events = None
            monitor._emit_failed()
        self.stage = self.events.stage.value if self.events else str(stage)
        base = {k: v for k, v in fields.items() if v is not None}
        self._id_prefix = base.pop("event_id", None)
        base.pop("timestamp", None)
        base_meta = base.pop("metadata", None)
        self._base_meta: dict[str, Any] = dict(base_meta) if isinstance(base_meta, dict) else {}
        if artifact_id is not None:
            base["artifact_id"] = artifact_id
        if organization_id is not None:
            base["organization_id"] = organization_id
        self._base = base
        self.metadata: dict[str, Any] = dict(self._base_meta)
        self.fields: dict[str, Any] = {}
        self.completed_event: str | None = self.events.completed[0] if self.events else None
        self.started_at: int | None = None
        self.duration_ms: float | None = None
        self._t0 = 0.0

    def set(self, **metadata: Any) -> StageRun:
        """Add metadata to the closing event (``claim_count=...``, ``ai_cost=...``)."""
        self.metadata.update(metadata)
        return self

    def _emit(self, event_type: str, **extra: Any) -> None:
        event = dict(self._base)
        event.update(extra)
        event["pipeline_stage"] = self.stage
        if self._id_prefix:
            event["event_id"] = f"{self._id_prefix}.{event_type}"
        self._monitor.emit(event_type, **event)

    def __enter__(self) -> StageRun:
        try:
            self.started_at = self._monitor._clock()
            self._t0 = self._monitor._timer()
            if self.events is not None:
                self._emit(
                    self.events.started,
                    stage_started_at=self.started_at,
                    timestamp=self.started_at,
                    metadata=self._base_meta or None,
                )
        except Exception:
            self._monitor._emit_failed()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            self._finish(exc)
        except Exception:
            self._monitor._emit_failed()
        return False  # never swallow the pipeline's exception

    async def __aenter__(self) -> StageRun:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    def _finish(self, exc: BaseException | None) -> None:
        if self.events is None:
            return
        ended = self._monitor._clock()
        self.duration_ms = round(max(0.0, (self._monitor._timer() - self._t0) * 1000.0), 3)
        common: dict[str, Any] = {
            "stage_started_at": self.started_at,
            "stage_completed_at": ended,
            "duration_ms": self.duration_ms,
            "timestamp": ended,
            "metadata": self.metadata or None,
        }
        common.update(self.fields)
        if exc is None:
            completed = self.completed_event
            if completed not in self.events.completed:
                log.warning("voicewatch: %r does not complete stage %s", completed, self.stage)
                completed = self.events.completed[0]
            self._emit(completed, **common)
        else:
            self._emit(
                self.events.failed,
                error_message=_error_message(exc),
                error_code=_error_code(exc),
                **common,
            )


def _clean(text: str, limit: int) -> str:
    return text.replace("\x00", "\ufffd")[:limit]


def _error_message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return _clean(text or type(exc).__name__, model.ERROR_MESSAGE_MAX_LEN)


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    if not isinstance(code, str) or not code:
        code = type(exc).__name__
    return _clean(code, model.ERROR_CODE_MAX_LEN)
