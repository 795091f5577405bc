"""The decoding passes a dictation goes through, window by window.

1. **First pass.** Every window is decoded, windows of many files in one batch when
   they share language and prompt: without a prompt by default (``first_pass =
   "plain"``: plain Whisper's text, at plain Whisper's cost or less), or with the
   file's vocabulary prompt (``"vocabulary"``).
2. **Runaways.** A window that loops or echoes its prompt (:mod:`.loops`) is decoded
   again without the prompt, then sampled without it; what still runs away is kept
   and marked unreliable, never passed off as text.
3. **Refocus.** The terms the first pass nearly heard ("ecacardiography") lead a
   second prompt, and only the windows where they were heard over words Whisper was
   doubtful of are decoded again with it (``second_pass``): the windows of all the
   group's files together, each with its own file's prompt, and only as far as just
   past the last doubtful near-miss (the first pass's words go on from there). The
   refocused text replaces the first only where it wrote a term the first did not
   have, is not much less likely, does not run away (a closing repeat, or a closing
   copy of a stretch it wrote before, is cut), and does not drop words the first
   pass heard: on ordinary speech the first pass stands (biasing may only win). A
   window whose refocused decoding ran away on terms of the prompt ("patella,
   palpation, patella..." in a letter to Dr Patel) is decoded once more without them.
4. **Guard** (vocabulary first pass only; a plain first pass is its own guard).
   Biasing may only win: a window whose text holds vocabulary terms that
   Whisper was unsure of is decoded once more without any prompt (``guard``), and a
   term that sounds like nothing the unprompted decoding heard at that moment
   ("Plus ou moins" -> "Prud'hommes") gives way to what it heard.

Windows are taken in waves so a long file never holds every window's features and
encoder output at once. Every decision is recorded for ``transcript.json``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rapidfuzz import fuzz

from ..vocabulary import PromptPlan, Vocabulary, build_initial_prompt
from ..vocabulary.normalise import compact_key, normalise_words, phonetic_key
from ..vocabulary.retrieve import Retrieved, refocus, retrieve_terms
from .decoder import Request, WindowText, decode_windows, encode_windows
from .loops import Runaway, closing_copy, find_runaway
from .windows import Window

MAX_LOGPROB_DROP = 0.15  # a refocused window this much less sure of itself is not kept
MAX_LENGTH_CHANGE = 0.25  # nor one whose word count changed by more (and >= 3 words)
UNHEARD_BELOW = 20.0  # a term sounding this little like what was heard was not heard
GUARD_PROBABILITY = 0.6  # terms Whisper is less sure of are checked without the prompt
RESTORE_MIN_WORDS = 3  # a stretch of this many words dropped by the second pass returns
EDGE_S = 0.3
REACH_MARGIN_S = 1.0  # a refocused decoding goes this far past the last doubtful near-miss
DOUBTFUL = 0.5  # a near-miss over a word Whisper gave this or less is worth decoding again for
SAMPLED_BEST_OF = 2  # Whisper's fallback samples 5; a bounded fallback samples 2
UNBELIEVED = 0.05  # words this unlikely closing a refocused decoding...
UNBELIEVED_RUN = 2  # ...this many or more in a run, are the start of a loop: cut


@dataclass(frozen=True)
class PassSettings:
    """What the passes may do; from ``[transcription]`` (see config.py)."""

    beam_size: int = 5
    batch_size: int = 4
    first_prompted: bool = True  # the first pass with the vocabulary prompt, or without
    refocus: bool = True
    refocus_budget: int = 120  # tokens of the refocused prompt (the first has 200)
    refocus_only_heard: bool = False  # only the terms nearly heard, not the whole ranking
    refocus_below: float = DOUBTFUL  # only windows with a near-miss this unsure (1.0: all)
    guard: str = "terms"  # "off", "terms" (windows with unsure terms) or "all"
    fallback_temperatures: tuple[float, ...] = (0.4,)
    wave_windows: int = 24


@dataclass
class FileDecoding:
    """One file of a group: its windows, language and prompts, and what came of them."""

    windows: list[Window]
    language: str
    vocabulary: Vocabulary | None
    prompt: PromptPlan | None
    count_tokens: Callable[[], Any] = lambda: None
    texts: dict[int, WindowText] = field(default_factory=dict)  # by window index
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    unreliable: dict[int, Runaway] = field(default_factory=dict)
    refocused: PromptPlan | None = None
    retried: list[PromptPlan] = field(default_factory=list)  # refocused, less what ran away
    retrieved: list[Retrieved] = field(default_factory=list)

    def plan_of(self, text: WindowText) -> PromptPlan | None:
        """The plan ``text`` was decoded with (first, refocused or retried prompt)."""
        if not text.prompt:
            return None
        plans = [self.refocused, *self.retried, self.prompt]
        return next((p for p in plans if p is not None and p.text == text.prompt), self.prompt)


def run_passes(model: Any, files: Sequence[FileDecoding], settings: PassSettings) -> None:
    """Decode every window of every file, wave by wave, recording each decision."""
    windows = [w for f in files for w in f.windows]
    for start in range(0, len(windows), settings.wave_windows):
        wave = windows[start : start + settings.wave_windows]
        encode_windows(model, wave, settings.batch_size)
        _first_pass(model, files, wave, settings)
        if settings.refocus:
            _refocus(model, files, wave, settings)
        for number, decoding in enumerate(files):
            mine = [w for w in wave if w.file == number]
            if mine and settings.guard != "off" and settings.first_prompted:
                _guard(model, decoding, mine, settings)
        if len(windows) > settings.wave_windows:
            for window in wave:
                window.release()


def _first_pass(
    model: Any, files: Sequence[FileDecoding], wave: Sequence[Window], settings: PassSettings
) -> None:
    """The vocabulary-prompted decoding, batched across files sharing language and prompt."""
    groups: dict[tuple[str, str | None], list[Window]] = {}
    for window in wave:
        decoding = files[window.file]
        prompt = decoding.prompt.text if decoding.prompt and settings.first_prompted else None
        groups.setdefault((decoding.language, prompt), []).append(window)
    for (language, prompt), members in groups.items():
        request = Request(language, prompt, settings.beam_size, batch_size=settings.batch_size)
        decoded = _decode_safely(model, members, request, files, settings)
        for window, text in zip(members, decoded, strict=True):
            decoding = files[window.file]
            decoding.texts[window.index] = text
            record = decoding.records.setdefault(window.index, {})  # runaways noted
            record.update(
                start=round(window.start_s, 3),
                end=round(window.end_s, 3),
                first=_summary(text, "vocabulary" if prompt else None),
                kept="first",
            )


def _decode_safely(
    model: Any,
    windows: Sequence[Window],
    request: Request,
    files: Sequence[FileDecoding],
    settings: PassSettings,
) -> list[WindowText]:
    """First-pass decoding; a window that runs away is tried again (:func:`_recover`),
    and what still runs away is marked unreliable."""
    texts = decode_windows(model, windows, request)
    for index, window in enumerate(windows):
        decoding = files[window.file]
        runaway = _runaway(texts[index], decoding)
        if runaway is None:
            continue
        fixed = _recover(model, window, request, decoding, settings)
        decoding.unreliable.pop(window.index, None)
        if fixed is None:
            decoding.unreliable[window.index] = runaway
        texts[index] = fixed or texts[index]
        _note_runaway(decoding.records.setdefault(window.index, {}), runaway, fixed)
    return texts


def _recover(
    model: Any,
    window: Window,
    request: Request,
    decoding: FileDecoding,
    settings: PassSettings,
) -> WindowText | None:
    """Whisper's temperature fallback, bounded so a short clip cannot blow up: a
    prompted window is decoded again without the prompt (the usual cause), then
    sampled without it; an unprompted one is sampled. At most
    ``1 + len(fallback_temperatures)`` decodings of one window."""
    plain = replace(request, prompt=None)
    attempts = [plain] if request.prompt else []
    attempts += [
        replace(plain, temperature=t, best_of=SAMPLED_BEST_OF)
        for t in settings.fallback_temperatures
    ]
    for attempt in attempts:
        [text] = decode_windows(model, [window], attempt)
        if _runaway(text, decoding) is None:
            return text
    return None


def _note_runaway(record: dict[str, Any], runaway: Runaway, fixed: WindowText | None) -> None:
    how = "no prompt" if fixed is not None and not fixed.temperature else "sampled, no prompt"
    action = "marked unreliable" if fixed is None else f"decoded again ({how})"
    record.setdefault("runaways", []).append({**runaway.to_json(), "action": action})


def _runaway(text: WindowText, decoding: FileDecoding) -> Runaway | None:
    plan = decoding.plan_of(text)
    terms = [t.text for t in plan.terms] if plan else []
    lead_in = plan.lead_in if plan else ""
    return find_runaway([w["word"] for w in text.words], text.text, terms, lead_in)


def _refocus(
    model: Any, files: Sequence[FileDecoding], wave: Sequence[Window], settings: PassSettings
) -> None:
    """Decode again, with the terms nearly heard leading the prompt, where they were
    heard: each file has its own prompt, and the windows of all files are decoded
    together (prompts of one length share a batch)."""
    heard: dict[Window, list[Retrieved]] = {}
    for number, decoding in enumerate(files):
        heard |= _plan_refocus(decoding, [w for w in wave if w.file == number], settings)
    by_language: dict[str, list[Window]] = {}
    for window in heard:
        by_language.setdefault(files[window.file].language, []).append(window)
    for language, members in by_language.items():
        request = Request(language, None, settings.beam_size, batch_size=settings.batch_size)
        prompts = [_refocused(files[w.file]).text for w in members]
        reach = [_reach(w, heard[w], settings) for w in members]
        decoded = decode_windows(model, members, request, prompts, reach)
        retry: dict[Window, PromptPlan] = {}
        for window, text in zip(members, decoded, strict=True):
            runaway = _take_refocused(files[window.file], window, text, heard[window])
            plan = _without_echoed(files[window.file], runaway, settings)
            if plan is not None:
                retry[window] = plan
        if retry:
            prompts = [plan.text for plan in retry.values()]
            reach = [_reach(w, heard[w], settings) for w in retry]
            again = decode_windows(model, list(retry), request, prompts, reach)
            for window, text in zip(retry, again, strict=True):
                _take_refocused(files[window.file], window, text, heard[window])


def _refocused(decoding: FileDecoding) -> PromptPlan:
    """The file's refocused prompt, which :func:`_plan_refocus` built with its targets."""
    assert decoding.refocused is not None
    return decoding.refocused


def _reach(window: Window, heard: Sequence[Retrieved], settings: PassSettings) -> float | None:
    """How far into its window a second decoding must go: just past the last doubtful
    near-miss. Beyond it the first pass's words stand (:func:`_with_first_after`): a
    window of up to 40 s that Whisper decodes in two rounds is refocused in one when
    the terms it doubted are in its first 30 s."""
    ends = [r.end for r in heard if r.end is not None and r.probability <= settings.refocus_below]
    if not ends:
        return None
    return window.to_window_time(max(ends)) + REACH_MARGIN_S


def _with_first_after(refocused: WindowText, first: WindowText) -> WindowText:
    """``refocused`` followed by the first pass's words past its end, where it stopped
    well short of them (:func:`_reach`). One that ends about where the first pass
    ends was not stopped: its last words are its own ("6 weeks", not "6 week")."""
    words = refocused.words
    if not words or not first.words:
        return refocused
    end = float(words[-1]["end"])
    if float(first.words[-1]["end"]) - end <= REACH_MARGIN_S:
        return refocused
    rest = [w for w in first.words if _middle(w) > end]
    # the seam: words both wrote, aligned a little apart ("yours sincerely" + "sincerely")
    mine, theirs = _keys(words), _keys(rest)
    overlap = max(
        (n for n in range(1, min(len(mine), len(theirs)) + 1) if mine[-n:] == theirs[:n]),
        default=0,
    )
    rest = rest[overlap:]
    return with_words(refocused, [*words, *rest]) if rest else refocused


def _plan_refocus(
    decoding: FileDecoding, windows: Sequence[Window], settings: PassSettings
) -> dict[Window, list[Retrieved]]:
    """The file's windows worth refocusing (:func:`_worth_refocusing`), and what was
    nearly heard in each; builds the file's refocused prompt (``decoding.refocused``)
    when there are any. Every near-miss is recorded (``decoding.retrieved``)."""
    vocabulary = decoding.vocabulary
    if vocabulary is None or not vocabulary.terms:
        return {}
    heard = {
        w: _near_misses(vocabulary, decoding.texts[w.index], decoding.language)
        for w in windows
        if w.index not in decoding.unreliable
    }
    heard = {w: found for w, found in heard.items() if found}
    decoding.retrieved = _best_first(
        [*decoding.retrieved, *(r for rs in heard.values() for r in rs)]
    )
    heard = {
        w: found for w, found in heard.items() if _worth_refocusing(decoding, w, found, settings)
    }
    if not heard:
        return {}
    lead = refocus(vocabulary, decoding.retrieved)
    if settings.refocus_only_heard:
        lead = Vocabulary(
            vocabulary.domain, vocabulary.lang, tuple(r.term for r in decoding.retrieved)
        )
    decoding.refocused = build_initial_prompt(
        lead,
        decoding.language,
        count_tokens=decoding.count_tokens(),
        budget_tokens=settings.refocus_budget,
    )
    return heard


def _worth_refocusing(
    decoding: FileDecoding, window: Window, heard: Sequence[Retrieved], settings: PassSettings
) -> bool:
    """Whether a window's near-misses are worth a second decoding, noted when not.

    A term nearly heard over words Whisper was doubtful of ("a real fibrillation",
    "force mature") is what the refocused prompt recovers. Over words it was sure
    of, the near-miss is an everyday word that happens to spell like a term
    ("Nations" for "donation", "terreur" for "erreur"): on read French (FLEURS, the
    UDHR, Common Voice) decoding those windows again never gained a term and cost
    as much as the first pass.
    """
    if any(r.probability <= settings.refocus_below for r in heard):
        return True
    decoding.records[window.index]["refocused"] = {
        "skipped": "near-misses only over words Whisper was sure of",
        "terms_heard": [r.term.text for r in heard],
    }
    return False


def _take_refocused(
    decoding: FileDecoding, window: Window, text: WindowText, heard: Sequence[Retrieved]
) -> Runaway | None:
    """Keep a window's refocused decoding where it gained a term, and say why not;
    when it is not kept and it ran away, the runaway."""
    plan = decoding.plan_of(text)
    assert plan is not None
    record = decoding.records[window.index]
    retry = plan is not decoding.refocused
    if retry:
        record["refocused_before"] = record["refocused"]  # the first try stays
    record["refocused"] = _summary(text, "refocused")
    record["refocused"]["terms_heard"] = [r.term.text for r in heard]
    if retry:
        record["refocused"]["without"] = [
            t.text for t in _refocused(decoding).terms if t not in plan.terms
        ]
    runaway = _runaway(text, decoding)
    trimmed = _trimmed(decoding, text, runaway, record["refocused"])
    if trimmed is None:
        return runaway
    first = decoding.texts[window.index]
    # an untrimmed decoding ends where it was asked to (_reach): the first pass goes on
    text = _with_first_after(text, first) if trimmed is text else trimmed
    chosen, why = choose(first, text, plan.terms, decoding.language)
    gained = gained_terms(first, chosen, plan.terms) if chosen is not None else []
    if chosen is None or not gained:
        record["refocused"]["dropped"] = why or "no term gained"
        return runaway  # what is left of a trimmed runaway may be too little to keep
    decoding.texts[window.index] = chosen
    record["kept"] = "refocused"
    record["refocused"]["gained"] = [term for term, _, _ in gained]
    if why:
        record["refocused"]["mended"] = why
    return None


def _trimmed(
    decoding: FileDecoding, text: WindowText, runaway: Runaway | None, record: dict[str, Any]
) -> WindowText | None:
    """``text`` less what closes it without being speech (a repeat cut short, words
    Whisper did not believe, a copy of a stretch it wrote before), noted in
    ``record``; None when it runs away elsewhere (the first pass stands)."""
    cuts = []
    if runaway is not None:
        trimmed = without_closing_repeat(text, runaway)
        if trimmed is None or _runaway(trimmed, decoding) is not None:
            record["dropped"] = f"runs away ({runaway.kind})"
            return None
        cuts.append(f"closing repeat of {runaway.text!r}")
        text = trimmed
    for how, find in (
        ("closing words Whisper did not believe", _unbelieved_tail),
        ("closing copy", lambda words: closing_copy([w["word"] for w in words])),
    ):
        cut = find(text.words)
        if cut is not None:
            cuts.append(f"{how}: {''.join(str(w['word']) for w in text.words[cut:]).strip()!r}")
            text = with_words(text, text.words[:cut])
    if cuts:
        record["trimmed"] = "; ".join(cuts)
    return text


def _without_echoed(
    decoding: FileDecoding, runaway: Runaway | None, settings: PassSettings
) -> PromptPlan | None:
    """The refocused prompt without the terms a window's refocused decoding ran away
    on ("Dear doctor, patella, palpation, patella, palpation, ..." for a letter to
    Dr Patel), for one more decoding of that window; None when the runaway holds no
    term of the prompt (nothing to take out: the first pass stands).

    Bounded: only after a first refocused decoding, and once per window.
    """
    plan = decoding.refocused
    if runaway is None or plan is None or decoding.vocabulary is None:
        return None
    looped = f" {' '.join(normalise_words(runaway.text))} "
    echoed = {
        t.key for t in plan.terms if _overlaps(f" {' '.join(normalise_words(t.text))} ", looped)
    }
    if not echoed:
        return None
    lead = refocus(decoding.vocabulary, [r for r in decoding.retrieved if r.term.key not in echoed])
    kept = Vocabulary(lead.domain, lead.lang, tuple(t for t in lead if t.key not in echoed))
    retried = build_initial_prompt(
        kept,
        decoding.language,
        count_tokens=decoding.count_tokens(),
        budget_tokens=settings.refocus_budget,
    )
    decoding.retried.append(retried)
    return retried


def _overlaps(term: str, looped: str) -> bool:
    """A term the loop wrote ("patella" in "patella palpation"), or one holding the
    loop ("mellitus" over and over, with "type 2 diabetes mellitus" in the prompt)."""
    return term in looped or looped in term


def _unbelieved_tail(words: Sequence[dict[str, Any]]) -> int | None:
    """Where a closing run of words Whisper itself gave next to no chance begins, or
    None. Prompted, it fills the last half-second by starting the dictation again
    ("... refer to podiatry. Diabetes-renew period is", each word below 0.05): the
    trace of a loop cut short, not speech."""
    cut = len(words)
    while cut and float(words[cut - 1].get("probability", 1.0)) < UNBELIEVED:
        cut -= 1
    return cut if len(words) - cut >= UNBELIEVED_RUN else None


def without_closing_repeat(text: WindowText, runaway: Runaway) -> WindowText | None:
    """``text`` up to the first copy of a repeat that closes it, or None when the
    runaway is something else (the caller checks what is left).

    Prompted, Whisper that has written the last word of a window sometimes writes it
    again until its length cap ("... from day one, period. period, period, period"):
    what comes before is a decoding like any other, and dropping it all lost the
    terms the refocusing was for.
    """
    if runaway.kind != "repeat" or not runaway.closing:
        return None
    return with_words(text, text.words[: runaway.once])


def _near_misses(vocabulary: Vocabulary, text: WindowText, language: str) -> list[Retrieved]:
    """Terms the window came close to without writing them: a window whose terms all
    came out right has nothing to gain from being decoded again."""
    return [
        found
        for found in retrieve_terms(vocabulary, text.words, language)
        if compact_key(found.heard) != compact_key(found.term.text)
    ]


def _guard(
    model: Any, decoding: FileDecoding, windows: Sequence[Window], settings: PassSettings
) -> None:
    """Prompted windows are checked against an unprompted decoding: every one
    (``guard = "all"``), or those holding vocabulary terms Whisper was unsure of."""
    if decoding.vocabulary is None or decoding.prompt is None:
        return
    terms = list(decoding.vocabulary)
    suspects = [
        w
        for w in windows
        if w.index not in decoding.unreliable
        and decoding.texts[w.index].prompt
        and (settings.guard == "all" or _unsure_terms(decoding.texts[w.index], terms))
    ]
    if not suspects:
        return
    # greedy: the guard asks what was heard, it does not need the best spelling of it
    request = Request(decoding.language, None, beam_size=1, batch_size=settings.batch_size)
    for window, plain in zip(suspects, decode_windows(model, suspects, request), strict=True):
        record = decoding.records[window.index]
        record["guard"] = _summary(plain, None)
        if find_runaway([w["word"] for w in plain.words], plain.text) is not None:
            record["guard"]["dropped"] = "runs away"
            continue
        kept, why = choose(
            plain, decoding.texts[window.index], terms, decoding.language, same_length=False
        )
        if kept is None:
            decoding.texts[window.index] = plain
            record["kept"] = "unprompted"
            record["guard"]["why"] = why
        else:
            decoding.texts[window.index] = kept
            if why:
                record["guard"]["mended"] = why


def _unsure_terms(text: WindowText, terms: Sequence[Any]) -> bool:
    return any(p < GUARD_PROBABILITY for _, _, _, p in _terms_in(text.words, terms))


def choose(
    reference: WindowText,
    candidate: WindowText,
    terms: Sequence[Any],
    language: str,
    *,
    same_length: bool = True,
) -> tuple[WindowText | None, str]:
    """``candidate`` (more biased), mended against ``reference``, or None and why not.

    Not kept when much less likely under its own prompt than the reference under its
    own, or (``same_length``) when its length is far off: a refocused decoding that
    skipped or invented a stretch. The guard does not ask that: an unprompted decoding
    of a dictation full of terms runs them together ("near-arth replaced the
    underpinal"), so its length says nothing. Kept, the candidate gives back the
    reference's words where it wrote a term that sounds like nothing heard there, and
    where it dropped a stretch the reference heard.
    """
    first, second = reference, candidate
    if second.avg_logprob < first.avg_logprob - MAX_LOGPROB_DROP:
        return None, "much lower log-probability"
    counts = _token_count(first), _token_count(second)
    if same_length and abs(counts[1] - counts[0]) > max(3, MAX_LENGTH_CHANGE * counts[0]):
        return None, f"{counts[1]} words where the first pass had {counts[0]}"
    notes = []
    spans = unheard_terms(first.words, second.words, terms, language)
    if spans:
        second = splice(second, first, spans)
        notes.append("unheard: " + ", ".join(text for text, _, _ in spans))
    second, restored = restore_dropped(first, second)
    if restored:
        notes.append("restored: " + " / ".join(restored))
    return second, "; ".join(notes)


def _token_count(text: WindowText) -> int:
    return sum(len(normalise_words(str(w["word"]))) for w in text.words)


def _terms_in(
    words: Sequence[dict[str, Any]], terms: Sequence[Any]
) -> list[tuple[str, float, float, float]]:
    """(term, start, end, lowest word probability) for each vocabulary term in the words."""
    tokens: list[str] = []
    owners: list[int] = []
    for index, word in enumerate(words):
        for token in normalise_words(str(word["word"])):
            tokens.append(token)
            owners.append(index)
    by_size: dict[int, dict[tuple[str, ...], str]] = {}
    for term in terms:
        key = tuple(normalise_words(term.text))
        if key:
            by_size.setdefault(len(key), {})[key] = term.text
    found = []
    for size, known in by_size.items():
        for i in range(len(tokens) - size + 1):
            text = known.get(tuple(tokens[i : i + size]))
            if text is not None:
                span = words[owners[i] : owners[i + size - 1] + 1]
                low = min(float(w.get("probability", 1.0)) for w in span)
                found.append((text, span[0]["start"], span[-1]["end"], low))
    return found


def gained_terms(
    first: WindowText, refocused: WindowText, terms: Sequence[Any]
) -> list[tuple[str, float, float]]:
    """Terms the refocused decoding wrote where the first did not have them.

    A refocused decoding that gained none is another draw of the same audio, no
    better on ordinary speech and sometimes worse: the first pass's words stand.
    """
    had = _terms_in(first.words, terms)
    return [
        (text, start, end)
        for text, start, end, _ in _terms_in(refocused.words, terms)
        if not any(
            other == text and start - EDGE_S < other_end and other_start < end + EDGE_S
            for other, other_start, other_end, _ in had
        )
    ]


def unheard_terms(
    reference: Sequence[dict[str, Any]],
    words: Sequence[dict[str, Any]],
    terms: Sequence[Any],
    language: str,
) -> list[tuple[str, float, float]]:
    """Terms in ``words`` that sound like nothing ``reference`` heard at that moment."""
    unheard = []
    for text, start, end, _ in _terms_in(words, terms):
        heard = " ".join(
            str(w["word"]).strip()
            for w in reference
            if w["end"] > start - EDGE_S and w["start"] < end + EDGE_S
        )
        if _sounds_like(heard, text, language) < UNHEARD_BELOW:
            unheard.append((text, start, end))
    return unheard


def _sounds_like(heard: str, term: str, language: str) -> float:
    if not heard:
        return 0.0
    a, b = compact_key(heard), compact_key(term)
    spelled = fuzz.partial_ratio(b, a) if len(a) > len(b) else fuzz.ratio(a, b)
    return max(spelled, fuzz.ratio(phonetic_key(heard, language), phonetic_key(term, language)))


def splice(
    text: WindowText, other: WindowText, spans: Sequence[tuple[str, float, float]]
) -> WindowText:
    """``text`` with ``other``'s words over each span (a term that was not heard)."""
    words = text.words
    for _, start, end in spans:
        inside = [w for w in words if start - 0.01 <= _middle(w) <= end + 0.01]
        if not inside:
            continue
        low, high = inside[0]["start"], inside[-1]["end"]
        words = (
            [w for w in words if _middle(w) < start - 0.01]
            + [w for w in other.words if low - 0.05 <= _middle(w) <= high + 0.05]
            + [w for w in words if _middle(w) > end + 0.01]
        )
    return with_words(text, words)


def restore_dropped(first: WindowText, second: WindowText) -> tuple[WindowText, list[str]]:
    """``second`` with the stretches of ``first`` it dropped (nothing in their place) back."""
    a, b = _keys(first.words), _keys(second.words)
    written = f" {' '.join(b)} "
    words: list[dict[str, Any]] = []
    restored = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        stretch = " ".join(a[i1:i2])
        # a stretch the second pass wrote elsewhere was moved, not dropped: putting it
        # back would write the sentence twice
        if tag == "delete" and i2 - i1 >= RESTORE_MIN_WORDS and f" {stretch} " not in written:
            words += first.words[i1:i2]
            restored.append(stretch)
        words += second.words[j1:j2]
    return (with_words(second, words), restored) if restored else (second, [])


def _keys(words: Sequence[dict[str, Any]]) -> list[str]:
    """Each word as compared across decodings: case, accents and punctuation aside."""
    return [" ".join(normalise_words(str(w["word"]))) for w in words]


def with_words(text: WindowText, words: Sequence[dict[str, Any]]) -> WindowText:
    """A copy of ``text`` made of ``words`` (one segment: the words carry the timing)."""
    mended = replace(text, segments=[])
    if words:
        mended.segments = [
            {
                "start": words[0]["start"],
                "end": words[-1]["end"],
                "text": "".join(str(w["word"]) for w in words),
                "words": list(words),
            }
        ]
    return mended


def _middle(word: dict[str, Any]) -> float:
    return (float(word["start"]) + float(word["end"])) / 2


def _best_first(retrieved: Sequence[Retrieved]) -> list[Retrieved]:
    best: dict[str, Retrieved] = {}
    for found in retrieved:
        if found.term.key not in best or found.score > best[found.term.key].score:
            best[found.term.key] = found
    return sorted(best.values(), key=lambda r: -r.score)


def _summary(text: WindowText, prompt: str | None) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "temperature": text.temperature,
        "avg_logprob": round(text.avg_logprob, 4),
        "compression_ratio": round(text.compression_ratio, 3),
        "text": text.text.strip(),
    }
