"""French notations secretaries expect, held-out style (invented content, no real
patients or cases): the number policy in running text, day counts, article
references, amounts, titles, and a sentence-final "point" after an adjective.

Every notation comes with both sides of its trap: a small number that must stay
a word next to one that must become digits, a "tiret" that joins a reference next
to one that is a dash, the options on and off. Comparison folds whitespace, as the
benchmark does, except where the no-break space itself is under test."""

# ruff: noqa: E501 - a table of whole dictated sentences reads better unwrapped

from __future__ import annotations

import re

import pytest

from transcribe.dictation import DictationOptions, format_dictation
from transcribe.errors import ConfigError

NBSP = "\u00a0"
SIGN = DictationOptions(currency_sign=True)
TITLES = DictationOptions(abbreviate_titles=True)


def fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def lines(text: str) -> list[str]:
    return [fold(line) for line in text.split("\n")]


def fr(text: str, options: DictationOptions | None = None) -> str:
    return format_dictation(text, "fr", options=options or DictationOptions())


NUMBER_PAIRS = [
    # --- small numbers in running text stay words ---
    ("Les deux licences ont été résiliées point", "Les deux licences ont été résiliées."),
    (
        "Le salarié a été mis en garde à trois reprises point",
        "Le salarié a été mis en garde à trois reprises.",
    ),
    (
        "Elle est mariée virgule a deux enfants et vit à domicile point",
        "Elle est mariée, a deux enfants et vit à domicile.",
    ),
    (
        "Nous avons reçu trois courriers recommandés point",
        "Nous avons reçu trois courriers recommandés.",
    ),
    ("Il a consulté deux fois aux urgences point", "Il a consulté deux fois aux urgences."),
    (
        "Dans les deux cas virgule la demande est recevable point",
        "Dans les deux cas, la demande est recevable.",
    ),
    (
        "Les deux premiers jours ont été difficiles point",
        "Les deux premiers jours ont été difficiles.",
    ),
    ("Quatre témoins ont été entendus point", "Quatre témoins ont été entendus."),
    ("Les deux se voient chaque semaine point", "Les deux se voient chaque semaine."),
    # an elision with Whisper's curly apostrophe is an article, never "d’1"
    (
        "Il s’agit d’un refus et d’une mise en demeure point",
        "Il s’agit d’un refus et d’une mise en demeure.",
    ),
    # --- numbers that measure, dose, date or refer become digits ---
    ("Prendre trois comprimés par jour point", "Prendre 3 comprimés par jour."),
    (
        "Elle prend deux milligrammes de bromazépam le soir point",
        "Elle prend 2 mg de bromazépam le soir.",
    ),
    ("Les douleurs évoluent depuis trois mois point", "Les douleurs évoluent depuis 3 mois."),
    ("L'enfant est âgé de sept ans point", "L'enfant est âgé de 7 ans."),
    ("Il sera revu le trois mars à huit heures trente point", "Il sera revu le 3 mars à 8 h 30."),
    ("La kaliémie est à trois virgule cinq point", "La kaliémie est à 3,5."),
    ("L'HbA1c a baissé de un pour cent point", "L'HbA1c a baissé de 1 %."),
    ("Il présente un diabète de type deux point", "Il présente un diabète de type 2."),
    ("Le stade trois est atteint point", "Le stade 3 est atteint."),
    ("Augmenter à deux ou trois sachets par jour point", "Augmenter à 2 ou 3 sachets par jour."),
    ("Un à deux comprimés le soir si besoin point", "1 à 2 comprimés le soir si besoin."),
    ("Paracétamol un gramme trois fois par jour point", "Paracétamol 1 g 3 fois par jour."),
    ("Elle marche quatre kilomètres par jour point", "Elle marche 4 km par jour."),
    ("Le souffle est coté trois sur six point", "Le souffle est coté 3/6."),
    ("Il a été hospitalisé du deux au neuf mai point", "Il a été hospitalisé du 2 au 9 mai."),
    (
        "On note une hémoglobine à neuf grammes par décilitre point",
        "On note une hémoglobine à 9 g/dl.",
    ),
    (
        "Il a bénéficié de douze séances de rééducation point",
        "Il a bénéficié de 12 séances de rééducation.",
    ),
    # --- both sides of the trap in one sentence ---
    (
        "Il a oublié à trois reprises de prendre ses trois comprimés point",
        "Il a oublié à trois reprises de prendre ses 3 comprimés.",
    ),
    (
        "Les deux médecins ont prescrit deux milligrammes de morphine point",
        "Les deux médecins ont prescrit 2 mg de morphine.",
    ),
    (
        "Ses deux fils l'accompagnent depuis deux semaines point",
        "Ses deux fils l'accompagnent depuis 2 semaines.",
    ),
    (
        "Le patient a eu deux points de suture et deux consultations point",
        "Le patient a eu 2 points de suture et deux consultations.",
    ),
]

DAY_COUNT_PAIRS = [
    ("Ablation des fils à J dix point", "Ablation des fils à J10."),
    ("Contrôle biologique à J plus trois point", "Contrôle biologique à J+3."),
    ("Arrêt des anticoagulants à J moins deux point", "Arrêt des anticoagulants à J-2."),
    (
        "Le pansement a été refait à J zéro et à J un point",
        "Le pansement a été refait à J0 et à J1.",
    ),
    ("Whisper a écrit J 10 et J+ 3 point", "Whisper a écrit J10 et J+3."),
    # a day count next to a duration: J10, but "10 jours"
    (
        "Ablation des fils à J dix virgule soit dans dix jours point",
        "Ablation des fils à J10, soit dans 10 jours.",
    ),
    ("Le jour J est fixé au lundi point", "Le jour J est fixé au lundi."),
    ("J'ai revu la patiente à J sept point", "J'ai revu la patiente à J7."),
]

REFERENCE_PAIRS = [
    (
        "Conformément à l'article L mille deux cent trente-quatre tiret cinq du code du travail point",
        "Conformément à l'article L. 1234-5 du Code du travail.",
    ),
    (
        "Selon l'article L. 1234-5 du Code du travail virgule le préavis est dû point",
        "Selon l'article L. 1234-5 du Code du travail, le préavis est dû.",
    ),
    (
        "En application de l'article L 1234 5 du code du travail point",
        "En application de l'article L. 1234-5 du Code du travail.",
    ),
    (
        "L'article R quatre mille cent vingt-sept tiret un du code de la santé publique s'applique point",
        "L'article R. 4127-1 du Code de la santé publique s'applique.",
    ),
    (
        "Il invoque l'article mille deux cent quarante du code civil point",
        "Il invoque l'article 1240 du Code civil.",
    ),
    (
        "Les faits relèvent de l'article deux cent vingt-deux tiret treize du code pénal point",
        "Les faits relèvent de l'article 222-13 du Code pénal.",
    ),
    (
        "Nous sollicitons l'application de l'article sept cent du code de procédure civile point",
        "Nous sollicitons l'application de l'article 700 du Code de procédure civile.",
    ),
    (
        "Les articles L mille deux cent trente-quatre tiret un et L mille deux cent trente-quatre tiret neuf du code du travail point",
        "Les articles L. 1234-1 et L. 1234-9 du Code du travail.",
    ),
    (
        "La loi soixante-dix-huit tiret dix-sept est applicable point",
        "La loi 78-17 est applicable.",
    ),
    # an ordinary "tiret" stays a dash, even after a reference
    (
        "Le rendez-vous est fixé lundi tiret mardi au plus tard point",
        "Le rendez-vous est fixé lundi - mardi au plus tard.",
    ),
    (
        "Voir l'article trois tiret la clause de non-concurrence point",
        "Voir l'article 3 - la clause de non-concurrence.",
    ),
    (
        "Pièces jointes deux points à la ligne tiret le contrat à la ligne tiret les avenants",
        "Pièces jointes :\n- Le contrat\n- Les avenants",
    ),
]

AMOUNT_PAIRS = [
    ("La somme de mille cinq cents euros reste due point", "La somme de 1 500 euros reste due."),
    ("Le ticket modérateur est de deux euros point", "Le ticket modérateur est de 2 euros."),
    (
        "Le préjudice est évalué à deux millions d'euros point",
        "Le préjudice est évalué à 2 millions d'euros.",
    ),
    ("Il réclame deux millions cinq cent mille euros point", "Il réclame 2 500 000 euros."),
]

PERIOD_PAIRS = [
    # "point" after an adjective that follows a noun ends the sentence
    (
        "Le patient a été opéré au cours du mois dernier point",
        "Le patient a été opéré au cours du mois dernier.",
    ),
    (
        "Il a été hospitalisé le mois dernier point Il va mieux point",
        "Il a été hospitalisé le mois dernier. Il va mieux.",
    ),
    ("Elle vit seule point Elle est autonome point", "Elle vit seule. Elle est autonome."),
    (
        "L'évolution est bonne depuis l'an dernier point",
        "L'évolution est bonne depuis l'an dernier.",
    ),
    # the noun "point" stays a word
    ("Il a eu deux points de suture au menton point", "Il a eu 2 points de suture au menton."),
    ("À ce point de vue virgule rien ne change point", "À ce point de vue, rien ne change."),
    ("La mise au point est prévue en mars point", "La mise au point est prévue en mars."),
    ("Nous ferons le point sur la procédure point", "Nous ferons le point sur la procédure."),
    (
        "Dernier point deux points les frais de justice point",
        "Dernier point : les frais de justice.",
    ),
    (
        "Sur ce dernier point nous sommes d'accord point",
        "Sur ce dernier point nous sommes d'accord.",
    ),
    ("C'est un bon point pour la suite point", "C'est un bon point pour la suite."),
]


@pytest.mark.parametrize(
    ("raw", "written"),
    NUMBER_PAIRS + DAY_COUNT_PAIRS + REFERENCE_PAIRS + AMOUNT_PAIRS + PERIOD_PAIRS,
)
def test_french_notations(raw: str, written: str) -> None:
    assert lines(fr(raw)) == lines(written)


def test_small_numbers_can_be_digits_for_a_client() -> None:
    digits = DictationOptions(french_small_numbers="digits")
    assert fr("Les deux licences à trois reprises", digits) == "Les 2 licences à 3 reprises"
    assert fr("Les deux licences à trois reprises") == "Les deux licences à trois reprises"


def test_digits_option_keeps_the_other_notations() -> None:
    digits = DictationOptions(french_small_numbers="digits")
    assert fr("Ablation à J dix et deux comprimés", digits) == "Ablation à J10 et 2 comprimés"
    assert fr("le véhicule neuf a été livré", digits) == "Le véhicule neuf a été livré"


def test_english_keeps_digits() -> None:
    # the English reference writes "2 stitches" and "2 options": no words policy there
    assert format_dictation("the two licences", "en") == "The 2 licences"


def test_thousands_take_a_no_break_space() -> None:
    assert fr("mille cinq cents euros") == f"1{NBSP}500 euros"


@pytest.mark.parametrize(
    ("raw", "sign", "words"),
    [
        (
            "la somme de mille cinq cents euros",
            f"La somme de 1{NBSP}500{NBSP}€",
            "La somme de 1 500 euros",
        ),
        ("un ticket de deux euros", f"Un ticket de 2{NBSP}€", "Un ticket de 2 euros"),
        ("deux millions d'euros", "2 millions d'euros", "2 millions d'euros"),
        ("les euros et les dollars", "Les euros et les dollars", "Les euros et les dollars"),
    ],
)
def test_currency_sign_option(raw: str, sign: str, words: str) -> None:
    assert fr(raw, SIGN) == sign
    assert fold(fr(raw)) == words


@pytest.mark.parametrize(
    ("raw", "abbreviated", "default"),
    [
        (
            "Je vous adresse le docteur Martin point",
            "Je vous adresse le Dr Martin.",
            "Je vous adresse le docteur Martin.",
        ),
        (
            "Avis du professeur Durand virgule chef de service point",
            "Avis du Pr Durand, chef de service.",
            "Avis du professeur Durand, chef de service.",
        ),
        (
            "Docteur Lefèvre est absent point",
            "Dr Lefèvre est absent.",
            "Docteur Lefèvre est absent.",
        ),
        # the title stays in full without a name, in a salutation and in an address
        ("Le docteur a examiné la patiente point", "Le docteur a examiné la patiente.", None),
        ("Cher docteur Martin virgule merci point", "Cher docteur Martin,\nMerci.", None),
        (
            "Monsieur le Professeur Durand virgule je vous remercie point",
            "Monsieur le Professeur Durand, je vous remercie.",
            None,
        ),
        ("Chère consœur virgule merci point", "Chère consœur,\nMerci.", None),
        # Maître is never abbreviated
        (
            "Maître Dupont représente la partie adverse point",
            "Maître Dupont représente la partie adverse.",
            None,
        ),
        ("Maître virgule je vous remercie point", "Maître, je vous remercie.", None),
    ],
)
def test_title_option(raw: str, abbreviated: str, default: str | None) -> None:
    assert fr(raw, TITLES) == abbreviated
    assert fr(raw) == (default or abbreviated)


def test_titles_are_french_only() -> None:
    assert format_dictation("I saw doctor Jones", "en", options=TITLES) == "I saw Doctor Jones"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"french_small_numbers": "some"},
        {"currency_sign": "yes"},
        {"abbreviate_titles": 1},
    ],
)
def test_bad_french_options_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        DictationOptions(**kwargs)  # type: ignore[arg-type]


def test_french_options_from_mapping() -> None:
    options = DictationOptions.from_mapping(
        {"french_small_numbers": "digits", "currency_sign": True, "abbreviate_titles": True}
    )
    assert fr("le docteur Martin doit deux euros", options) == f"Le Dr Martin doit 2{NBSP}€"


def test_french_pair_counts() -> None:
    """Every notation keeps held-out pairs on both sides of its trap."""
    assert len(NUMBER_PAIRS) >= 25
    assert len(DAY_COUNT_PAIRS) >= 6
    assert len(REFERENCE_PAIRS) >= 10
    assert len(PERIOD_PAIRS) >= 10
