"""The review session model, driven directly: navigation, edits saved as made,
fields, locks, approval, query. Drafts are built by hand here (no Whisper)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT, execute
from transcribe.config import Config
from transcribe.draft import load_draft, new_draft, save_draft
from transcribe.errors import ConfigError, StateError
from transcribe.review import (
    APPROVED_NAME,
    CORRECTIONS_NAME,
    QUERY_NAME,
    MissingFields,
    ReviewSession,
    ReviewSettings,
    approve_job,
    back_to_review,
    count_doubtful,
    is_french,
    load_settings,
    review_queue,
    send_back,
    sentence_spans,
)
from transcribe.review.approval import parse_field_args, word_diff
from transcribe.review.i18n import STRINGS, Messages
from transcribe.review.settings import ACTIONS, SETTINGS_NAME, parse_settings
from transcribe.stages.transcription import draft_path, job_dir
from transcribe.store import JobState, new_job_id, open_store

TEXT = "Dear Doctor Patl, thank you for seeing this patient. She has palpitations."
# (word, probability); a word's position is found in TEXT in order
WORDS = [
    ("Dear", 0.95), ("Doctor", 0.9), ("Patl,", 0.3), ("thank", 0.99), ("you", 0.99),
    ("for", 0.99), ("seeing", 0.5), ("this", 0.99), ("patient.", 0.97), ("She", 0.98),
    ("has", 0.99), ("palpitations.", 0.45),
]  # fmt: skip
RIVERSIDE_REQUIRED = {
    "clinic_date": "2026-11-20",
    "dob": "1960-01-02",
    "hospital_number": "H123",
    "patient": "Jane Roe",
    "recipient": "Dr Patel",
    "recipient_address": "1 High Street",
    "salutation": "Dear Dr Patel",
}
SETTINGS = ReviewSettings(threshold=0.6)


def whisper_words(words: list[tuple[str, float]] = WORDS) -> list[dict[str, Any]]:
    return [
        {"word": f" {w}", "start": i * 0.5, "end": i * 0.5 + 0.4, "probability": p, "segment": 0}
        for i, (w, p) in enumerate(words)
    ]


def make_job(
    config: Config,
    *,
    text: str = TEXT,
    words: list[dict[str, Any]] | None = None,
    fields: dict[str, str] | None = None,
    client: str = CLIENT,
    priority: str = "normal",
    created_at: float | None = None,
) -> str:
    """A job in review with a hand-made draft, as the transcription stage leaves it."""
    job_id = new_job_id()
    with open_store(config) as store:
        job = store.insert_job(
            id=job_id,
            client=client,
            state=str(JobState.REVIEW),
            source_name="d.wav",
            priority=priority,
            author="Dr Hart",
            document_type="clinic letter",
            duration_s=6.0,
            created_at=created_at or time.time(),
        )
    draft = new_draft(job_id, "en", text, words or whisper_words(), fields or {}, postprocessing={})
    save_draft(draft_path(config, job), draft)
    return job_id


def open_session(config: Config, job_id: str, **kw: Any) -> ReviewSession:
    return ReviewSession.open(
        config,
        job_id,
        reviewer=kw.pop("reviewer", "sec1@host"),
        settings=kw.pop("settings", SETTINGS),
    )


def current_word(session: ReviewSession) -> str:
    a, b = session.current_range()
    return session.text[a:b]


def test_doubtful_navigation_wraps_and_respects_the_threshold(config: Config) -> None:
    session = open_session(config, make_job(config))
    try:
        assert [session.text[a:b] for a, b in session.doubtful_spans()] == [
            "Patl", "seeing", "palpitations",
        ]  # fmt: skip
        assert session.next_doubtful() == "moved" and current_word(session) == "Patl"
        assert session.next_doubtful() == "moved" and current_word(session) == "seeing"
        assert session.next_doubtful() == "moved" and current_word(session) == "palpitations"
        assert session.next_doubtful() == "wrapped" and current_word(session) == "Patl"
        assert session.prev_doubtful() == "wrapped" and current_word(session) == "palpitations"
        assert session.prev_doubtful() == "moved" and current_word(session) == "seeing"
        session.next_word()
        assert current_word(session) == "this"
        session.prev_word()
        session.prev_word()
        assert current_word(session) == "for"
    finally:
        session.close()
    strict = ReviewSettings(threshold=0.96)
    assert count_doubtful(load_draft(draft_path_of(config, session.job.id)), strict.threshold) == 5


def draft_path_of(config: Config, job_id: str) -> Path:
    return config.paths.work / "jobs" / job_id / "draft.json"


def test_sentences_are_segments() -> None:
    text = "Dear Dr. Patel,\nThank you. M. Durand est venu ! Fin…  ok"
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "Dear Dr. Patel,", "Thank you.", "M. Durand est venu !", "Fin…", "ok",
    ]  # fmt: skip
    assert sentence_spans("") == [] and sentence_spans("  \n ") == []


def test_segment_navigation_and_inline_sentence_edit(config: Config) -> None:
    session = open_session(config, make_job(config))
    try:
        assert session.text[slice(*session.current_segment())].startswith("Dear")
        session.next_segment()
        assert session.text[slice(*session.current_segment())] == "She has palpitations."
        assert session.next_segment() == "none"
        session.edit_segment("She has had palpitations for a week.")
        session.prev_segment()
        session.prev_segment()
        assert session.cursor == 0
    finally:
        session.close()
    assert load_draft(draft_path_of(config, session.job.id))["text"].endswith(
        "this patient. She has had palpitations for a week."
    )


def test_every_edit_is_saved_at_once_with_its_correction(config: Config) -> None:
    job_id = make_job(config)
    session = open_session(config, job_id)
    session.next_doubtful()
    session.edit_word("Patel")
    # no close(): the draft on disk already holds the edit (a crash loses nothing)
    draft = load_draft(draft_path_of(config, job_id))
    assert draft["text"].startswith("Dear Doctor Patel, thank you")
    patel = next(w for w in draft["words"] if w["word"] == " Patl,")
    assert patel["checked"] is True and draft["text"][slice(*patel["span"])] == "Patel"
    assert "Patl" not in [session.text[a:b] for a, b in session.doubtful_spans()]
    corrections = json.loads((job_dir_of(config, job_id) / CORRECTIONS_NAME).read_text())
    assert corrections["original_text"] == TEXT
    assert corrections["edits"][0] | {"at": None} == {
        "at": None, "reviewer": "sec1@host", "kind": "word", "start": 12, "end": 16,
        "before": "Patl", "after": "Patel",
    }  # fmt: skip
    assert corrections["diff"] == [
        {"op": "replace", "before": "Patl", "after": "Patel", "at": 12, "words": [2]}
    ]
    session.close()


def job_dir_of(config: Config, job_id: str) -> Path:
    return config.paths.work / "jobs" / job_id


def test_whole_text_edit_records_only_the_changed_middle(config: Config) -> None:
    job_id = make_job(config)
    session = open_session(config, job_id)
    try:
        assert session.replace_text(TEXT) is False
        assert session.replace_text(TEXT.replace("seeing", "referring"))
        assert current_word(session) == "referring"
        assert session.draft["words"][6].get("checked") is True
    finally:
        session.close()
    edit = json.loads((job_dir_of(config, job_id) / CORRECTIONS_NAME).read_text())["edits"][0]
    assert (edit["kind"], edit["before"], edit["after"]) == ("text", "see", "referr")


def test_word_diff_is_word_aligned() -> None:
    assert word_diff("a b c d", "a x c d e") == [
        {"op": "replace", "before": "b", "after": "x", "at": 2, "words": []},
        {"op": "insert", "before": "", "after": "e", "at": 7, "words": []},
    ]


def test_position_is_kept_for_the_next_session(config: Config) -> None:
    job_id = make_job(config)
    session = open_session(config, job_id)
    session.next_doubtful()
    session.next_doubtful()
    session.close()
    again = open_session(config, job_id)
    try:
        assert current_word(again) == "seeing"
    finally:
        again.close()


def test_fields_follow_the_template(config: Config) -> None:
    job_id = make_job(config, fields={"patient": "Jane Roe", "author": "Dr Hart"})
    session = open_session(config, job_id)
    try:
        rows = {row.name: row for row in session.field_rows()}
        assert set(RIVERSIDE_REQUIRED) <= {n for n, r in rows.items() if r.required}
        assert "body" not in rows and rows["date"].automatic and not rows["date"].required
        assert rows["patient"].value == "Jane Roe" and rows["author"].value == "Dr Hart"
        assert "patient" not in session.missing() and "clinic_date" in session.missing()
        number = [r.name for r in session.field_rows()].index("dob") + 1
        assert session.resolve_field(str(number)) == "dob"
        assert session.resolve_field("Hospital Number") == "hospital_number"
        assert session.resolve_field("") == session.missing()[0]
        with pytest.raises(ConfigError, match="no field"):
            session.resolve_field("favourite colour")
        session.set_field("dob", " 1960-01-02 ")
        assert load_draft(draft_path_of(config, job_id))["fields"]["dob"] == "1960-01-02"
        session.set_field("dob", "")
        assert "dob" not in session.fields
    finally:
        session.close()


def test_a_client_without_template_requires_nothing(config: Config, home: Path) -> None:
    path = home / "transcribe.toml"
    path.write_text(path.read_text() + '\n[clients.plain]\nname = "Plain"\n')
    from transcribe.config import load_config

    config = load_config(home)
    job_id = make_job(config, client="plain")
    session = open_session(config, job_id)
    try:
        assert session.field_rows() == [] and session.missing() == ()
        assert session.resolve_field("anything") == "anything"
        session.approve()
    finally:
        session.close()
    assert job_state(config, job_id) == JobState.APPROVED


def job_state(config: Config, job_id: str) -> JobState:
    with open_store(config) as store:
        return store.get(job_id).state


@pytest.mark.both_backends
def test_a_job_is_locked_to_its_reviewer(config: Config) -> None:
    job_id = make_job(config)
    first = open_session(config, job_id, reviewer="alice@a")
    with pytest.raises(StateError, match="being reviewed by alice@a"):
        open_session(config, job_id, reviewer="bob@b")
    [entry] = review_queue(config, SETTINGS)
    assert entry.locked_by == "alice@a"
    with pytest.raises(StateError, match="alice@a"):
        approve_job(config, job_id, reviewer="bob@b")
    first.close()
    first.close()  # twice is fine
    assert review_queue(config, SETTINGS)[0].locked_by is None
    second = open_session(config, job_id, reviewer="bob@b")
    second.close()


@pytest.mark.both_backends
def test_a_stale_lock_can_be_taken_over(config: Config) -> None:
    job_id = make_job(config)
    with open_store(config) as store:
        store.lock_for_review(job_id, "gone@a", timeout_s=60)
        execute(
            store, "UPDATE jobs SET review_lock_at = ? WHERE id = ?", time.time() - 3600, job_id
        )
    assert review_queue(config, SETTINGS)[0].locked_by is None
    session = open_session(config, job_id, reviewer="bob@b")
    session.close()


@pytest.mark.both_backends
def test_queue_is_urgent_first_then_oldest(config: Config) -> None:
    old = make_job(config, created_at=time.time() - 7200)
    new = make_job(config)
    urgent = make_job(config, priority="urgent")
    entries = review_queue(config, SETTINGS)
    assert [e.job.id for e in entries] == [urgent, old, new]
    assert entries[0].urgent and entries[0].doubtful == 3 and entries[1].age_s >= 7200


@pytest.mark.both_backends
def test_approve_checks_required_fields_then_records_everything(config: Config) -> None:
    job_id = make_job(config, fields={"patient": "Jane Roe"})
    session = open_session(config, job_id)
    session.next_doubtful()
    session.edit_word("Patel")
    with pytest.raises(MissingFields) as missing:
        session.approve()
    assert missing.value.exit_code == 2
    assert "clinic_date, dob, hospital_number, recipient, recipient_address, salutation" in str(
        missing.value
    )
    for name, value in RIVERSIDE_REQUIRED.items():
        session.set_field(name, value)
    job = session.approve()
    assert job.state == JobState.APPROVED and job.review_lock is None
    approved = json.loads((job_dir_of(config, job_id) / APPROVED_NAME).read_text())
    assert approved["text"] == TEXT.replace("Patl", "Patel")
    assert approved["fields"] == RIVERSIDE_REQUIRED and approved["reviewer"] == "sec1@host"
    corrections = json.loads((job_dir_of(config, job_id) / CORRECTIONS_NAME).read_text())
    assert corrections["approved"] and corrections["diff"][0]["after"] == "Patel"
    learned = json.loads((config.paths.home / "learned.json").read_text())
    assert [(e["wrong"], e["right"]) for e in learned["entries"]] == [("Patl", "Patel")]
    with pytest.raises(StateError, match="not review"):
        approve_job(config, job_id, reviewer="sec1@host")


def test_approve_with_text_and_fields_given(config: Config) -> None:
    job_id = make_job(config)
    job = approve_job(
        config, job_id, text="Dear Dr Patel, all is well.", fields=RIVERSIDE_REQUIRED,
        reviewer="script@host",
    )  # fmt: skip
    assert job.state == JobState.APPROVED
    assert load_draft(draft_path_of(config, job_id))["text"] == "Dear Dr Patel, all is well."
    with pytest.raises(ConfigError, match="not in the riverside-clinic template: colour"):
        approve_job(config, make_job(config), fields={"colour": "red"}, reviewer="x@y")
    with pytest.raises(ConfigError, match="empty"):
        approve_job(config, make_job(config), text=" \n", fields=RIVERSIDE_REQUIRED, reviewer="x@y")


@pytest.mark.both_backends
def test_send_back_with_a_question_and_return(config: Config) -> None:
    job_id = make_job(config)
    session = open_session(config, job_id)
    job = session.send_back("Which dose of bisoprolol for Mrs Roe?")
    assert job.state == JobState.QUERY and job.review_lock is None
    query = json.loads((job_dir_of(config, job_id) / QUERY_NAME).read_text())
    assert query["question"] == "Which dose of bisoprolol for Mrs Roe?"
    with open_store(config) as store:
        details = " ".join(str(tuple(e.values())) for e in store.events(job_id))
    assert "Roe" not in details  # the question stays out of the job store
    assert review_queue(config, SETTINGS) == []
    with pytest.raises(StateError):
        send_back(config, job_id, "again?", reviewer="sec1@host")
    assert back_to_review(config, job_id, answer="2.5 mg").state == JobState.REVIEW
    assert json.loads((job_dir_of(config, job_id) / QUERY_NAME).read_text())["answer"] == "2.5 mg"


def test_field_arguments() -> None:
    assert parse_field_args(["Patient=Jane = Roe", "dob=1960"]) == {
        "patient": "Jane = Roe",
        "dob": "1960",
    }
    with pytest.raises(ConfigError, match="name=value"):
        parse_field_args(["patient"])


def test_settings_file(home: Path) -> None:
    assert load_settings(home) == ReviewSettings()
    (home / SETTINGS_NAME).write_text(
        'threshold = 0.8\nplayer = ""\nlock_timeout_min = 5\n[keys]\nplay = ["f9"]\n'
    )
    settings = load_settings(home)
    assert settings.threshold == 0.8 and settings.player == () and settings.lock_timeout_s == 300
    assert settings.keys["play"] == ("f9",) and settings.keys["replay"] == ("r", "f10")
    for raw, message in (
        ({"threshold": 2}, "threshold"),
        ({"keys": {"fly": ["x"]}}, "unknown action 'fly'"),
        ({"keys": {"play": ["r"]}}, "'r' is given to both"),
        ({"colour": 1}, "unknown key"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_settings(raw)


def test_every_action_and_string_exists_in_both_languages() -> None:
    for action in ACTIONS:
        assert action.keys and action.help_en and action.help_fr
    for english, french in STRINGS.values():
        assert english and french
    assert Messages(True)("saved") == "Enregistré." and Messages(False)("saved") == "Saved."


@pytest.mark.parametrize(
    ("environ", "french"),
    [
        ({"LANG": "fr_FR.UTF-8"}, True),
        ({"LC_ALL": "en_GB.UTF-8", "LANG": "fr_FR.UTF-8"}, False),
        ({"LC_MESSAGES": "fr_CA", "LANG": "en_US"}, True),
        ({"LANG": "C.UTF-8"}, False),
        ({}, False),
    ],
)
def test_screen_language_follows_the_locale(environ: dict[str, str], french: bool) -> None:
    assert is_french(environ) is french


def test_transcript_json_is_never_touched(config: Config) -> None:
    job_id = make_job(config)
    with open_store(config) as store:
        folder = job_dir(config, store.get(job_id))
    (folder / "transcript.json").write_text('{"text": "original"}')
    session = open_session(config, job_id)
    session.next_doubtful()
    session.edit_word("Patel")
    session.close()
    assert (folder / "transcript.json").read_text() == '{"text": "original"}'
