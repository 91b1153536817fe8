"""Alerts: health rules (``rules``), their lifecycle (``lifecycle``), stored alerts as read
(``queries``) and notifications (``notify``: the live stream and the webhook).

``from voicewatch.alerts import check_health, list_alerts, ...`` keeps working; the
thresholds are ``config.AlertThresholds`` (read from ``VOICEWATCH_ALERT_*`` by
``config.py``), re-exported here.
"""

from __future__ import annotations

from voicewatch.alerts.lifecycle import AlertNotFound, HealthReport, acknowledge, check_health
from voicewatch.alerts.queries import STATES, alert_to_dict, count_active, get_alert, list_alerts
from voicewatch.alerts.rules import RULES, AlertKind, Finding, Rule, RuleResult, Severity
from voicewatch.config import AlertThresholds

__all__ = [
    "RULES",
    "STATES",
    "AlertKind",
    "AlertNotFound",
    "AlertThresholds",
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
