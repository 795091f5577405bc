"""Dictation formatting: commands, traps, numbers, options, timings, benchmark."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import namedtuple
from pathlib import Path
from types import ModuleType

import pytest

from transcribe.dictation import DictationOptions, TimedWord, format_dictation, format_words
from transcribe.errors import ConfigError

NBSP = "\u00a0"
PROJECT = Path(__file__).resolve().parent.parent


def fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def fr(text: str, **kwargs: object) -> str:
    return format_dictation(text, "fr", **kwargs)  # type: ignore[arg-type]


def en(text: str, **kwargs: object) -> str:
    return format_dictation(text, "en", **kwargs)  # type: ignore[arg-type]


# --- spoken commands -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("il va bien virgule merci", "Il va bien, merci"),
        ("il va bien point", "Il va bien."),
        ("fin point final", "Fin."),
        ("motif deux points toux", "Motif : toux"),
        ("toux point-virgule fièvre", "Toux ; fièvre"),
        ("toux point virgule fièvre", "Toux ; fièvre"),
        ("vraiment point d'interrogation", "Vraiment ?"),
        ("enfin point d'exclamation", "Enfin !"),
        ("un a point à la ligne deux b", "Un a.\nDeux b"),
        ("a à la ligne b", "A\nB"),
        ("a nouvelle ligne b", "A\nB"),
        ("a nouveau paragraphe b", "A\n\nB"),
        ("a ouvrez la parenthèse b fermez la parenthèse", "A (b)"),
        ("a ouvrir la parenthèse b fermer la parenthèse", "A (b)"),
        ("a ouvre la parenthèse b ferme la parenthèse", "A (b)"),
        ("il dit ouvrez les guillemets oui fermez les guillemets", "Il dit « oui »"),
        ("lundi tiret mardi", "Lundi - mardi"),
        ("suivi à la ligne tiret bilan", "Suivi\n- Bilan"),
        ("anti trait d'union inflammatoire", "Anti-inflammatoire"),
        ("il attend points de suspension", "Il attend…"),
    ],
)
def test_french_commands(raw: str, written: str) -> None:
    assert fold(fr(raw)) == fold(written)


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("he is well comma thanks", "He is well, thanks"),
        ("he is well period", "He is well."),
        ("he is well full stop", "He is well."),
        ("plan colon rest", "Plan: rest"),
        ("cough semicolon fever", "Cough; fever"),
        ("really question mark", "Really?"),
        ("great exclamation mark", "Great!"),
        ("great exclamation point", "Great!"),
        ("fever new line cough", "Fever\nCough"),
        ("fever new paragraph cough", "Fever\n\nCough"),
        ("pain open parenthesis left close parenthesis", "Pain (left)"),
        ("pain open bracket left close bracket", "Pain (left)"),
        ("he said open quote yes close quote", "He said “yes”"),
        ("he said open quotes yes unquote", "He said “yes”"),
        ("monday dash tuesday", "Monday - tuesday"),
        ("follow hyphen up", "Follow-up"),
    ],
)
def test_english_commands(raw: str, written: str) -> None:
    assert fold(en(raw)) == fold(written)


def test_french_typography_uses_no_break_spaces() -> None:
    out = fr(
        "motif deux points toux point d'interrogation "
        "il dit ouvrez les guillemets oui fermez les guillemets"
    )
    assert out == f"Motif{NBSP}: toux{NBSP}? Il dit «{NBSP}oui{NBSP}»"


def test_whisper_colon_in_french_gets_the_french_space() -> None:
    assert fr("Conclusion: bilan normal.") == f"Conclusion{NBSP}: bilan normal."


def test_capitals_after_sentence_end_and_paragraph() -> None:
    assert fr("bien point au revoir nouveau paragraphe merci") == "Bien. Au revoir\n\nMerci"


def test_no_capital_after_colon_or_inside_quotes() -> None:
    assert (
        fold(fr("il dit deux points ouvrez les guillemets non fermez les guillemets"))
        == "Il dit : « non »"
    )


def test_marks_do_not_double_up() -> None:
    assert fr("oui virgule point") == "Oui."
    assert en("yes comma period") == "Yes."
    assert en("Really? Question mark.") == "Really?"


def test_salutation_gets_its_own_line() -> None:
    assert fr("Chère madame virgule merci point") == "Chère madame,\nMerci."
    assert fr("Maître virgule merci point") == "Maître, merci."
    assert fr(
        "Chère madame virgule merci point", options=DictationOptions(salutation_line=False)
    ) == ("Chère madame, merci.")


def test_input_line_breaks_are_kept() -> None:
    assert fr("Bonjour point\n\nau revoir point") == "Bonjour.\n\nAu revoir."


def test_empty_input() -> None:
    assert fr("") == ""
    assert en("   \n ") == ""


# --- traps: command words that are ordinary words -------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "à ce point de vue il a raison",
        "une mise au point est nécessaire",
        "le point de départ est clair",
        "un point important reste",
        "il faut faire le point",
        "il a mis un point final au litige",
        "une douleur à la ligne médiane",
        "une nouvelle ligne de traitement",
        "il rédige un nouveau paragraphe de ses conclusions",
        "la virgule est mal placée",
    ],
)
def test_french_traps_stay_words(raw: str) -> None:
    assert fold(fr(raw)) == fold(raw[:1].upper() + raw[1:])


def test_french_sutures_are_counted_not_punctuated() -> None:
    assert fr("deux points de suture") == "2 points de suture"
    assert fr("il a eu deux points de suture point") == "Il a eu 2 points de suture."


@pytest.mark.parametrize(
    "raw",
    [
        "on this point we agree",
        "a period of three weeks",
        "colon cancer screening",
        "the sigmoid colon",
        "biopsies of the colon showed colitis",
        "a full stop of treatment",
        "there is a question mark over his fitness",
        "a dash of salt",
        "he added a new paragraph to the contract",
    ],
)
def test_english_traps_stay_words(raw: str) -> None:
    out = en(raw)
    assert ":" not in out and "." not in out.rstrip(".") and "?" not in out and " - " not in out
    assert "\n" not in out


def test_english_trap_period_of_weeks_exact() -> None:
    assert en("a period of three weeks") == "A period of 3 weeks"
    assert en("the sigmoid colon period") == "The sigmoid colon."


# --- numbers, units, dates -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("depuis trois semaines", "Depuis 3 semaines"),
        ("âgée de soixante-huit ans", "Âgée de 68 ans"),
        ("deux virgule cinq milligrammes", "2,5 mg"),
        ("zéro virgule cinq milligramme par kilo", "0,5 mg/kg"),
        ("cent quarante sur quatre-vingt-dix millimètres de mercure", "140/90 mmHg"),
        ("le douze mars deux mille vingt-six", "Le 12 mars 2026"),
        ("le premier mars", "Le 1er mars"),
        ("cinquante microgrammes", "50 µg"),
        ("cinq cents millilitres", "500 ml"),
        ("quatre-vingt-dix kilomètres heure", "90 km/h"),
        ("quatre-vingt-dix-huit pour cent", "98 %"),
        ("soixante-dix kilos", "70 kg"),
        ("trois centimètres sur deux millimètres", "3 cm sur 2 mm"),
        ("un mètre soixante-dix", "1,70 m"),
        ("à quatorze heures trente", "À 14 h 30"),
        ("une dyspnée et un patient", "Une dyspnée et un patient"),
        ("un milligramme", "1 mg"),
        ("prendre un comprimé", "Prendre 1 comprimé"),
        ("une fois par jour", "Une fois par jour"),
        ("vingt et un jours", "21 jours"),
        ("la deuxième fois", "La deuxième fois"),
        ("l'article mille deux cent quarante", "L'article 1240"),
        ("trois mille euros", "3 000 euros"),
        ("douleur cotée sept sur dix", "Douleur cotée 7/10"),
    ],
)
def test_french_numbers(raw: str, written: str) -> None:
    assert fold(fr(raw)) == fold(written)


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("two point five milligrams", "2.5 mg"),
        ("a fifty four year old man", "A 54 year old man"),
        ("one hundred and forty over ninety", "140/90"),
        ("ninety six percent", "96%"),
        ("two stitches", "2 stitches"),
        ("one tablet", "1 tablet"),
        ("one of them", "One of them"),
        ("one hundred milligrams", "100 mg"),
        ("a hundred milligrams", "100 mg"),
        ("the first visit", "The first visit"),
        ("March twelfth twenty twenty six", "March 12, 2026"),
        ("in twenty nineteen", "In 2019"),
        ("seventy kilometers per hour", "70 km/h"),
        ("five millimeters of mercury", "5 mmHg"),
        ("fifteen thousand dollars", "15,000 dollars"),
        ("four point two millimoles per liter", "4.2 mmol/l"),
    ],
)
def test_english_numbers(raw: str, written: str) -> None:
    assert fold(en(raw)) == fold(written)


def test_virgule_between_numbers_is_a_decimal_but_not_when_punctuated() -> None:
    assert fr("deux virgule cinq") == "2,5"
    # a small count in running text stays in words (French number policy)
    assert fr("deux, virgule, trois enfants") == "Deux, trois enfants"
    assert fr("vingt, virgule, trente patients") == "20, 30 patients"


def test_numbers_can_be_switched_off() -> None:
    assert (
        fr("trois semaines virgule", options=DictationOptions(numbers=False)) == "Trois semaines,"
    )


# --- Whisper's own punctuation ----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("Point, à la ligne.", ""),
        ("Bien. Point, à la ligne. Merci.", "Bien.\nMerci."),
        ("Cher confrère, virgule, je vous remercie.", "Cher confrère,\nJe vous remercie."),
        ("Il va bien. Virgule. Je le revois. Point.", "Il va bien, je le revois."),
        ("Est-ce utile. Point d'interrogation. Non. Point à la ligne.", "Est-ce utile ? Non."),
        ("Bien. Nouveau paragraphe. Merci.", "Bien.\n\nMerci."),
        ("Il dit, ouvrez les guillemets, non, fermez les guillemets, point.", "Il dit « non »."),
    ],
)
def test_already_punctuated_french(raw: str, written: str) -> None:
    assert fold(fr(raw)) == fold(written)


def test_whisper_drops_the_accent_of_a_la_ligne() -> None:
    assert fr("Le bilan est normal. A la ligne. Il sort. Point, a la ligne.") == (
        "Le bilan est normal.\nIl sort."
    )
    assert fr("Il a la ligne directe point") == "Il a la ligne directe."


def test_already_punctuated_english() -> None:
    assert en("Plan, colon, rest. Period. New line. Review. Period.") == "Plan: rest.\nReview."
    assert en("He is well. Comma. He is happy. Full stop.") == "He is well, he is happy."


@pytest.mark.parametrize(
    "written",
    [
        "Le patient va bien.",
        f"Conclusion{NBSP}: insuffisance cardiaque.",
        "Je vous remercie, cher confrère, de m'avoir adressé ce patient.",
        "Il a 3 enfants.",
    ],
)
def test_written_text_passes_through(written: str) -> None:
    assert fr(written) == written


# --- per-client options ------------------------------------------------------------


def test_all_commands_off_keeps_the_words() -> None:
    options = DictationOptions(commands=False)
    assert fr("bien virgule merci point", options=options) == "Bien virgule merci point"


def test_disable_by_action_group_and_phrase() -> None:
    assert fr(
        "a nouveau paragraphe b", options=DictationOptions(disabled=frozenset({"new_paragraph"}))
    ) == ("A nouveau paragraphe b")
    assert (
        fr("a à la ligne b", options=DictationOptions(disabled=frozenset({"layout"})))
        == "A à la ligne b"
    )
    assert (
        fr("a tiret b virgule c", options=DictationOptions(disabled=frozenset({"tiret"})))
        == "A tiret b, c"
    )


def test_extra_commands_write_their_text() -> None:
    options = DictationOptions(extra={"signature": "Docteur Martin\nCardiologue", "stop": "."})
    assert fr("merci stop signature", options=options) == "Merci. Docteur Martin\nCardiologue"


def test_extra_command_overrides_builtin_and_survives_commands_off() -> None:
    options = DictationOptions(extra={"tiret": "–"}, commands=False)
    assert fr("a tiret b virgule", options=options) == "A – b virgule"


def test_extra_command_respects_determiners() -> None:
    options = DictationOptions(extra={"signature": "Dr Martin"})
    assert fr("la signature du contrat", options=options) == "La signature du contrat"


def test_straight_english_quotes() -> None:
    options = DictationOptions(english_quotes="straight")
    assert en("he said open quote yes close quote", options=options) == 'He said "yes"'


@pytest.mark.parametrize(
    "kwargs",
    [
        {"disabled": frozenset({"no_such_command"})},
        {"extra": {"...": "x"}},
        {"english_quotes": "fancy"},
        {"pause_s": -1.0},
        {"commands": "yes"},
        {"disabled": "tiret"},
    ],
)
def test_bad_options_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        DictationOptions(**kwargs)  # type: ignore[arg-type]


def test_options_from_mapping() -> None:
    options = DictationOptions.from_mapping(
        {"disabled": ["dash", "quotes"], "extra": {"cordialement": "Bien à vous"}}
    )
    assert options.disabled == frozenset({"dash", "quotes"})
    assert fr("a tiret b cordialement", options=options) == "A tiret b Bien à vous"
    with pytest.raises(ConfigError):
        DictationOptions.from_mapping({"disabeld": ["dash"]})
    with pytest.raises(ConfigError):
        DictationOptions.from_mapping({"extra": ["x"]})


def test_options_are_hashable_and_frozen() -> None:
    options = DictationOptions(extra={"a b": "c"})
    hash(options)
    with pytest.raises(AttributeError):
        options.numbers = False  # type: ignore[misc]


def test_languages() -> None:
    assert format_dictation("bien point", "fr-FR") == "Bien."
    assert format_dictation("fine period", "EN_gb") == "Fine."
    with pytest.raises(ConfigError):
        format_dictation("gut", "de")


# --- pauses from word timings ---------------------------------------------------------


def timed(spec: str) -> list[TimedWord]:
    """Words from "word@start-end" items; the text is the words joined by spaces."""
    words = []
    for item in spec.split():
        word, times = item.rsplit("@", 1)
        start, end = (float(x) for x in times.split("-"))
        words.append(TimedWord(" " + word.replace("_", " "), start, end, 0.9))
    return words


def test_pauses_turn_an_ambiguous_phrase_into_a_command() -> None:
    text = "Traitement deux points de l'amoxicilline"
    assert fr(text) == "Traitement deux points de l'amoxicilline"
    words = timed(
        "Traitement@0.0-0.5 deux@1.2-1.4 points@1.4-1.7 de@2.4-2.5 l'amoxicilline@2.5-3.2"
    )
    assert fr(text, words=words) == f"Traitement{NBSP}: de l'amoxicilline"


def test_no_pause_keeps_an_ambiguous_phrase_a_word() -> None:
    text = "Il reste deux points à discuter"
    assert fold(fr(text)) == "Il reste : à discuter"  # text alone cannot tell
    words = timed(
        "Il@0.0-0.1 reste@0.1-0.4 deux@0.42-0.6 points@0.6-0.9 à@0.92-1.0 discuter@1.0-1.5"
    )
    assert fr(text, words=words) == "Il reste deux points à discuter"


def test_pause_does_not_override_a_determiner_alone() -> None:
    text = "il a eu un point de suture"
    words = timed(
        "il@0-0.1 a@0.1-0.2 eu@0.2-0.3 un@0.3-0.4 point@1.0-1.2 de@1.25-1.3 suture@1.3-1.8"
    )
    assert fr(text, words=words) == "Il a eu un point de suture"


def test_english_pauses_around_colon() -> None:
    text = "the findings colon the colon was normal"
    words = timed(
        "the@0-0.1 findings@0.1-0.6 colon@1.1-1.4 "
        "the@2.0-2.1 colon@2.1-2.5 was@2.5-2.7 normal@2.7-3.1"
    )
    assert en(text, words=words) == "The findings: the colon was normal"


def test_timings_align_when_text_was_edited() -> None:
    words = timed(
        "Traitement@0.0-0.5 deux@1.2-1.4 points@1.4-1.7 de@2.4-2.5 l'amoxicilline@2.5-3.2"
    )
    edited = "Traitement deux points de l'amoxicilline orale"
    assert fold(fr(edited, words=words)) == "Traitement : de l'amoxicilline orale"


def test_format_words_takes_faster_whisper_words() -> None:
    word = namedtuple("Word", "start end word probability")
    words = [
        word(0.0, 0.5, " Traitement", 0.9),
        word(1.2, 1.4, " deux", 0.9),
        word(1.4, 1.7, " points", 0.9),
        word(2.4, 2.5, " de", 0.9),
        word(2.5, 3.0, " l'amoxicilline.", 0.8),
    ]
    assert format_words(words, "fr") == f"Traitement{NBSP}: de l'amoxicilline."


# --- benchmark script ------------------------------------------------------------------


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_format", PROJECT / "bench" / "format.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_pairs(
    folder: Path, fr_pairs: list[tuple[str, str]], en_pairs: list[tuple[str, str]]
) -> None:
    for lang, pairs in (("fr", fr_pairs), ("en", en_pairs)):
        lines = [
            json.dumps({"raw": raw, "written": written}, ensure_ascii=False)
            for raw, written in pairs
        ]
        (folder / f"{lang}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_bench_passes_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    write_pairs(tmp_path, [("bien point", "Bien.")], [("fine period", "Fine.")])
    assert bench.main(["format.py", str(tmp_path)]) == 0
    assert "fr: 1/1" in capsys.readouterr().out
    write_pairs(tmp_path, [("bien point", "Mal.")], [("fine period", "Fine.")])
    assert bench.main(["format.py", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "fr: 0/1" in out and "EXPECTED" in out


def test_bench_folds_no_break_spaces(tmp_path: Path) -> None:
    bench = load_bench()
    assert bench.fold(f"a{NBSP}:  b\n\nc ") == "a : b c"
    assert bench.main(["format.py", str(tmp_path / "missing")]) == 2
