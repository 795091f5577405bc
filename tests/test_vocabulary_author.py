"""Each author's own words: terms of approved letters lead that author's next prompts,
never a name, never for another author, and gone when the author is purged."""

from __future__ import annotations

import json
import stat
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import app
from transcribe.asr.postprocess import learning_store, plan_biasing
from transcribe.config import Config
from transcribe.draft import new_draft, save_draft
from transcribe.review import approve_job
from transcribe.stages.transcription import draft_path
from transcribe.store import JobState, new_job_id, open_store
from transcribe.vocabulary import (
    AuthorTermOptions,
    AuthorTermStore,
    CorrectionPair,
    LearningStore,
    TermSource,
    extract_terms,
    shipped_lexicon,
)
from transcribe.vocabulary.authors import AUTHOR_TERMS_NAME

CLINIC = "cabinet-martin"  # French, medical, template compte-rendu.docx
AUTHOR = "Dr Claire Martin"
RARE_DRUG = "tocilizumab"  # not in the shipped lexicons: learnt by its shape (-mab)
# Three letters by one author; the patients' and matters' names look like drugs.
LETTERS = [
    (
        "Madame Lisinoprine, 58 ans, est suivie pour une polyarthrite rhumatoïde. "
        "Je propose de débuter le tocilizumab à la dose de 8 mg/kg.",
        {"patient": "Jeanne Lisinoprine", "reference": "Bisoprololine"},
    ),
    (
        "Monsieur Bisoprololine tolère bien le tocilizumab. Le dossier valsartimab est "
        "à jour : contrôle le 12 mars 2026, écrire à secretariat@example.org.",
        {"patient": "Paul Bisoprololine", "reference": "Valsartimab"},
    ),
    (
        "Madame Amlodimab poursuit le tocilizumab et le méthotrexate, sans effet "
        "indésirable. Revue par le docteur Ranolazimab.",
        {"patient": "Lucie Amlodimab", "reference": "DOSSIER-0003"},
    ),
]
NAMES = ("lisinoprine", "bisoprololine", "valsartimab", "amlodimab", "ranolazimab")


def make_job(config: Config, text: str, fields: dict[str, str], *, author: str = AUTHOR) -> str:
    """A French job in review with its draft, as the transcription stage leaves it."""
    job_id = new_job_id()
    with open_store(config) as store:
        job = store.insert_job(
            id=job_id,
            client=CLINIC,
            state=str(JobState.REVIEW),
            source_name="d.wav",
            priority="normal",
            author=author,
            document_type="compte rendu",
            duration_s=30.0,
            created_at=time.time(),
        )
    words = [
        {"word": f" {w}", "start": float(i), "end": i + 0.5, "probability": 0.9}
        for i, w in enumerate(text.split())
    ]
    draft_fields = {"author": author, **fields}
    save_draft(draft_path(config, job), new_draft(job_id, "fr", text, words, draft_fields, {}))
    return job_id


def approve(config: Config, text: str, fields: dict[str, str], author: str = AUTHOR) -> None:
    job_id = make_job(config, text, fields, author=author)
    given = {"date_naissance": "01/02/1960", **fields}
    approve_job(config, job_id, fields=given, reviewer="sec@host")


def prompt_of(config: Config, author: str | None, client: str = CLINIC) -> Any:
    """The prompt the transcription stage would build for this author's next dictation."""
    return plan_biasing(
        config.clients[client],
        author,
        config.clients[client].language,
        learning_store(config.paths.home),
        home=config.paths.home,
        count_tokens=lambda: None,
    ).prompt


def stored_text(home: Path) -> str:
    return "".join(
        (home / name).read_text(encoding="utf-8").casefold()
        for name in (AUTHOR_TERMS_NAME, "learned.json")
        if (home / name).exists()
    )


# -- through the real approval ---------------------------------------------------


def test_three_approved_letters_put_a_rare_drug_first_in_the_fourth_prompt(
    config: Config,
) -> None:
    lexicon = {entry.text for entry in shipped_lexicon("medical", "fr")}
    assert RARE_DRUG not in lexicon
    before = prompt_of(config, AUTHOR)
    assert RARE_DRUG not in before.text

    for text, fields in LETTERS:
        approve(config, text, fields)

    prompt = prompt_of(config, AUTHOR)
    assert prompt.terms[0].text == RARE_DRUG
    assert prompt.terms[0].source is TermSource.APPROVED
    assert prompt.text.startswith(f"{prompt.lead_in} {RARE_DRUG},")
    approved = [t.text for t in prompt.terms if t.source is TermSource.APPROVED]
    assert "méthotrexate" not in approved  # one letter is not enough (min_letters = 2)
    for name in NAMES:
        assert name not in prompt.text.casefold()
        assert name not in stored_text(config.paths.home)


def test_another_author_or_client_does_not_get_them(config: Config) -> None:
    for text, fields in LETTERS:
        approve(config, text, fields)
    assert RARE_DRUG not in prompt_of(config, "Dr Paul Autre").text
    assert RARE_DRUG not in prompt_of(config, None).text
    assert RARE_DRUG not in prompt_of(config, AUTHOR, client="riverside-clinic").text


def test_author_terms_file_is_owner_only_and_keyed_by_client_and_author(
    config: Config,
) -> None:
    for text, fields in LETTERS:
        approve(config, text, fields)
    path = config.paths.home / AUTHOR_TERMS_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    payload = json.loads(path.read_text(encoding="utf-8"))
    usage = payload["clients"][CLINIC][AUTHOR.casefold()][RARE_DRUG]
    today = date.today().isoformat()
    assert payload["version"] == 1
    assert usage == {"count": 3, "first_seen": today, "last_used": today}


def test_a_broken_author_terms_file_never_blocks_an_approval(config: Config) -> None:
    (config.paths.home / AUTHOR_TERMS_NAME).write_text("{broken", encoding="utf-8")
    text, fields = LETTERS[0]
    job_id = make_job(config, text, fields)
    job = approve_job(
        config, job_id, fields={"date_naissance": "01/02/1960", **fields}, reviewer="sec@host"
    )
    assert job.state == JobState.APPROVED


# -- the extraction rule ---------------------------------------------------------


def medical(text: str, private: list[str] | None = None) -> list[str]:
    return extract_terms(text, domain="medical", lang="fr", private=private or [])


def test_lexicon_terms_and_drug_shaped_words_are_learnt() -> None:
    text = "Sous bisoprolol et apixaban ; coloscopie prévue. Il reçoit du nivolumab."
    assert medical(text) == ["bisoprolol", "apixaban", "coloscopie", "nivolumab"]
    english = "Started on sacubitril valsartan and ustekinumab after the sigmoidoscopy."
    terms = extract_terms(english, domain="medical", lang="en")
    assert {"ustekinumab", "sigmoidoscopy"} <= set(terms)


def test_field_values_are_never_learnt_even_when_they_look_like_drugs() -> None:
    text = "Le dossier rivaxolol reste ouvert ; le rivaxolol est arrêté."
    assert "rivaxolol" in medical(text)  # the shape alone would take it
    assert medical(text, ["Dossier Rivaxolol"]) == []
    # a lexicon term too: the fields are the authority on names
    assert medical("Suivi de Mme X sous ranolazine.", ["Jean Ranolazine"]) == []


def test_words_written_as_names_are_never_learnt() -> None:
    # capital mid-sentence, even a lexicon drug, and after a title even in lower case
    assert medical("Nous avons revu Madame Ranolazine hier.") == []
    assert medical("Vu ce jour avec Tocilimab, son époux.") == []
    assert medical("Adressée par le docteur adalimumab.") == []
    # a word written as a name anywhere in the letter is not learnt from it at all
    assert medical("Monsieur Golimumab reçoit du golimumab.") == []
    # a capital at the start of a sentence says nothing: the lexicon term is kept
    assert medical("Bisoprolol arrêté. Amiodarone débutée.") == ["bisoprolol", "amiodarone"]


def test_ordinary_words_numbers_dates_and_addresses_are_not_learnt() -> None:
    text = (
        "La machine du programme d'analyse est en panne depuis la semaine dernière ; "
        "la routine reprend le 12/03/2026 à 14 h, contact secretariat@example.org, "
        "clairance de la créatinine à 85 ml/min, 2,5 mg."
    )
    assert medical(text) == ["clairance de la créatinine"]  # a lexicon term only


def test_legal_references_and_lexicon_terms_are_learnt_never_the_matter() -> None:
    text = (
        "Je vous confirme que l'assignation en référé a été délivrée sur le fondement "
        "de l'article L. 1234-5 du Code du travail. La société Caducité conteste."
    )
    terms = extract_terms(
        text, domain="legal", lang="fr", private=["Dossier Caducité", "Maître Paul Dubois"]
    )
    assert "assignation en référé" in terms
    assert "Code du travail" in terms
    assert "article L. 1234-5 du Code du travail" in terms
    assert not any("caducit" in t.casefold() for t in terms)
    english = "Notice under section 21 of the Housing Act 1988 was served."
    assert "section 21 of the Housing Act 1988" in extract_terms(english, domain="legal", lang="en")


def test_a_general_client_learns_nothing() -> None:
    assert extract_terms("Sous tocilizumab.", domain="general", lang="fr") == []


# -- ranking, cap, purge ---------------------------------------------------------


def test_ranking_is_count_with_a_90_day_half_life(tmp_path: Path) -> None:
    store = AuthorTermStore(tmp_path / AUTHOR_TERMS_NAME)
    today = date(2026, 12, 1)
    for _ in range(4):  # used in four letters, the last one 180 days ago: 4 / 4 = 1
        store.add("c", "Dr A", ["ancien"], day=today - timedelta(days=180))
    for _ in range(2):  # used in two letters today: 2
        store.add("c", "Dr A", ["récent"], day=today)
    ranked = store.terms("c", "dr a", today=today)
    assert [t.text for t in ranked] == ["récent", "ancien"]
    assert ranked[0].score == pytest.approx(2.0)
    assert ranked[1].score == pytest.approx(1.0)
    assert store.prompt_terms("c", "Dr A", today=today) == ["récent", "ancien"]


def test_a_term_needs_two_letters_and_the_store_is_capped(tmp_path: Path) -> None:
    options = AuthorTermOptions(max_terms=3)
    store = AuthorTermStore(tmp_path / AUTHOR_TERMS_NAME, options=options)
    day = date(2026, 12, 1)
    store.add("c", "Dr A", ["alpha", "beta"], day=day)
    assert store.prompt_terms("c", "Dr A", today=day) == []
    store.add("c", "Dr A", ["alpha", "gamma", "delta", "epsilon"], day=day)
    assert store.prompt_terms("c", "Dr A", today=day) == ["alpha"]
    assert len(store.terms("c", "Dr A", today=day)) == 3
    store.add("c", None, ["alpha"], day=day)  # no author, nothing to learn for
    assert store.terms("c", None) == []


def test_forget_author_purges_terms_and_corrections_and_is_audited(config: Config) -> None:
    home = config.paths.home
    for text, fields in LETTERS:
        approve(config, text, fields)
        approve(config, text, fields, author="Dr Paul Autre")
    LearningStore(home / "learned.json").add(CLINIC, AUTHOR, [CorrectionPair("tocili", RARE_DRUG)])

    result = CliRunner().invoke(
        app, ["--home", str(home), "vocabulary", "forget-author", CLINIC, "dr claire  MARTIN"]
    )
    assert result.exit_code == 0, result.output
    assert "1 correction(s) and" in result.output
    assert RARE_DRUG not in prompt_of(config, AUTHOR).text
    assert AuthorTermStore(home / AUTHOR_TERMS_NAME).terms(CLINIC, AUTHOR) == []
    assert LearningStore(home / "learned.json").entries(CLINIC, AUTHOR) == []
    assert prompt_of(config, "Dr Paul Autre").terms[0].text == RARE_DRUG  # others kept
    with open_store(config) as store:
        events = [dict(e) for e in store.events() if e["action"] == "vocabulary-forget-author"]
    assert len(events) == 1
    assert CLINIC in events[0]["detail"] and "claire" not in events[0]["detail"].casefold()
