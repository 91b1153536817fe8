"""Events about the built-in pipeline's artifacts come from the pipeline alone.

Our pipeline writes its events straight to the store (through the emitter),
with ids made from the artifact (``{artifact_id}.{attempt}.{type}``). Those ids
are predictable, and an ingest client learns artifact ids (``POST
/api/v1/artifacts`` returns one), so without this check it could send
``art_X.0.artifact_completed`` as an ``artifact_failed`` first: accepted, and the
pipeline's real event then dropped as a duplicate, leaving the event log
saying one thing and the artifact table another.

The reserved namespace is therefore every artifact of the built-in pipeline
(a row in ``voice_note_artifacts``): an item sent over HTTP by an ingest token
is refused, with a per-item error, when its ``artifact_id`` names one, or when
its ``event_id`` starts with one followed by ``.`` (the pipeline's own ids).
Other items in the batch still land. Artifact ids are random (80 bits) and
exist before anyone outside can learn them, so no id can be claimed early.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from voicewatch import model
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_note_artifacts
from voicewatch.validation import Invalid

RESERVED_ERROR = (
    "{field} names an artifact of the built-in pipeline; its events come only "
    "from the pipeline, not from ingest tokens"
)
_CHUNK = 500


def _named_artifacts(item: Any) -> list[tuple[str, str]]:
    """(field, artifact id) pairs an item could claim."""
    if not isinstance(item, dict):
        return []
    named = []
    artifact_id = item.get("artifact_id")
    if isinstance(artifact_id, str) and 0 < len(artifact_id) <= model.ID_MAX_LEN:
        named.append(("artifact_id", artifact_id))
    event_id = item.get("event_id")
    if isinstance(event_id, str) and "." in event_id:
        prefix = event_id.partition(".")[0]
        if 0 < len(prefix) <= model.ID_MAX_LEN:
            named.append(("event_id", prefix))
    return named


def pipeline_artifacts(engine: Engine, ids: set[str]) -> set[str]:
    """Which of ``ids`` are artifacts of the built-in pipeline (one indexed read per 500)."""
    found: set[str] = set()
    ordered = sorted(ids)
    with read_connection(engine) as conn:
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            found.update(
                conn.execute(
                    select(voice_note_artifacts.c.artifact_id).where(
                        voice_note_artifacts.c.artifact_id.in_(chunk)
                    )
                ).scalars()
            )
    return found


def split_reserved(
    engine: Engine, items: Sequence[Any]
) -> tuple[list[Any], list[int], list[Invalid]]:
    """(items allowed, their index in ``items``, refusals by index in ``items``)."""
    named = [_named_artifacts(item) for item in items]
    candidates = {artifact for pairs in named for _, artifact in pairs}
    ours = pipeline_artifacts(engine, candidates) if candidates else set()
    kept: list[Any] = []
    origin: list[int] = []
    refused: list[Invalid] = []
    for index, (item, pairs) in enumerate(zip(items, named, strict=True)):
        hit = next((field for field, artifact in pairs if artifact in ours), None)
        if hit is None:
            kept.append(item)
            origin.append(index)
        else:
            refused.append(Invalid(index, RESERVED_ERROR.format(field=hit)))
    return kept, origin, refused
