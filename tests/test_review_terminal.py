"""The review loop in a real terminal (tmux, 80x24), on a job made by the real pipeline:
open the first job, jump to a doubtful word, correct it, fill a field, kill the
terminal, reopen, see the correction kept, approve. Then the same in client mode
(``review --server``) against a real server, with the audio played by the client's
own player."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CLIENT, PROJECT
from tests.test_review_session import RIVERSIDE_REQUIRED
from transcribe.config import Config
from transcribe.draft import load_draft
from transcribe.review import ReviewSettings
from transcribe.review.session import is_doubtful
from transcribe.runners.watcher import watch
from transcribe.store import JobState, open_store

pytestmark = pytest.mark.slow
REVIEWER = "secretary@test"


class Terminal:
    """One tmux server of our own, one 80x24 window."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"review-{uuid.uuid4().hex[:8]}"
        self.tmp = tmp

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return result.stdout

    def start(self, home: Path, *args: str) -> None:
        """``review`` on the workspace at ``home``."""
        self.run(f"--home {home} review --reviewer {REVIEWER} {' '.join(args)}")

    def run(self, arguments: str, env: str = "") -> None:
        command = (
            f"cd {PROJECT} && {env} LANG=C.UTF-8 LC_ALL= {sys.executable} cli.py {arguments}"
            f" 2>>{self.tmp}/stderr.txt"
        )
        self.tmux("new-session", "-d", "-s", "r", "-x", "80", "-y", "24", command)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "r")

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "r", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "r", "-l", text)

    def kill(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if not shutil.which("tmux"):
        pytest.fail("tmux is missing: run `make setup`")
    term = Terminal(tmp_path)
    yield term
    term.kill()


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def fill_and_approve(terminal: Terminal, names: tuple[str, ...]) -> None:
    """Fill the missing fields in order (an empty answer names the first one), approve."""
    for name in names:
        terminal.keys("f")
        terminal.wait_for("Field (number or name)")
        terminal.keys("Enter")
        terminal.wait_for(f"{name}: ")
        terminal.type(RIVERSIDE_REQUIRED[name])
        terminal.keys("Enter")
        terminal.wait_for(f"{name}: {RIVERSIDE_REQUIRED[name][:20]}")
    terminal.keys("A")
    terminal.wait_for("Approve this letter? (y/n)")
    terminal.type("y")
    terminal.keys("Enter")


def lock_of(config: Config, job_id: str) -> str | None:
    with open_store(config) as store:
        return store.get(job_id).review_lock


def test_review_in_a_real_terminal(
    config: Config, clips: list[Path], engine_factory, terminal: Terminal, tmp_path: Path
) -> None:
    inbox = config.paths.inbox / CLIENT
    shutil.copyfile(clips[0], inbox / "letter.wav")
    (inbox / "letter.wav.json").write_text(json.dumps({"author": "Dr Hart", "patient": "Jane Roe"}))
    watch(config, once=True, engine_factory=lambda: engine_factory(config), poll_seconds=0.05)
    with open_store(config) as store:
        [job] = store.jobs(JobState.REVIEW)
    folder = config.paths.work / "jobs" / job.id
    transcript_hash = hashlib.sha256((folder / "transcript.json").read_bytes()).hexdigest()
    (config.paths.home / "review-keys.toml").write_text('threshold = 1.0\nplayer = ""\n')
    draft = load_draft(folder / "draft.json")
    doubtful = sorted(w["span"] for w in draft["words"] if is_doubtful(w, 1.0))
    start, end = next(span for span in doubtful if span[0] > draft["cursor"])
    word = draft["text"][start:end]

    # open the first job of the list, jump to a doubtful word, correct it, fill a field
    terminal.start(config.paths.home)
    terminal.wait_for("Jobs waiting for review")
    terminal.keys("Enter")
    terminal.wait_for("Tab/S-Tab")
    terminal.keys("Tab")
    terminal.keys("c")
    terminal.wait_for(f"Word: {word}")
    terminal.keys("C-u")
    terminal.type("Xylophone")
    terminal.keys("Enter")
    terminal.wait_for("Saved.")
    terminal.keys("f")
    terminal.wait_for("Field (number or name)")
    terminal.type("salutation")
    terminal.keys("Enter")
    terminal.wait_for("salutation: ")
    terminal.type(RIVERSIDE_REQUIRED["salutation"])
    terminal.keys("Enter")
    terminal.wait_for(f"salutation: {RIVERSIDE_REQUIRED['salutation']}")
    assert lock_of(config, job.id) == REVIEWER

    # the terminal dies: nothing is lost, the lock is released (SIGHUP)
    terminal.kill()
    wait_until(lambda: lock_of(config, job.id) is None)
    kept = load_draft(folder / "draft.json")
    assert "Xylophone" in kept["text"] and word not in kept["text"].split()
    assert kept["fields"]["salutation"] == RIVERSIDE_REQUIRED["salutation"]

    # reopen directly: the correction is there; approve asks for the missing fields
    terminal.start(config.paths.home, job.id)
    screen = terminal.wait_for("Xylophone")
    assert RIVERSIDE_REQUIRED["salutation"] in screen and "Traceback" not in screen
    terminal.keys("A")
    terminal.wait_for("Fill first: clinic_date, dob, hospital_number, recipient, recipient_address")
    fill_and_approve(
        terminal, ("clinic_date", "dob", "hospital_number", "recipient", "recipient_address")
    )
    with open_store(config) as store:
        wait_until(lambda: store.get(job.id).state == JobState.APPROVED)
        assert store.get(job.id).review_lock is None

    approved = json.loads((folder / "approved.json").read_text())
    assert approved["text"] == kept["text"] and "Xylophone" in approved["text"]
    assert {k: approved["fields"][k] for k in RIVERSIDE_REQUIRED} == RIVERSIDE_REQUIRED
    assert approved["reviewer"] == REVIEWER
    corrections = json.loads((folder / "corrections.json").read_text())
    assert {"before": word, "after": "Xylophone"}.items() <= corrections["diff"][0].items()
    assert hashlib.sha256((folder / "transcript.json").read_bytes()).hexdigest() == transcript_hash
    stderr = (tmp_path / "stderr.txt").read_text() if (tmp_path / "stderr.txt").exists() else ""
    assert "Traceback" not in stderr, stderr


def test_review_without_a_terminal_lists_the_queue(config: Config) -> None:
    from tests.test_review_session import make_job

    job_id = make_job(config, priority="urgent")
    result = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), "--home", str(config.paths.home), "review"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [header, line] = result.stdout.splitlines()
    assert header.startswith("id") and line.startswith(f"{job_id} ! {CLIENT}") and "Dr Hart" in line
    result = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), "--home", str(config.paths.home), "review",
         job_id],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "interactive terminal" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ReviewSettings().threshold == 0.6


def test_review_in_a_real_terminal_as_a_client_of_the_server(
    terminal: Terminal, tmp_path: Path
) -> None:
    from tests.test_review_audio import fake_player
    from tests.test_service import PASSWORD, served_workspace
    from tests.test_service_review import review_job
    from transcribe.stages.letter import finish_approved
    from transcribe.stages.transcription import draft_path, job_dir

    accounts = {
        "sec": {"role": "secretary", "clients": [CLIENT]},
        "hart": {"role": "author", "clients": [CLIENT], "author": "Dr Hart"},
    }
    with served_workspace(tmp_path / "server", accounts) as service:
        job_id = review_job(service, audio=True)  # Dr Hart's; "Patl" is the first doubt
        home = tmp_path / "secretary"  # the secretary's computer: no workspace at all
        (home / "transcribe").mkdir(parents=True)
        player = fake_player(tmp_path)  # writes what it plays to tmp_path/played.wav
        (home / "transcribe" / "review-keys.toml").write_text(
            f'threshold = 0.6\nplayer = "{player} {{file}}"\n'
        )
        env = f"XDG_CONFIG_HOME={home} TRANSCRIBE_PASSWORD={shlex.quote(PASSWORD)}"
        client = f"--server {service.url} --user sec --ca {service.ca}"

        def server_draft() -> dict:
            with open_store(service.config) as store:
                return load_draft(draft_path(service.config, store.get(job_id)))

        terminal.run(f"review {client}", env)
        terminal.wait_for("Jobs waiting for review")
        terminal.keys("Enter")
        terminal.wait_for("Tab/S-Tab")
        terminal.keys("Tab")
        terminal.keys("space")  # the audio window, fetched and played here
        wait_until(lambda: (tmp_path / "played.wav").is_file())
        assert (tmp_path / "played.wav").stat().st_size > 1.5 * 16000 * 2
        assert service.events(actor="api:sec", action="listen", job_id=job_id)
        terminal.keys("c")
        terminal.wait_for("Word: Patl")
        terminal.keys("C-u")
        terminal.type("Patel")
        terminal.keys("Enter")
        terminal.keys("f")
        terminal.wait_for("Field (number or name)")
        terminal.type("salutation")
        terminal.keys("Enter")
        terminal.wait_for("salutation: ")
        terminal.type(RIVERSIDE_REQUIRED["salutation"])
        terminal.keys("Enter")
        wait_until(lambda: server_draft().get("fields", {}).get("salutation") is not None)
        assert "Patel" in server_draft()["text"] and lock_of(service.config, job_id)

        # the client dies: what it sent is on the server, its lease is given back
        terminal.kill()
        wait_until(lambda: lock_of(service.config, job_id) is None)

        # reopen directly: the correction is there; fill the rest, approve
        terminal.run(f"review {job_id} {client}", env)
        screen = terminal.wait_for("Patel")
        assert RIVERSIDE_REQUIRED["salutation"] in screen and "Traceback" not in screen
        missing = ("clinic_date", "dob", "hospital_number", "patient", "recipient")
        fill_and_approve(terminal, (*missing, "recipient_address"))
        with open_store(service.config) as store:
            wait_until(lambda: store.get(job_id).state == JobState.APPROVED)
            assert store.get(job_id).review_lock is None
            job = store.get(job_id)
        approved = json.loads((job_dir(service.config, job) / "approved.json").read_text())
        assert "Dear Doctor Patel," in approved["text"] and approved["reviewer"] == "api:sec"
        assert {k: approved["fields"][k] for k in RIVERSIDE_REQUIRED} == RIVERSIDE_REQUIRED
        with open_store(service.config, actor="watcher") as store:  # the letters stage
            assert finish_approved(service.config, store, job_id).state == JobState.ARCHIVED
        assert not list((home / "transcribe" / "review").glob("*.json"))  # journal gone
    stderr = (tmp_path / "stderr.txt").read_text() if (tmp_path / "stderr.txt").exists() else ""
    assert "Traceback" not in stderr, stderr
