"""Runaway text: loops, doubled sentences, echoed prompts, tail hallucinations."""

from __future__ import annotations

import pytest

from transcribe.asr.loops import closing_copy, compression_ratio, drop_hallucinations, find_runaway

LEAD_IN = "Compte rendu médical. Vocabulaire :"
PROMPT_TERMS = ["bisoprolol", "ramipril", "atorvastatine", "périndopril", "furosémide"]


def runaway(text: str, terms: list[str] | None = None, lead_in: str = "") -> str | None:
    found = find_runaway(text.split(), text, terms or [], lead_in)
    return found.kind if found else None


@pytest.mark.parametrize(
    "text",
    [
        # the English dictation in a French client: the prompt in a loop
        "Compte rendu, périndopril, périndopril, périndopril, périndopril, périndopril,",
        # seen on Common Voice: a sentence written twice
        "Premier gouvernement Martin. Premier gouvernement Martin.",
        "the patella, the patella, the patella, the patella was resurfaced",
    ],
)
def test_repetitions_are_runaways(text: str) -> None:
    assert runaway(text) == "repeat"


@pytest.mark.parametrize(
    "text",
    [
        "Il dit non, non, à la fin de la consultation.",
        "deux comprimés le matin, deux comprimés le soir",
        "très très bien, vu ce jour, RAS, à revoir dans trois mois.",
        "The echo showed atrial fibrillation. The patient was reassured.",
    ],
)
def test_ordinary_speech_is_not_a_runaway(text: str) -> None:
    assert runaway(text, PROMPT_TERMS, LEAD_IN) is None


def test_a_repeat_says_where_its_first_copy_ends_and_whether_it_closes_the_text() -> None:
    words = ["from", "day", "one,", "period.", "period,", "period,", "period"]
    found = find_runaway(words, " ".join(words))
    assert found is not None and found.closing
    assert words[: found.once] == ["from", "day", "one,", "period."]
    words = ["the", "patella,", "the", "patella,", "the", "patella", "was", "resurfaced"]
    found = find_runaway(words, " ".join(words))
    assert found is not None and not found.closing and found.once == 2


def test_a_repeat_cut_short_by_the_length_cap_still_closes_the_text() -> None:
    """The decoder stopped one word into a third copy: what follows the repeat is
    the beginning of the phrase again, so the first copy can stand alone."""
    words = [
        "she",
        "should",
        "avoid",
        "codeine",
        "period",
        "she",
        "should",
        "avoid",
        "codeine",
        "period",
        "she",
    ]
    found = find_runaway(words, " ".join(words))
    assert found is not None and found.closing
    assert words[: found.once] == ["she", "should", "avoid", "codeine", "period"]


def test_a_closing_stretch_written_again_is_found_where_it_begins() -> None:
    said = "the clause is narrowly drafted, period. the doctrine of frustration does not apply"
    again = f"{said} period. we recommend a notice period. the doctrine of frustration does"
    words = again.split()
    cut = closing_copy(words)
    assert cut is not None and " ".join(words[:cut]).endswith("we recommend a notice period.")
    # a short phrase said twice, or a text that ends on something new, is no copy
    assert closing_copy(["two", "tablets", "in", "the", "morning", "and", "two", "tablets"]) is None
    assert closing_copy(said.split()) is None


def test_the_prompt_read_back_is_an_echo() -> None:
    assert runaway("bisoprolol, ramipril, atorvastatine, et le reste", PROMPT_TERMS) == "echo"
    assert runaway("Compte rendu médical. Vocabulaire : bisoprolol", [], LEAD_IN) == "echo"
    # the same drugs in another order, or with words between them, were dictated
    assert runaway("atorvastatine, bisoprolol et ramipril", PROMPT_TERMS) is None
    assert runaway("sous bisoprolol, puis ramipril le soir, atorvastatine", PROMPT_TERMS) is None


def test_a_very_compressible_text_is_a_runaway() -> None:
    text = "la la " * 40 + "fin"
    assert compression_ratio(text) > 2.4
    assert find_runaway(["x"], text) is not None


def segment(text: str, start: float, end: float) -> dict[str, object]:
    return {"text": text, "start": start, "end": end}


@pytest.mark.parametrize(
    ("tail", "dropped"),
    [
        (segment(" The echo showed AF. The echo showed AF.", 5.46, 5.96), True),  # seen
        (segment(" showed AF. Start bisoprolol", 5.46, 5.9), True),
        (segment(" The echo showed AF.", 5.46, 7.2), False),  # repeated at speaking pace
        (segment(" Please call.", 5.46, 5.76), False),  # fast, but new and too short to judge
    ],
)
def test_whisper_echoes_at_the_end_are_dropped(tail: dict[str, object], dropped: bool) -> None:
    """Conditioned on its own text, Whisper may fill a file's last half-second with the
    dictation again (seen with a second-pass prompt on a test clip)."""
    head = segment(" The echo showed AF. Start bisoprolol.", 0.0, 5.46)
    kept, echoes = drop_hallucinations([head, tail])
    assert (echoes == [str(tail["text"]).strip()]) is dropped
    assert kept == ([head] if dropped else [head, tail])


def test_words_written_after_the_audio_ran_out_are_cut() -> None:
    """Seen on bench/asr.py's discharge letter: "... a repeat chest radiograph. This is
    the final paragraph of the eftriaxone." with the last seven words at one instant."""

    def word(text: str, start: float, end: float) -> dict[str, object]:
        return {"word": f" {text}", "start": start, "end": end, "probability": 0.5}

    spoken = [word("chest", 0.0, 0.4), word("radiograph.", 0.4, 1.1)]
    ghost = [word(w, 1.1, 1.1) for w in ["This", "is", "the", "final", "paragraph."]]
    last = {"text": "", "start": 0.0, "end": 1.1, "words": spoken + ghost}
    kept, dropped = drop_hallucinations([last])
    assert dropped == ["This is the final paragraph."]
    assert kept[0]["text"] == " chest radiograph." and kept[0]["words"] == spoken

    two_quick = {"text": "", "start": 0.0, "end": 1.1, "words": spoken + ghost[:2]}
    assert drop_hallucinations([two_quick])[1] == []  # a short squeeze at the end is alignment


def test_a_closing_segment_spoken_impossibly_fast_is_dropped() -> None:
    """Seen on the same letter with another prompt: a last segment of eight words in
    0.6 s, "This is the last paragraph of the period.", after the real end."""
    head = segment(" a repeat chest radiograph.", 27.0, 29.78)
    tail = segment(" This is the last paragraph of the period.", 29.78, 30.38)
    assert drop_hallucinations([head, tail]) == ([head], [tail["text"].strip()])
    slow = segment(" Yours sincerely, Doctor Hart.", 29.78, 31.5)
    assert drop_hallucinations([head, slow]) == ([head, slow], [])
