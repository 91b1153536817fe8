"""The AI provider: Whisper transcription and chat-completion claims extraction.

Why: offline recognition and rules are the default, but a club that configures an
API gets better transcripts and claims. Everything goes through the official
``openai`` client with a configurable ``base_url``, so any OpenAI-compatible
endpoint works (OpenAI, Azure-style gateways, a local vLLM or LiteLLM server, or
the loopback fake the tests use).

Contract for the caller (``providers.GuardedCall``, which wraps every call in the
circuit breaker, budget and rate limit):

* every call returns what it consumed (``Usage``: model, input and output tokens,
  audio seconds), so it can be costed;
* every failure is a ``ProviderError`` with a machine-readable ``code`` and a
  ``transient`` flag: timeouts, connection failures, 408/409/429 and 5xx are
  transient (worth retrying later, and they count against the circuit breaker);
  400, 401, 403, 404, 422 and a reply we cannot use are not;
* a reply is validated strictly: invalid JSON, a missing field, an unknown topic or
  a confidence outside [0, 1] is an ``invalid_response`` error, never a guess.

The client's own retries (``max_retries``, with backoff that honours
``Retry-After``) happen inside one call; ``timeout`` bounds each attempt.

Three modules: ``client`` (the client, ``ProviderError`` and reply validation),
``whisper`` (transcription) and ``chat`` (claims extraction); every public name is
importable from here.
"""

from voicewatch.pipeline.openai_provider.chat import (
    CLAIMS_SCHEMA,
    DEFAULT_CHAT_MODEL,
    MAX_NOTE_CHARS,
    ChatClaimsExtractor,
    ExtractedClaim,
    parse_claims,
)
from voicewatch.pipeline.openai_provider.client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ProviderError,
    make_client,
    map_error,
)
from voicewatch.pipeline.openai_provider.whisper import (
    DEFAULT_TRANSCRIPTION_MODEL,
    MAX_PROMPT_CHARS,
    MAX_UPLOAD_BYTES,
    WhisperTranscriber,
    hint_prompt,
)

__all__ = [
    "CLAIMS_SCHEMA",
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TRANSCRIPTION_MODEL",
    "MAX_NOTE_CHARS",
    "MAX_PROMPT_CHARS",
    "MAX_UPLOAD_BYTES",
    "ChatClaimsExtractor",
    "ExtractedClaim",
    "ProviderError",
    "WhisperTranscriber",
    "hint_prompt",
    "make_client",
    "map_error",
    "parse_claims",
]
