"""The OpenAI client and its failures: one ``ProviderError`` vocabulary for every call.

``make_client`` builds the official client for any OpenAI-compatible endpoint;
``map_error`` turns each of its exceptions into a ``ProviderError`` that says whether
the same call may succeed later; the helpers validate reply data strictly.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2

_TRANSIENT_STATUS = frozenset({408, 409, 429})


class ProviderError(Exception):
    """A provider call failed.

    ``code``: ``timeout``, ``connection_error``, ``rate_limited``, ``server_error``,
    ``unauthorized``, ``forbidden``, ``bad_request``, ``not_found``, ``http_<status>``,
    ``invalid_response``, ``refused``, ``missing_api_key``, ``provider_unavailable``.
    ``transient`` says whether the same call may succeed later; ``status`` is the
    HTTP status when there was one.
    """

    def __init__(
        self, message: str, code: str, transient: bool, *, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_code = code  # the name the pipeline's stage errors use
        self.transient = transient
        self.status = status


def make_client(
    *,
    api_key: str = "",
    base_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> Any:
    """An ``openai.OpenAI`` client for any OpenAI-compatible endpoint.

    The key comes from the settings (``Settings.openai_api_key``: the environment is
    read in ``voicewatch.config`` only); a custom ``base_url`` without a key gets a
    placeholder, since self-hosted servers often need none. Against the real
    API a missing key is a ``ProviderError`` now rather than a 401 later.
    """
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ProviderError(
            "the openai package is not installed: pip install openai",
            "provider_unavailable",
            False,
        ) from exc
    key = api_key
    if not key:
        if not base_url:
            raise ProviderError(
                "no API key: set VOICEWATCH_OPENAI_API_KEY (or OPENAI_API_KEY)",
                "missing_api_key",
                False,
            )
        key = "not-needed"
    return openai.OpenAI(
        api_key=key, base_url=base_url or None, timeout=timeout, max_retries=max_retries
    )


def map_error(exc: BaseException) -> ProviderError:
    """Translate an ``openai`` exception into a ``ProviderError`` (transient or not)."""
    import openai

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError("the AI provider did not answer in time", "timeout", True)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(
            f"cannot reach the AI provider: {_cause(exc)}", "connection_error", True
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _error_detail(exc)
        if status == 429:
            code, transient = "rate_limited", True
        elif status >= 500:
            code, transient = "server_error", True
        elif status == 401:
            code, transient = "unauthorized", False
        elif status == 403:
            code, transient = "forbidden", False
        elif status == 400:
            code, transient = "bad_request", False
        elif status == 404:
            code, transient = "not_found", False
        else:
            code, transient = f"http_{status}", status in _TRANSIENT_STATUS
        return ProviderError(
            f"the AI provider answered {status}: {detail}", code, transient, status=status
        )
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        # the client could not parse the body (json.JSONDecodeError is a ValueError)
        return ProviderError(
            f"the AI provider's reply did not parse: {exc}", "invalid_response", False
        )
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(f"AI provider error: {exc}", "provider_error", False)
    return ProviderError(f"AI provider call failed: {exc!r}", "provider_error", False)


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    return f"{type(inner).__name__}: {inner}" if inner else str(exc)


def _error_detail(exc: Any) -> str:
    """The ``error.message`` of an OpenAI-style error body, else a short text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"][:300]
    return str(getattr(exc, "message", exc))[:300]


def as_dict(reply: Any) -> dict[str, Any]:
    """A reply as plain data: the SDK's pydantic models keep unknown fields in the dump."""
    if isinstance(reply, dict):
        return reply
    dump = getattr(reply, "model_dump", None)
    if callable(dump):
        data = dump()
        if isinstance(data, dict):
            return data
    raise invalid(f"unexpected reply of type {type(reply).__name__}")


def invalid(message: str) -> ProviderError:
    return ProviderError(
        f"unusable reply from the AI provider: {message}", "invalid_response", False
    )


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> float | None:
    """``value`` as a float when it is a finite JSON number (not a bool), else None."""
    return float(value) if finite(value) else None


def count(value: Any) -> int:
    """A token count from a reply: a non-negative int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
