"""Insight drafts: one per resolved claim, for the coach to confirm or reject."""

from __future__ import annotations

from typing import Any

_TOPIC_TITLES = {
    "injury": "Injury update",
    "wellbeing": "Wellbeing note",
    "performance": "Performance note",
    "skill": "Skill development",
    "attendance": "Attendance",
    "behaviour": "Behaviour",
    "fitness": "Fitness",
    "nutrition": "Nutrition",
    "tactics": "Tactics",
    "selection": "Selection",
    "parent_communication": "Parent communication",
    "goals": "Goal",
    "development_milestone": "Development milestone",
    "match_result": "Match result",
    "general": "Note",
}


def draft_for_claim(claim: dict[str, Any], resolutions: list[dict[str, Any]]) -> dict[str, Any]:
    """A draft insight for ``claim``: its topic, who it is about, and a confidence.

    The confidence is the claim's extraction confidence scaled by how sure the
    name matching was (a claim about nobody in particular keeps its own).
    """
    resolved = [r for r in resolutions if r.get("resolved_entity_id")]
    names = [c["name"] for r in resolved for c in r["candidates"][:1]]
    player_id = next(
        (r["resolved_entity_id"] for r in resolved if r.get("resolved_entity_type") == "player"),
        None,
    )
    match_scores = [min(1.0, (r.get("score") or 100.0) / 100.0) for r in resolved]
    match_confidence = min(match_scores) if match_scores else 1.0
    title = _TOPIC_TITLES.get(claim["topic"], "Note")
    if names:
        title = f"{title}: {', '.join(dict.fromkeys(names))}"
    return {
        "claim_id": claim["claim_id"],
        "player_id": player_id,
        "title": title,
        "body": claim["source_text"],
        "ai_confidence": round(float(claim["extraction_confidence"]) * match_confidence, 4),
    }
