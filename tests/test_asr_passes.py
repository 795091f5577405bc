"""Choosing between decodings of a window: never worse, never a sentence twice.

The decodings are given, not run: what matters here is the choice, and a prompt that
derails Whisper cannot be produced on demand (the end-to-end cases, with the real
model, are in test_transcription_safety.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from transcribe.asr.decoder import WindowText
from transcribe.asr.loops import Runaway, find_runaway
from transcribe.asr.passes import (
    FileDecoding,
    PassSettings,
    _near_misses,
    _take_refocused,
    _without_echoed,
    choose,
    gained_terms,
    restore_dropped,
    splice,
    unheard_terms,
    without_closing_repeat,
)
from transcribe.asr.pipeline import _without_join_echo
from transcribe.asr.windows import Window
from transcribe.vocabulary import Term, TermSource, Vocabulary, build_initial_prompt
from transcribe.vocabulary.retrieve import Retrieved

WINDOW = Window(file=0, index=0, audio=np.zeros(16000, np.float32), speech=[])


def decoded(text: str, logprob: float = -0.3, *, start: float = 0.0, prompt: str | None = "p"):
    """A window's decoding: one segment, words 0.4 s apart."""
    words = [
        {
            "word": f" {w}",
            "start": start + 0.4 * i,
            "end": start + 0.4 * i + 0.35,
            "probability": 0.5,
        }
        for i, w in enumerate(text.split())
    ]
    decoding = WindowText(WINDOW, prompt, 0.0, logprob_sum=logprob * 10, token_count=10)
    decoding.segments = [
        {"start": start, "end": start + 0.4 * len(words), "text": " " + text, "words": words}
    ]
    return decoding


def terms(*texts: str) -> list[Term]:
    return [Term(text, TermSource.DOMAIN) for text in texts]


def plain(decoding: WindowText) -> str:
    return decoding.text.strip()


def test_a_better_refocused_decoding_is_kept() -> None:
    first = decoded("the ecacardiography showed a tournicate", -0.6)
    second = decoded("the echocardiography showed a tourniquet", -0.4)
    kept, why = choose(first, second, terms("echocardiography", "tourniquet"), "en")
    assert kept is not None and plain(kept) == "the echocardiography showed a tourniquet"
    assert why == ""


@pytest.mark.parametrize(
    ("text", "logprob", "why"),
    [
        ("the echocardiography showed a tourniquet", -2.0, "much lower log-probability"),
        ("echocardiography", -0.3, "1 words where the first pass had 5"),
    ],
)
def test_a_derailed_decoding_is_not_kept(text: str, logprob: float, why: str) -> None:
    first = decoded("the ecacardiography showed a tournicate", -0.4)
    kept, reason = choose(first, decoded(text, logprob), terms("echocardiography"), "en")
    assert kept is None and reason == why


def test_a_term_where_nothing_was_heard_gives_way() -> None:
    """A prompt can make Whisper write a term over a pause ("Prud'hommes !" after a
    sentence, seen on Common Voice): the unprompted decoding heard nothing there."""
    heard = decoded("donc en moyenne un vote par jour", -0.3, prompt=None)
    biased = decoded("donc en moyenne un vote par jour Prud'hommes", -0.35)
    biased.segments[0]["words"][-1].update(start=5.0, end=5.5)
    found = unheard_terms(heard.words, biased.words, terms("Prud'hommes"), "fr")
    assert [text for text, _, _ in found] == ["Prud'hommes"]
    kept, why = choose(heard, biased, terms("Prud'hommes"), "fr")
    assert kept is not None and plain(kept) == "donc en moyenne un vote par jour"
    assert why.startswith("unheard: Prud'hommes")


def test_a_term_that_sounds_like_what_was_heard_stays() -> None:
    heard = decoded("we discussed the in memory clause", prompt=None)
    biased = decoded("we discussed the indemnity clause")
    assert unheard_terms(heard.words, biased.words, terms("indemnity"), "en") == []


def test_words_the_second_pass_dropped_come_back() -> None:
    """Seen on the discharge letter: a long prompt made Whisper skip a sentence."""
    first = decoded("he had ceftriaxone his protein fell past history includes diabetes", -0.5)
    second = decoded("he had ceftriaxone past history includes diabetes", -0.4)
    mended, restored = restore_dropped(first, second)
    assert restored == ["his protein fell"]
    assert plain(mended) == "he had ceftriaxone his protein fell past history includes diabetes"


def test_a_sentence_moved_by_the_second_pass_is_not_written_twice() -> None:
    first = decoded("start bisoprolol today review in two weeks", -0.5)
    second = decoded("review in two weeks start bisoprolol today", -0.4)
    mended, restored = restore_dropped(first, second)
    assert restored == []
    assert plain(mended).count("start bisoprolol today") == 1


def test_a_window_repeating_the_end_of_the_one_before_loses_the_copy() -> None:
    before = decoded("the patient was reassured and discharged home", start=0.0)
    after = decoded("reassured and discharged home follow up in clinic", start=10.0)
    joined = _without_join_echo(before.words, after)
    assert plain(joined) == "follow up in clinic"
    fresh = decoded("follow up in clinic", start=10.0)
    assert _without_join_echo(before.words, fresh) is fresh


def test_the_guard_keeps_a_biased_decoding_whose_terms_the_plain_one_ran_together() -> None:
    """Unprompted, Whisper writes a dictation's terms as fewer, longer words
    ("nearthroplasty underspinal"): the guard's word count says nothing about the biased text."""
    plain_words = decoded("right nearthroplasty underspinal", -0.7, prompt=None)
    biased = decoded("right total knee arthroplasty under spinal anaesthesia", -0.5)
    vocabulary = terms("knee arthroplasty", "spinal anaesthesia")
    assert choose(plain_words, biased, vocabulary, "en")[0] is None  # a refocus would not
    kept, _ = choose(plain_words, biased, vocabulary, "en", same_length=False)
    assert kept is not None and plain(kept).startswith("right total knee arthroplasty")


def test_only_windows_with_near_misses_are_decoded_again() -> None:
    vocabulary = Vocabulary("medical", "en", tuple(terms("echocardiography", "tourniquet")))
    exact = decoded("the echocardiography was normal")
    near = decoded("the ecacardiography was normal")
    assert _near_misses(vocabulary, exact, "en") == []
    [found] = _near_misses(vocabulary, near, "en")
    assert found.term.text == "echocardiography"


def test_only_the_terms_a_refocused_decoding_gained_are_taken_from_it() -> None:
    """Elsewhere the refocused text is another draw of the same audio: the first
    pass's words stand ("Plus ou moins" stays, however the second draw heard it)."""
    first = decoded("plus ou moins the ecacardiography was normal", prompt=None)
    second = decoded("plus au moins the echocardiography was normal")
    vocabulary = terms("echocardiography")
    gained = gained_terms(first, second, vocabulary)
    assert [term for term, _, _ in gained] == ["echocardiography"]
    assert plain(splice(first, second, gained)) == "plus ou moins the echocardiography was normal"
    assert gained_terms(second, second, vocabulary) == []  # nothing new: the first stands


def test_a_refocused_decoding_that_only_repeats_its_last_word_keeps_the_rest() -> None:
    """With no speech left, prompted Whisper wrote "period" until its length cap:
    dropping the whole decoding lost the terms it had gained before."""
    looping = decoded("full weight bearing and physiotherapy from day one period. period period")
    found = find_runaway([w["word"] for w in looping.words], looping.text)
    assert found is not None
    trimmed = without_closing_repeat(looping, found)
    assert trimmed is not None
    assert plain(trimmed) == "full weight bearing and physiotherapy from day one period."
    middle = decoded("the patella the patella the patella was resurfaced")
    found = find_runaway([w["word"] for w in middle.words], middle.text)
    assert found is not None and without_closing_repeat(middle, found) is None


def refocusing(*lexicon: str, heard: dict[str, str]) -> FileDecoding:
    """A file whose first pass is decoded and whose refocused prompt leads with the
    terms nearly heard (``heard``: term -> what the first pass wrote)."""
    vocabulary = Vocabulary("medical", "en", tuple(terms(*lexicon)))
    found = [Retrieved(t, 90.0, heard[t.text], 0.3) for t in vocabulary if t.text in heard]
    lead = Vocabulary(
        "medical",
        "en",
        tuple(r.term for r in found) + tuple(t for t in vocabulary if t.text not in heard),
    )
    decoding = FileDecoding([WINDOW], "en", vocabulary, None, retrieved=found)
    decoding.refocused = build_initial_prompt(lead, "en")
    decoding.records[0] = {"kept": "first"}
    return decoding


def test_a_refocused_decoding_that_writes_its_ending_again_keeps_what_came_before() -> None:
    """Past the end of the speech, prompted Whisper went back and wrote an earlier
    stretch again: cut, the decoding is the right length and its terms are kept."""
    decoding = refocusing(
        "force majeure",
        "doctrine of frustration",
        heard={
            "force majeure": "force mature",
            "doctrine of frustration": "doctrine on frustration",
        },
    )
    said = "rely on the force {} clause, period. the doctrine {} frustration is unlikely to apply"
    decoding.texts[0] = decoded(said.format("mature", "on"), prompt=None)
    assert decoding.refocused is not None
    refocused = decoded(
        said.format("majeure", "of") + " period. the doctrine of frustration is unlikely to",
        prompt=decoding.refocused.text,
    )
    assert _take_refocused(decoding, WINDOW, refocused, decoding.retrieved) is None
    assert plain(decoding.texts[0]) == said.format("majeure", "of") + " period."
    assert decoding.records[0]["kept"] == "refocused"
    assert "closing copy" in decoding.records[0]["refocused"]["trimmed"]


def test_a_refocused_decoding_that_echoes_terms_is_retried_without_them() -> None:
    """ "Dear doctor, patella, palpation, patella, palpation...": a letter to Dr Patel.
    The window is decoded once more, with those terms out of the refocused prompt."""
    decoding = refocusing(
        "patella",
        "palpation",
        "atrial fibrillation",
        "renal function",
        heard={"patella": "Patel", "palpation": "palpitations", "atrial fibrillation": "a real"},
    )
    assert decoding.refocused is not None
    letter = "dear doctor Patel thank you for referring Mrs Brooks who has {} and palpitations"
    decoding.texts[0] = decoded(letter.format("a real fibrillation"), prompt=None)
    looping = decoded(
        "dear doctor patella palpation patella palpation patella palpation patella palpation",
        prompt=decoding.refocused.text,
    )
    runaway = _take_refocused(decoding, WINDOW, looping, decoding.retrieved)
    assert runaway is not None and decoding.records[0]["kept"] == "first"
    retry = _without_echoed(decoding, runaway, PassSettings())
    assert retry is not None and retry in decoding.retried
    assert [t.text for t in retry.terms] == ["atrial fibrillation", "renal function"]
    better = decoded(letter.format("atrial fibrillation"), prompt=retry.text)
    assert _take_refocused(decoding, WINDOW, better, decoding.retrieved) is None
    assert plain(decoding.texts[0]) == letter.format("atrial fibrillation")
    record = decoding.records[0]
    assert record["refocused"]["without"] == ["patella", "palpation"]
    assert "patella palpation" in record["refocused_before"]["trimmed"]  # what was left: 4 words
    # a runaway that holds no term of the prompt: nothing to take out, no retry
    other = Runaway("repeat", "the the the", 0, 3)
    assert _without_echoed(decoding, other, PassSettings()) is None
    # "fibrillation fibrillation fibrillation": the term holding the loop is taken out
    held = _without_echoed(decoding, Runaway("repeat", "fibrillation", 0, 3), PassSettings())
    assert held is not None and "atrial fibrillation" not in [t.text for t in held.terms]


def test_closing_words_whisper_did_not_believe_are_cut_from_a_refocused_decoding() -> None:
    """ "... refer to podiatry period. Diabetes-renew period is", the last four words
    below 0.05: Whisper starting the dictation again in the last half-second."""
    decoding = refocusing("podiatry", heard={"podiatry": "pediatry"})
    assert decoding.refocused is not None
    decoding.texts[0] = decoded("and refer to pediatry period.", prompt=None)
    refocused = decoded(
        "and refer to podiatry period. Diabetes -renew period is", prompt=decoding.refocused.text
    )
    for word in refocused.words[-4:]:
        word["probability"] = 0.01
    _take_refocused(decoding, WINDOW, refocused, decoding.retrieved)
    assert plain(decoding.texts[0]) == "and refer to podiatry period."
    assert "did not believe" in decoding.records[0]["refocused"]["trimmed"]


def test_a_refocused_decoding_asked_to_stop_early_goes_on_with_the_first_pass() -> None:
    """The terms Whisper doubted were early in the window: the second decoding went
    only past them, and the first pass's words after it stand, none twice at the seam."""
    decoding = refocusing("atrial fibrillation", heard={"atrial fibrillation": "a real fib"})
    assert decoding.refocused is not None
    decoding.texts[0] = decoded(
        "she has a real fibrillation period we will see her again yours sincerely", prompt=None
    )
    early = decoded("she has atrial fibrillation period we", prompt=decoding.refocused.text)
    early.segments[0]["words"][-1]["end"] = 2.0  # "we" aligned a little late
    assert _take_refocused(decoding, WINDOW, early, decoding.retrieved) is None
    assert plain(decoding.texts[0]) == (
        "she has atrial fibrillation period we will see her again yours sincerely"
    )
