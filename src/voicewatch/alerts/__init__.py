"""Alerts: health rules (``rules``), their lifecycle (``lifecycle``), stored alerts as read
(``queries``) and notifications (``notify``: the live stream and the webhook).

Callers import ``check_health``, ``list_alerts``, ... from here; the thresholds are
``config.AlertThresholds`` (read from ``VOICEWATCH_ALERT_*`` by ``config.py``).
"""

from __future__ import annotations

from voicewatch.alerts.lifecycle import AlertNotFound, HealthReport, acknowledge, check_health
from voicewatch.alerts.queries import STATES, alert_to_dict, count_active, get_alert, list_alerts
from voicewatch.alerts.rules import RULES, AlertKind, Finding, Rule, RuleResult, Severity

__all__ = [
    "RULES",
    "STATES",
    "AlertKind",
    "AlertNotFound",
    "Finding",
    "HealthReport",
    "Rule",
    "RuleResult",
    "Severity",
    "acknowledge",
    "alert_to_dict",
    "check_health",
    "count_active",
    "get_alert",
    "list_alerts",
]
