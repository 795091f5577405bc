"""Every key of the review loop, pressed in the real prompt_toolkit application
(pipe input, dummy output): each has help text, none raises or draws a traceback."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.input.ansi_escape_sequences import REVERSE_ANSI_SEQUENCES
from prompt_toolkit.keys import Keys
from prompt_toolkit.output import DummyOutput

from tests import audiogen
from tests.test_review_audio import fake_player
from tests.test_review_session import TEXT, make_job
from transcribe.config import Config
from transcribe.draft import load_draft
from transcribe.review import ReviewSettings
from transcribe.review.i18n import Messages
from transcribe.review.session import LocalWorkplace
from transcribe.review.settings import ACTIONS
from transcribe.review.tui import ReviewApp, key_label
from transcribe.store import open_store

UNMAPPED = [
    "x",
    "z",
    "1",
    "@",
    "é",
    "c-x",
    "home",
    "end",
    "pageup",
    "delete",
    "f5",
    "c-h",
    "escape",
]
ALIASES = {"space": " ", "enter": "\r", "tab": "\t", "escape": "\x1b", "c-h": "\x7f"}


def sequence(key: str) -> str:
    """What a terminal sends for a key name."""
    if key in ALIASES:
        return ALIASES[key]
    if len(key) == 1:
        return key
    if key.startswith("c-") and len(key) == 3:
        return chr(ord(key[2]) - ord("a") + 1)
    if key in {k.value for k in Keys}:
        return REVERSE_ANSI_SEQUENCES[Keys(key)]
    return key  # text typed into a prompt


def run_app(app: ReviewApp, keys: list[str], pipe: object, pause: float = 0.06) -> None:
    """Run the real application while another thread types ``keys``."""

    def typist() -> None:
        time.sleep(0.3)
        for key in keys:
            pipe.send_text(sequence(key))  # type: ignore[attr-defined]
            time.sleep(pause)

        deadline = time.monotonic() + 3
        while app.app.is_running and time.monotonic() < deadline:
            time.sleep(0.05)
        if app.app.is_running:  # the last key should have closed it: fail, do not hang
            stuck.append(True)
            app.app.loop.call_soon_threadsafe(app.app.exit)  # type: ignore[union-attr]

    stuck: list[bool] = []
    thread = threading.Thread(target=typist, daemon=True)
    thread.start()
    app.run()
    thread.join(timeout=10)
    assert not stuck, "the loop did not exit on its leave key"


def test_every_key_has_help_and_none_breaks_the_loop(
    config: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDITOR", "sed -i s/palpitations/tachycardia/")
    job_id = make_job(config)
    folder = config.paths.work / "jobs" / job_id
    audiogen.speak(audiogen.SENTENCES[0], folder / "audio.wav")
    with open_store(config) as store:
        store.update(job_id, audio_path=f"work/jobs/{job_id}/audio.wav")
    settings = ReviewSettings(player=(str(fake_player(tmp_path)), "{file}"))
    keys: list[str] = []
    for action in ACTIONS:
        if action.name != "save_leave":
            for key in action.keys:
                keys += [key, "escape"]  # escape: cancel a prompt, close help, or unknown key
    keys += [k for key in UNMAPPED for k in (key, "escape")]
    keys += ["f", "salutation", "enter", "Dear Dr Patel", "enter", "q"]
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        app = ReviewApp(
            LocalWorkplace(config, "keys@test", settings),
            settings=settings,
            messages=Messages(False),
            job_id=job_id,
        )
        help_text = "".join(text for _, text, *_ in app._help())
        for action in ACTIONS:
            assert action.help_en in help_text
            assert all(key_label(k) in help_text for k in action.keys)
        run_app(app, keys, pipe)
    assert app.errors == []
    assert (tmp_path / "played.wav").stat().st_size > 1000  # space/F9 played the word
    assert not list(folder.glob(".play-*")) and not list(folder.glob(".edit-*"))
    draft = load_draft(config.paths.work / "jobs" / job_id / "draft.json")
    assert draft["text"] == TEXT.replace("palpitations", "tachycardia")  # E ran $EDITOR
    assert draft["fields"]["salutation"] == "Dear Dr Patel"
    with open_store(config) as store:
        assert store.get(job_id).review_lock is None


def test_french_screen_and_queue(config: Config) -> None:
    make_job(config, priority="urgent")
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        settings = ReviewSettings(player=())
        app = ReviewApp(
            LocalWorkplace(config, "fr@test", settings), settings=settings, messages=Messages(True)
        )
        screen = "".join(t for _, t, *_ in app._header() + app._queue_view() + app._hints())
        assert "Dictées à relire" in screen and "Dr Hart" in screen and "Entrée ouvrir" in screen
        app.open_job(app.entries[0].job.id)
        hints = "".join(t for _, t, *_ in app._hints())
        assert "valider" in hints and "aide" in hints
        assert len(hints) <= 2 * 80  # two lines of an 80-column terminal
        app.close_job()
