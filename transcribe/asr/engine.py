"""The Whisper engine: load the model once per process, transcribe to plain data.

faster-whisper is imported lazily so that ``status``, ``init`` and friends start
instantly. The engine records every option it used, because a transcript that cannot
say how it was made cannot be compared or reproduced.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Limits, TranscriptionConfig
from ..errors import ModelError
from .decode import decode_file
from .models import ResolvedModel, resolve_model

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    compute_type: str
    cpu_threads: int


@dataclass(frozen=True)
class DecodeOptions:
    """Per-call options passed to ``WhisperModel.transcribe``; all recorded."""

    language: str | None = None
    beam_size: int = 5
    vad_filter: bool = True
    word_timestamps: bool = True
    initial_prompt: str | None = None
    hotwords: str | None = None
    condition_on_previous_text: bool = True
    # faster-whisper's own default: shorter silences (500 ms was tried) cut sentences
    # apart and cost accuracy on FLEURS French (bench/asr.py); long pauses still go.
    vad_parameters: dict[str, Any] = field(
        default_factory=lambda: {"min_silence_duration_ms": 2000}
    )


def available_cores() -> int:
    """Cores this process may use (cgroup/affinity aware), not the host's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def cuda_device_count() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:
        return 0


def choose_device(config: TranscriptionConfig) -> DeviceChoice:
    """CUDA float16 when a GPU is there (or asked for), else CPU int8, threads = cores."""
    device = config.device
    if device == "auto":
        device = "cuda" if cuda_device_count() > 0 else "cpu"
    if device == "cuda" and cuda_device_count() == 0:
        raise ModelError("device = 'cuda' is configured but no CUDA GPU is visible")
    compute = config.compute_type
    if compute == "auto":
        compute = "float16" if device == "cuda" else "int8"
    threads = config.cpu_threads or available_cores()
    return DeviceChoice(device=device, compute_type=compute, cpu_threads=threads)


class WhisperEngine:
    """One loaded model. Not thread-safe on purpose: concurrent calls leak (upstream #1055)."""

    def __init__(self, config: TranscriptionConfig, *, base_dir: Path | None = None) -> None:
        self.config = config
        self.model_ref: ResolvedModel = resolve_model(config.model, base_dir=base_dir)
        self.device = choose_device(config)
        self.load_seconds = 0.0
        self._model: Any = None

    @property
    def model(self) -> Any:
        return self.load()

    def load(self) -> Any:
        """Load the model now (first call only); later calls return it."""
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> Any:
        started = time.perf_counter()
        try:
            from faster_whisper import WhisperModel

            model = WhisperModel(
                self.model_ref.location,
                device=self.device.device,
                compute_type=self.device.compute_type,
                cpu_threads=self.device.cpu_threads,
                local_files_only=self.model_ref.local,
            )
        except Exception as exc:
            raise ModelError(
                f"cannot load model {self.model_ref.name!r}: {' '.join(str(exc).split())[:300]}",
                hint="a hub model name needs internet on first use; "
                "otherwise give a local model folder",
            ) from None
        self.load_seconds = time.perf_counter() - started
        return model

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.model_ref.name,
            "location": self.model_ref.location,
            **asdict(self.device),
            "load_s": round(self.load_seconds, 3),
        }

    def transcribe(
        self, audio: Path | np.ndarray, options: DecodeOptions, limits: Limits | None = None
    ) -> dict[str, Any]:
        """Run Whisper and return plain data (segments, words, language, timings).

        A file is decoded in a capped child process (:mod:`transcribe.asr.decode`), never by
        faster-whisper in this process; ``limits`` are the workspace's (defaults if None).
        A file the child refuses raises :class:`AudioError`. Samples already decoded that
        way (16 kHz float32) are used as they are, so a second pass does not decode again.
        """
        model = self.model
        started = time.perf_counter()
        samples = decode_file(audio, limits or Limits()) if isinstance(audio, Path) else audio
        segments, info = model.transcribe(samples, **asdict(options))
        segments, echoes = drop_hallucinations([segment_record(s) for s in segments])
        elapsed = time.perf_counter() - started
        return {
            "language": info.language,
            "language_probability": round(float(info.language_probability), 4),
            "duration_s": round(float(info.duration), 3),
            "speech_s": round(float(info.duration_after_vad), 3),
            "segments": segments,
            "text": "".join(s["text"] for s in segments).strip(),
            "transcribe_s": round(elapsed, 3),
            "hallucinations_dropped": echoes,
        }

    def score_texts(
        self, clip: np.ndarray, texts: Sequence[str], *, language: str, prompt: str | None
    ) -> list[float]:
        """The log-probability Whisper gives each text as the transcription of ``clip``.

        Teacher-forced (the text is given, not searched for), with the same prompt the
        decoding had: this is how lexicon correction asks the model whether it would
        rather have heard the term. Beam search with five beams prunes a rare word's
        unlikely first token ("tourn-iquet") before the audio can vouch for the rest;
        scoring the whole word does not. ``clip`` is 16 kHz audio of at most 30 s; one
        encoder run serves every text.
        """
        import ctranslate2
        import numpy as np
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        model = self.model
        features = model.feature_extractor(clip)[..., :-1]
        frames = min(features.shape[-1], model.feature_extractor.nb_max_frames)
        padded = np.ascontiguousarray(pad_or_trim(features)[None])
        encoded = model.model.encode(ctranslate2.StorageView.from_array(padded), to_cpu=True)
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
        )
        start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        if prompt:
            budget = model.max_length // 2 - 1  # as faster-whisper trims a prompt
            start = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())[-budget:], *start]
        tokens = [tokenizer.encode(text) for text in texts]
        batch = np.ascontiguousarray(np.repeat(np.asarray(encoded), len(texts), axis=0))
        results = model.model.align(
            ctranslate2.StorageView.from_array(batch), start, tokens, [frames] * len(texts)
        )
        return [
            float(np.log(np.maximum(np.asarray(r.text_token_probs, dtype=np.float64), 1e-12)).sum())
            for r in results
        ]


ECHO_MAX_WORDS_PER_S = 6.0  # dictation runs at 2-3 words a second
_NOT_WORD = re.compile(r"[^\w']+")
_SENTENCE_END = re.compile(r"[.!?;]+")


def drop_hallucinations(segments: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Segments minus Whisper's tail hallucinations, and the texts dropped.

    Whisper, conditioned on what it just wrote, sometimes fills the last half-second
    of a file by writing the dictation again. Such an echo says nothing new (every
    three words of it are in the two segments before it) and is spoken impossibly
    fast. Both must hold: a doctor repeating a sentence at speaking pace is kept.
    """
    kept: list[dict[str, Any]] = []
    echoes: list[str] = []
    for segment in segments:
        if kept and _is_echo(segment, kept[-2:]):
            echoes.append(segment["text"].strip())
        else:
            kept.append(segment)
    if len(kept) > 1 and _too_fast(kept[-1]):
        echoes.append(kept.pop()["text"].strip())  # "This is the last paragraph of the."
    ghost = _trailing_ghost(kept)
    if ghost:
        echoes.append(ghost)
    return kept, echoes


def _too_fast(segment: dict[str, Any]) -> bool:
    """A closing segment of at least GHOST_MIN_WORDS words at more than twice dictation
    pace: Whisper writing past the end of the speech, repeating or not."""
    words = _plain(segment["text"]).split()
    duration = max(segment["end"] - segment["start"], 0.001)
    return len(words) >= GHOST_MIN_WORDS and len(words) / duration > ECHO_MAX_WORDS_PER_S


GHOST_MIN_WORDS = 3


def _trailing_ghost(segments: list[dict[str, Any]]) -> str:
    """Cut words written after the audio ran out, and return them.

    The other tail hallucination ("This is the final paragraph of the ...") repeats
    nothing, but its words are aligned to no audio: a run of at least
    GHOST_MIN_WORDS words of zero duration closing the file.
    """
    if not segments or not segments[-1].get("words"):
        return ""
    words = segments[-1]["words"]
    cut = len(words)
    while cut and words[cut - 1]["end"] <= words[cut - 1]["start"]:
        cut -= 1
    if len(words) - cut < GHOST_MIN_WORDS:
        return ""
    ghost = "".join(w["word"] for w in words[cut:]).strip()
    if cut == 0:
        segments.pop()
    else:
        last = segments[-1]
        last["words"] = words[:cut]
        last["text"] = "".join(w["word"] for w in words[:cut])
        last["end"] = words[cut - 1]["end"]
    return ghost


def _is_echo(segment: dict[str, Any], before: list[dict[str, Any]]) -> bool:
    words = _plain(segment["text"]).split()
    duration = max(segment["end"] - segment["start"], 0.001)
    if not words or len(words) / duration <= ECHO_MAX_WORDS_PER_S:
        return False
    earlier = f" {' '.join(_plain(s['text']) for s in before)} "
    sentences = [_plain(part) for part in _SENTENCE_END.split(segment["text"])]
    if all(f" {sentence} " in earlier for sentence in sentences if sentence):
        return True  # "A. B. A." after "A. B.": each sentence said before
    size = min(3, len(words))
    grams = {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}
    return all(f" {gram} " in earlier for gram in grams)


def _plain(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


def segment_record(segment: Any) -> dict[str, Any]:
    """A faster-whisper segment as plain, rounded data (the transcript.json shape)."""
    return {
        "id": segment.id,
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "avg_logprob": round(segment.avg_logprob, 4),
        "no_speech_prob": round(segment.no_speech_prob, 4),
        "compression_ratio": round(segment.compression_ratio, 3),
        "words": [
            {
                "word": w.word,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "probability": round(float(w.probability), 4),
            }
            for w in (segment.words or [])
        ],
    }
