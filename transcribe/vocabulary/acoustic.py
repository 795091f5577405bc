"""Ask Whisper itself whether it would rather have heard a lexicon term.

Spelling and sound-alike scores find what a doubtful word might have been
("terniquet" -> "tourniquet", "real function" -> "renal function"), but loose
matching also finds "the client" -> "our client". The model can settle it: the
same audio, scored with the same prompt, is either more likely to say the
sentence with the term or the sentence as written (teacher-forced decoding,
:meth:`transcribe.asr.engine.WhisperEngine.score_texts`). Lexicon correction keeps a
candidate too far for its spelling rules alone only when the term wins by a
margin (``CorrectionOptions.min_acoustic_gain``).

The words are grouped by the decoding window they came from (``word["window"]``;
words without one, in windows of about 20 s); a group holding a candidate is
scored whole, every candidate in it in one batch, so checking a dictation costs
one encoder run per window with candidates, and none at all when the decoding's
encoder output is still at hand.
This module only plans windows and reads results: the scorer that runs the
model is handed in (the pipeline builds it from the engine and the audio).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WINDOW_S = 20.0  # words per encoder run; Whisper's own window is 30 s
MAX_CLIP_S = 29.5
EDGE_S = 0.3  # audio kept either side of the window's first and last word

# One request per window: (start_s, end_s, texts, decoding window or None). The answer:
# for each window, the log-probability of each of its texts. The decoding window is
# given when the texts are exactly that window's words, so its encoder output serves.
Request = tuple[float, float, Sequence[str], Any]
Scorer = Callable[[Sequence[Request]], list[list[float]]]


@dataclass(frozen=True)
class Proposal:
    """Replace words ``start:end`` (end exclusive) by one ``word`` (edges kept)."""

    start: int
    end: int
    word: str


class AcousticCheck:
    """Log-probability gains of proposals over the words as Whisper wrote them."""

    def __init__(self, scorer: Scorer, whole: frozenset[Any] = frozenset()) -> None:
        self.scorer = scorer
        self.whole = whole  # decoding windows short enough to be scored whole
        self.seconds = 0.0  # time spent in the model, for the draft's record

    def gains(
        self, words: Sequence[Mapping[str, Any]], proposals: Sequence[Proposal]
    ) -> list[float]:
        """For each proposal, how many nats more likely the window is with it.

        ``-inf`` for a proposal whose words carry no timings (nothing to listen to).
        """
        gains = [-math.inf] * len(proposals)
        timed = [k for k, p in enumerate(proposals) if _timed(words[p.start : p.end])]
        if not timed:
            return gains
        windows = _windows(words, self.whole)
        starts = [lo for lo, _ in windows]
        groups: dict[tuple[int, int], list[int]] = {}
        for k in timed:
            window = windows[bisect.bisect_right(starts, proposals[k].start) - 1]
            groups.setdefault(window, []).append(k)
        requests: list[Request] = []
        members: list[list[int]] = []
        for (lo, hi), group in groups.items():
            whole = (lo, hi)
            lo = min(lo, *(proposals[k].start for k in group))
            hi = max(hi, *(proposals[k].end for k in group))
            texts = [_text(words, lo, hi)] + [_text(words, lo, hi, proposals[k]) for k in group]
            start = max(0.0, _time(words[lo], "start") - EDGE_S)
            end = _time(words[hi - 1], "end") + EDGE_S
            key = words[lo].get("window")
            window = key if (lo, hi) == whole and key in self.whole else None
            if window is None:
                end = min(end, start + MAX_CLIP_S)
            requests.append((start, end, texts, window))
            members.append(group)
        started = time.perf_counter()
        answers = self.scorer(requests)
        self.seconds += time.perf_counter() - started
        for group, scores in zip(members, answers, strict=True):
            for k, score in zip(group, scores[1:], strict=True):
                gains[k] = score - scores[0]
        return gains


def _timed(words: Sequence[Mapping[str, Any]]) -> bool:
    return all(isinstance(w.get("start"), int | float) for w in words) and all(
        isinstance(w.get("end"), int | float) for w in words
    )


def _windows(
    words: Sequence[Mapping[str, Any]], whole: frozenset[Any] = frozenset()
) -> list[tuple[int, int]]:
    """Consecutive word ranges covering every word: proposals in one range share one
    encoder run. The words of a decoding window in ``whole`` form one range; others,
    ranges of about WINDOW_S."""
    ranges: list[tuple[int, int]] = []
    for lo, hi in _by_window(words):
        if words[lo].get("window") in whole:
            ranges.append((lo, hi))
        else:
            ranges += [(lo + a, lo + b) for a, b in _by_time(words[lo:hi])]
    return ranges


def _by_time(words: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    windows: list[tuple[int, int]] = []
    lo = 0
    while lo < len(words):
        hi = lo + 1
        begin = _time(words[lo], "start")
        while hi < len(words) and _time(words[hi], "end") - begin <= WINDOW_S:
            hi += 1
        windows.append((lo, hi))
        lo = hi
    return windows


def _by_window(words: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Runs of words from one decoding window (all words, one run, without windows)."""
    ranges: list[tuple[int, int]] = []
    lo = 0
    for hi in range(1, len(words) + 1):
        if hi == len(words) or words[hi].get("window") != words[lo].get("window"):
            ranges.append((lo, hi))
            lo = hi
    return ranges


def _time(word: Mapping[str, Any], key: str) -> float:
    value = word.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _text(
    words: Sequence[Mapping[str, Any]], lo: int, hi: int, proposal: Proposal | None = None
) -> str:
    if proposal is None:
        return "".join(str(w["word"]) for w in words[lo:hi])
    before = "".join(str(w["word"]) for w in words[lo : proposal.start])
    after = "".join(str(w["word"]) for w in words[proposal.end : hi])
    return before + proposal.word + after
