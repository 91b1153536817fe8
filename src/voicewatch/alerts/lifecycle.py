"""The alert lifecycle: raise, dedupe, escalate, acknowledge, resolve.

``check_health`` (run every 5 minutes by the worker, or by hand with
``voicewatch check-health``) evaluates every rule (``alerts.rules``) and
reconciles the result with the stored alerts:

* a rule that holds and has no active alert of its kind and scope raises one;
* a rule that holds with a higher severity than its active alert escalates
  that alert in place (warning -> critical): one alert, not two. Severity
  never drops while the alert stays active: a failure rate that fell from 30%
  to 15% is still the same incident, and it peaked critical;
* an active alert whose rule no longer holds is resolved (``state`` resolved,
  ``resolved_at`` set, ``active_key`` NULL);
* a rule that could not be evaluated (its query failed) changes nothing of
  its kind: an outage of the check is not a recovery.

"One active alert per kind and scope" is the database's job, not this
module's: ``voice_pipeline_alerts`` has a unique key on (alert_kind, scope,
active_key) where ``active_key`` is "1" while active and NULL once resolved
(NULLs never collide), and alerts are inserted with ``ON CONFLICT DO
NOTHING``. So two processes running the check at once raise one alert; the
loser finds the winner's alert and only escalates it if it must. Each change
is its own short transaction, guarded by its expected current state, so a
notification goes out once per change, from the process that made it.

Every raised, escalated and resolved alert is handed to the notification hook
(``alerts.notify``): the live stream for the dashboard and the optional
webhook. Notification never blocks or fails the check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from voicewatch import clock
from voicewatch.alerts.notify import ACKNOWLEDGED, ESCALATED, RAISED, RESOLVED, Notifier
from voicewatch.alerts.notify import default_notifier as _default_notifier
from voicewatch.alerts.queries import active_by_key, alert_to_dict, list_alerts, load_active
from voicewatch.alerts.rules import RULES, AlertKind, Finding, Rule, Severity
from voicewatch.config import AlertThresholds, Settings
from voicewatch.store import write_transaction
from voicewatch.store.tables import voice_pipeline_alerts as alerts_t

log = logging.getLogger("voicewatch.alerts")

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertNotFound(LookupError):
    """No alert has this id."""

    def __init__(self, alert_id: int) -> None:
        super().__init__(f"unknown alert {alert_id}")
        self.alert_id = alert_id


@dataclass
class HealthReport:
    """What one health check changed, and what is active afterwards (alert dicts)."""

    raised: list[dict[str, Any]] = field(default_factory=list)
    escalated: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    active: list[dict[str, Any]] = field(default_factory=list)
    #: rule kind -> error, for rules that could not be evaluated this time
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "raised": self.raised,
            "escalated": self.escalated,
            "resolved": self.resolved,
            "active": self.active,
            "errors": self.errors,
        }

    def lines(self) -> list[str]:
        """One line per change, for ``voicewatch check-health``."""
        out = []
        for change, items in (
            (RAISED, self.raised), (ESCALATED, self.escalated), (RESOLVED, self.resolved)
        ):  # fmt: skip
            for a in items:
                scope = a["scope"] or "platform"
                out.append(
                    f"{change:<9} {a['severity']:<8} {a['alert_kind']} [{scope}] {a['message']}"
                )
        for kind, error in sorted(self.errors.items()):
            out.append(f"error     rule {kind} could not run: {error}")
        out.append(f"{len(self.active)} active alert{'s' if len(self.active) != 1 else ''}")
        return out


def _dumps(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def _raise(engine: Engine, finding: Finding, now: int) -> dict[str, Any] | None:
    """Insert the finding as an active alert; None when one of its kind and scope exists."""
    with write_transaction(engine) as conn:
        stmt = (
            _insert(conn)(alerts_t)
            .values(
                alert_kind=finding.kind.value,
                scope=finding.scope,
                severity=finding.severity.value,
                message=finding.message,
                details=_dumps(finding.details),
                state="active",
                active_key="1",
                raised_at=now,
            )
            .on_conflict_do_nothing(index_elements=["alert_kind", "scope", "active_key"])
            .returning(alerts_t.c.id)
        )
        new_id = conn.execute(stmt).scalar()
        if new_id is None:
            return None
        row = conn.execute(select(alerts_t).where(alerts_t.c.id == new_id)).one()
    return alert_to_dict(row)


def _guarded_update(
    engine: Engine, alert_id: int, guard: list[Any], values: dict[str, Any]
) -> dict[str, Any] | None:
    """Update one alert if it still matches ``guard``; the updated alert, or None."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(alerts_t).where(alerts_t.c.id == alert_id, *guard).values(**values)
        )
        if not result.rowcount:
            return None
        row = conn.execute(select(alerts_t).where(alerts_t.c.id == alert_id)).one()
    return alert_to_dict(row)


def _escalate(
    engine: Engine, alert: dict[str, Any], finding: Finding, now: int
) -> dict[str, Any] | None:
    """Raise the severity of an active alert in place; None if it changed meanwhile.

    The message and details become the new finding's, plus when it escalated
    and from what (the table has no column for it; the dashboard shows it).
    """
    details = {**finding.details, "escalated_at": now, "escalated_from": alert["severity"]}
    return _guarded_update(
        engine,
        alert["id"],
        [alerts_t.c.state == "active", alerts_t.c.severity == alert["severity"]],
        {
            "severity": finding.severity.value,
            "message": finding.message,
            "details": _dumps(details),
        },
    )


def _resolve(engine: Engine, alert_id: int, now: int) -> dict[str, Any] | None:
    return _guarded_update(
        engine,
        alert_id,
        [alerts_t.c.state == "active"],
        {"state": "resolved", "active_key": None, "resolved_at": now},
    )


def _rank(severity: str) -> int:
    try:
        return _RANK[Severity(severity)]
    except ValueError:
        return 0


def check_health(
    engine: Engine,
    now_ms: int | None = None,
    thresholds: AlertThresholds | None = None,
    *,
    notifier: Notifier | None = None,
    rules: Mapping[AlertKind, Rule] | None = None,
) -> HealthReport:
    """Run every rule once and bring the stored alerts in line; idempotent.

    ``thresholds`` default to the settings' (``Settings.alert_thresholds``,
    read by ``config.py``); ``notifier`` to the process-wide one (live stream
    + the settings' webhook);
    ``rules`` to ``RULES``. A rule that raises is logged and reported in
    ``errors``, and its kind's alerts are left as they are.
    """
    now = clock.now_ms() if now_ms is None else now_ms
    t = thresholds if thresholds is not None else Settings.from_env().alert_thresholds
    report = HealthReport()
    wanted: dict[tuple[str, str], Finding] = {}
    held: set[tuple[str, str]] = set()
    evaluated: set[str] = set()
    for kind, rule in (rules if rules is not None else RULES).items():
        try:
            result = rule(engine, now, t)
        except Exception as exc:
            log.exception("alert rule %s failed", kind.value)
            report.errors[kind.value] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        evaluated.add(kind.value)
        for finding in result.findings:
            wanted[(finding.kind.value, finding.scope)] = finding
        held |= {(kind.value, scope) for scope in result.held}

    active = active_by_key(engine)
    for key, finding in sorted(wanted.items()):
        alert = active.get(key)
        if alert is None:
            raised = _raise(engine, finding, now)
            if raised is not None:
                report.raised.append(raised)
                continue
            # another process raised it since we looked: treat it as ours to escalate
            alert = load_active(engine, *key)
            if alert is None:
                continue  # ...and it was resolved meanwhile; the next run decides
        if _rank(finding.severity) > _rank(alert["severity"]):
            escalated = _escalate(engine, alert, finding, now)
            if escalated is not None:
                report.escalated.append(escalated)
    for key, alert in sorted(active.items()):
        if key[0] in evaluated and key not in wanted and key not in held:
            resolved = _resolve(engine, alert["id"], now)
            if resolved is not None:
                report.resolved.append(resolved)

    report.active = list_alerts(engine, state="active", limit=10_000)
    _notify(notifier, RAISED, report.raised)
    _notify(notifier, ESCALATED, report.escalated)
    _notify(notifier, RESOLVED, report.resolved)
    return report


def _notify(notifier: Notifier | None, change: str, alerts: list[dict[str, Any]]) -> None:
    """Hand each change to the hook; a failing hook never fails the caller."""
    if not alerts:
        return
    try:
        hook = notifier if notifier is not None else _default_notifier()
        for alert in alerts:
            hook.alert_changed(change, alert)
    except Exception:
        log.exception("alert notification failed")


def acknowledge(
    engine: Engine,
    alert_id: int,
    by: str,
    now_ms: int | None = None,
    *,
    notifier: Notifier | None = None,
) -> dict[str, Any]:
    """Record who acknowledged an alert and when; returns the alert.

    Acknowledging says "someone is on it"; it does not resolve: the alert stays
    active until its condition clears. The first acknowledgement wins:
    acknowledging again (or two people at once) keeps the first who and when.

    :raises AlertNotFound: when no alert has ``alert_id``.
    :raises ValueError: when ``by`` is empty.
    """
    who = (by or "").strip()[:320]
    if not who:
        raise ValueError("who acknowledges the alert must be named")
    now = clock.now_ms() if now_ms is None else now_ms
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(alerts_t)
            .where(alerts_t.c.id == alert_id, alerts_t.c.acknowledged_at.is_(None))
            .values(acknowledged_by=who, acknowledged_at=now)
        )
        changed = bool(result.rowcount)
        row = conn.execute(select(alerts_t).where(alerts_t.c.id == alert_id)).first()
    if row is None:
        raise AlertNotFound(alert_id)
    alert = alert_to_dict(row)
    if changed:
        _notify(notifier, ACKNOWLEDGED, [alert])
    return alert
