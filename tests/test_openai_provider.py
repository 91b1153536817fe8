"""The OpenAI provider, through the real ``openai`` client, against a loopback fake server.

Timeouts are 0.5 s and retries at most one, so the error cases stay fast; the fake
answers transient errors with ``retry-after-ms: 10``.
"""

from __future__ import annotations

import json
import math
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from voicewatch.config import Settings
from voicewatch.pipeline.openai_provider import (
    CLAIMS_SCHEMA,
    ChatClaimsExtractor,
    ExtractedClaim,
    ProviderError,
    WhisperTranscriber,
    hint_prompt,
    make_client,
    parse_claims,
)
from voicewatch.pipeline.topics import TOPIC_NAMES
from voicewatch.pipeline.transcription import Transcriber, TranscriptionError

ROSTER = ["Liam Carter", "Ava Thompson", "Noah Okafor"]
NOTE = "Liam rolled his ankle in the second half. Ava scored twice against the Rovers."


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> FakeOpenAI:
    server.reset()
    return server


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    """Three seconds of a 440 Hz tone as 16 kHz mono WAV: real audio bytes to upload."""
    path = tmp_path / "note.wav"
    rate = 16_000
    frames = b"".join(
        int(8000 * math.sin(2 * math.pi * 440 * n / rate)).to_bytes(2, "little", signed=True)
        for n in range(rate * 3)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def whisper(fake: FakeOpenAI, **kw: object) -> WhisperTranscriber:
    options: dict[str, object] = {"timeout": 0.5, "max_retries": 1}
    options.update(kw)
    return WhisperTranscriber(api_key="test-key", base_url=fake.base_url, **options)  # type: ignore[arg-type]


def chat(fake: FakeOpenAI, **kw: object) -> ChatClaimsExtractor:
    options: dict[str, object] = {"timeout": 0.5, "max_retries": 1}
    options.update(kw)
    return ChatClaimsExtractor(api_key="test-key", base_url=fake.base_url, **options)  # type: ignore[arg-type]


# --- Whisper ----------------------------------------------------------------------------


def test_whisper_transcribes_with_segments_duration_language_and_usage(
    fake: FakeOpenAI, wav: Path
) -> None:
    transcriber = whisper(fake)
    assert isinstance(transcriber, Transcriber)
    t = transcriber.transcribe(wav, hints=ROSTER)

    assert t.full_text == fake.transcript_text
    assert t.model == "whisper-1"
    assert t.language == "english"
    assert t.duration_seconds == pytest.approx(3.0)
    assert t.word_count == len(fake.transcript_text.split())
    assert [s["text"] for s in t.segments] == [
        "Liam rolled his ankle in the second half.",
        "Keep him out of contact drills.",
    ]
    assert t.segments[0]["start"] == 0.0
    assert t.segments[-1]["end"] == pytest.approx(3.0)
    assert all(set(s) == {"start", "end", "text"} for s in t.segments)
    assert t.confidence == pytest.approx(math.exp(-0.25), abs=1e-4)
    assert t.usage is not None
    assert t.usage.model == "whisper-1"
    assert t.usage.audio_seconds == pytest.approx(3.0)


def test_whisper_request_is_a_verbose_json_upload_with_the_roster_as_prompt(
    fake: FakeOpenAI, wav: Path
) -> None:
    whisper(fake).transcribe(wav, hints=ROSTER)

    (req,) = fake.requests
    assert req.path == "/v1/audio/transcriptions"
    assert req.headers["authorization"] == "Bearer test-key"
    assert req.body["model"] == "whisper-1"
    assert req.body["response_format"] == "verbose_json"
    assert "Liam Carter, Ava Thompson, Noah Okafor" in req.body["prompt"]
    assert req.files["file"] == wav.read_bytes()


def test_whisper_confidence_is_none_without_logprobs(fake: FakeOpenAI, wav: Path) -> None:
    fake.avg_logprob = None
    assert whisper(fake).transcribe(wav).confidence is None


def test_whisper_checks_the_file_before_any_upload(fake: FakeOpenAI, tmp_path: Path) -> None:
    text = tmp_path / "note.wav"
    text.write_text("not audio at all")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    transcriber = whisper(fake)
    cases = [
        (tmp_path / "missing.wav", "file_not_found"),
        (text, "not_audio"),
        (empty, "not_audio"),
    ]
    for path, code in cases:
        with pytest.raises(TranscriptionError) as err:
            transcriber.transcribe(path)
        assert err.value.code == code
    assert fake.requests == []


def test_whisper_refuses_audio_over_the_maximum(fake: FakeOpenAI, wav: Path) -> None:
    with pytest.raises(TranscriptionError) as err:
        whisper(fake, max_duration_seconds=2).transcribe(wav)
    assert err.value.code == "audio_too_long"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("behaviour", "code", "transient", "attempts"),
    [
        ("500", "server_error", True, 2),
        ("429", "rate_limited", True, 2),
        ("401", "unauthorized", False, 1),
        ("400", "bad_request", False, 1),
        ("invalid_body", "invalid_response", False, 1),
    ],
)
def test_whisper_maps_http_errors(
    fake: FakeOpenAI, wav: Path, behaviour: str, code: str, transient: bool, attempts: int
) -> None:
    fake.behaviour = behaviour
    with pytest.raises(ProviderError) as err:
        whisper(fake).transcribe(wav)
    assert (err.value.code, err.value.transient) == (code, transient)
    assert len(fake.requests) == attempts  # the client retried only the transient ones


def test_whisper_times_out_and_says_it_is_transient(fake: FakeOpenAI, wav: Path) -> None:
    fake.behaviour = "slow"
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        whisper(fake, max_retries=0).transcribe(wav)
    assert err.value.code == "timeout"
    assert err.value.transient is True
    assert time.monotonic() - started < fake.delay  # gave up at the timeout, not the reply


def test_a_transient_failure_is_retried_by_the_client(fake: FakeOpenAI, wav: Path) -> None:
    fake.script(["500"])
    t = whisper(fake).transcribe(wav)
    assert t.full_text == fake.transcript_text
    assert len(fake.requests) == 2


def test_an_unreachable_endpoint_is_a_transient_connection_error(wav: Path) -> None:
    with FakeOpenAI() as gone:
        base_url = gone.base_url
    transcriber = WhisperTranscriber(api_key="k", base_url=base_url, timeout=0.5, max_retries=0)
    with pytest.raises(ProviderError) as err:
        transcriber.transcribe(wav)
    assert err.value.code == "connection_error"
    assert err.value.transient is True


# --- chat claims ------------------------------------------------------------------------


def test_chat_extracts_validated_claims_and_reports_usage(fake: FakeOpenAI) -> None:
    claims, usage = chat(fake).extract(NOTE, ROSTER)

    assert claims == [
        ExtractedClaim("injury", "Liam rolled his ankle in the second half.", ("Liam",), 0.9),
        ExtractedClaim("match_result", "Ava scored twice against the Rovers.", ("Ava",), 0.9),
    ]
    assert usage.model == "gpt-4o-mini-2024-07-18"  # as the server names it, for pricing
    assert (usage.input_tokens, usage.output_tokens) == (321, 54)


def test_chat_request_asks_for_the_json_schema_with_the_15_topics(fake: FakeOpenAI) -> None:
    chat(fake, model="my-model").extract(NOTE, ROSTER)

    (req,) = fake.requests
    assert req.path == "/v1/chat/completions"
    assert req.body["model"] == "my-model"
    fmt = req.body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    item = fmt["json_schema"]["schema"]["properties"]["claims"]["items"]
    assert item["properties"]["topic"]["enum"] == list(TOPIC_NAMES)
    assert len(TOPIC_NAMES) == 15
    assert set(item["required"]) == {
        "topic",
        "source_text",
        "mentioned_names",
        "extraction_confidence",
    }
    user = json.loads(req.body["messages"][-1]["content"])
    assert user == {"roster_names": ROSTER, "note": NOTE}


@pytest.mark.parametrize("behaviour", ["invalid_json", "wrong_shape", "invalid_body"])
def test_chat_rejects_an_unusable_reply(fake: FakeOpenAI, behaviour: str) -> None:
    fake.behaviour = behaviour
    with pytest.raises(ProviderError) as err:
        chat(fake).extract(NOTE, ROSTER)
    assert err.value.code == "invalid_response"
    assert err.value.transient is False


@pytest.mark.parametrize(
    ("behaviour", "code", "transient"),
    [
        ("500", "server_error", True),
        ("429", "rate_limited", True),
        ("401", "unauthorized", False),
        ("400", "bad_request", False),
    ],
)
def test_chat_maps_http_errors(
    fake: FakeOpenAI, behaviour: str, code: str, transient: bool
) -> None:
    fake.behaviour = behaviour
    with pytest.raises(ProviderError) as err:
        chat(fake).extract(NOTE, ROSTER)
    assert (err.value.code, err.value.transient, err.value.status) == (
        code,
        transient,
        int(behaviour),
    )


def test_chat_timeout_after_retries(fake: FakeOpenAI) -> None:
    fake.behaviour = "slow"
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        chat(fake, timeout=0.3, max_retries=1).extract(NOTE, ROSTER)
    assert err.value.code == "timeout"
    assert err.value.transient is True
    assert len(fake.requests) == 2
    assert time.monotonic() - started < 2 * fake.delay


def test_an_empty_note_needs_no_call(fake: FakeOpenAI) -> None:
    claims, usage = chat(fake).extract("   ", ROSTER)
    assert claims == []
    assert usage.input_tokens == 0
    assert fake.requests == []


# --- strict validation, without a server ------------------------------------------------


def _claim(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "topic": "injury",
        "source_text": "Liam rolled his ankle.",
        "mentioned_names": ["Liam"],
        "extraction_confidence": 0.8,
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"claims": {}},
        {"claims": [], "extra": 1},
        {"claims": ["text"]},
        {"claims": [_claim(topic="weather")]},
        {"claims": [_claim(source_text="  ")]},
        {"claims": [_claim(mentioned_names="Liam")]},
        {"claims": [_claim(mentioned_names=[1])]},
        {"claims": [_claim(extraction_confidence=1.5)]},
        {"claims": [_claim(extraction_confidence=-0.1)]},
        {"claims": [_claim(extraction_confidence="0.5")]},
        {"claims": [_claim(extraction_confidence=True)]},
        {"claims": [{k: v for k, v in _claim().items() if k != "topic"}]},
        {"claims": [_claim(note="extra key")]},
    ],
)
def test_parse_claims_rejects_every_wrong_shape(doc: object) -> None:
    with pytest.raises(ProviderError) as err:
        parse_claims(json.dumps(doc))
    assert err.value.code == "invalid_response"


def test_parse_claims_rejects_non_json_and_nan() -> None:
    for content in ["", "not json", '{"claims": [', None]:
        with pytest.raises(ProviderError):
            parse_claims(content)
    nan = '{"claims": [{"topic": "injury", "source_text": "x", "mentioned_names": [],'
    nan += ' "extraction_confidence": NaN}]}'
    with pytest.raises(ProviderError):
        parse_claims(nan)


def test_parse_claims_accepts_the_schema_and_tidies_names() -> None:
    claims = parse_claims(
        json.dumps({"claims": [_claim(mentioned_names=["Liam ", "Liam", " Ava  Thompson"])]})
    )
    assert claims == [
        ExtractedClaim("injury", "Liam rolled his ankle.", ("Liam", "Ava Thompson"), 0.8)
    ]
    assert set(CLAIMS_SCHEMA["required"]) == {"claims"}


def test_hint_prompt_is_bounded_and_deduplicated() -> None:
    assert hint_prompt([]) == ""
    assert hint_prompt(["Liam Carter", "Liam Carter", "  Ava  "]).endswith("Liam Carter, Ava.")
    assert len(hint_prompt([f"Player Number{i}" for i in range(500)])) < 900


def test_a_missing_key_for_the_real_api_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderError) as err:
        make_client(api_key="", base_url=None)
    assert err.value.code == "missing_api_key"
    assert err.value.transient is False
    assert make_client(api_key="", base_url="http://127.0.0.1:9/v1") is not None


def test_the_key_is_a_setting_with_openai_api_key_as_its_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VOICEWATCH_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-tools")
    assert Settings.from_env().openai_api_key == "sk-from-openai-tools"
    monkeypatch.setenv("VOICEWATCH_OPENAI_API_KEY", "sk-ours")
    assert Settings.from_env().openai_api_key == "sk-ours"
    # The provider reads no environment of its own: only the key it is given counts.
    with pytest.raises(ProviderError) as err:
        make_client(api_key="", base_url=None)
    assert err.value.code == "missing_api_key"
