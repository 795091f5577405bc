"""Shared fixtures: a fresh demo workspace, real speech clips, one loaded model, and
the job store backends (SQLite, and a throwaway PostgreSQL server) to run tests on."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import audiogen
from tests.pgserver import PgServer, server_binaries
from transcribe.asr.engine import WhisperEngine
from transcribe.config import Config, load_config
from transcribe.store import JobStore
from transcribe.workspace import init_workspace

PROJECT = Path(__file__).resolve().parent.parent
CLIENT = "riverside-clinic"
BACKENDS = ("sqlite", "postgresql")


def set_config(home: Path, **values: float | str) -> Config:
    """Rewrite values in a workspace config (tests want short delays); each key must
    appear exactly once in the file, as ``init`` writes it. Booleans as "true"/"false"."""
    path = home / "transcribe.toml"
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, key
    path.write_text(text, encoding="utf-8")
    return load_config(home)


def cli_workspace(home: Path, clips: list[Path], store_url: str = "") -> list[str]:
    """A demo workspace made by the real CLI, each clip dropped as ``d<N>.wav``; returns
    the command prefix (``python cli.py --home HOME``) for subprocess tests."""
    cli = [sys.executable, str(PROJECT / "cli.py"), "--home", str(home)]
    subprocess.run([*cli, "init", "--demo"], check=True, capture_output=True)
    set_config(home, stable_seconds=0.2, second_pass="false")
    use_store(home, store_url)
    for index, clip in enumerate(clips):
        shutil.copyfile(clip, home / "inbox" / CLIENT / f"d{index}.wav")
    return cli


def use_store(home: Path, url: str) -> None:
    """Point a workspace at a server's job store; its unused jobs.db goes away."""
    if url:
        set_config(home, url=f'"{url}"')
        for stale in home.glob("jobs.db*"):
            stale.unlink()


# -- job store backends -----------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped with SIGTERM (a timeout, a cancelled job) ends as Ctrl-C does:
    fixtures are torn down, so the PostgreSQL and S3 test servers stop too."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.both_backends``: a test that uses the job store (through the
    ``backend``, ``store``, ``home`` or ``config`` fixtures) runs on each backend."""
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_backends"
    ):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the whole session, stopped at its end."""
    bindir = server_binaries()
    if bindir is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) are missing: run `make setup`"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must run the PostgreSQL tests)")
        pytest.skip(message)
    server = PgServer(bindir)
    try:
        yield server.start()
    finally:
        server.stop()


@dataclass
class Backend:
    """The job store a test runs on: SQLite in the test's folder, or a database of
    its own, already migrated, on the session's PostgreSQL server."""

    name: str
    folder: Path
    server: PgServer | None = None
    url: str = ""  # empty: the workspace's (or the folder's) jobs.db
    databases: list[str] = field(default_factory=list)

    @property
    def spec(self) -> str:
        """What a child process needs to open the same store (see :meth:`open_spec`)."""
        return self.url or str(self.folder / "jobs.db")

    def open(self, *, actor: str = "system") -> JobStore:
        return open_spec(self.spec, actor=actor)

    def new_database(self, *, migrated: bool = True) -> str:
        """One more database on the server (dropped with the server), as a URL."""
        assert self.server is not None
        self.databases.append(self.server.create_database(migrated=migrated))
        return self.server.url(self.databases[-1])


def open_spec(spec: str, *, actor: str = "system") -> JobStore:
    """A store from a PostgreSQL URL or a SQLite file path."""
    if spec.startswith("postgresql://"):
        from transcribe.store.postgres import PostgresStore

        return PostgresStore(spec, actor=actor)
    from transcribe.store.sqlite import SqliteStore

    return SqliteStore(Path(spec), actor=actor)


def execute(store: JobStore, sql: str, *params: Any) -> None:
    """Raw SQL (``?`` marks) on either backend: how tests tamper behind the store's back."""
    store.atomic(lambda tx: tx.execute(sql, params))


def query(store: JobStore, sql: str, *params: Any) -> Sequence[Any]:
    return store.atomic(lambda tx: list(tx.execute(sql, params).fetchall()))


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SQLite unless the test is marked ``both_backends`` (then each in turn)."""
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        yield Backend("sqlite", tmp_path)
        return
    server: PgServer = request.getfixturevalue("pg_server")
    chosen = Backend("postgresql", tmp_path, server, "")
    chosen.url = chosen.new_database()
    try:
        yield chosen
    finally:
        for database in chosen.databases:
            server.drop_database(database)


@pytest.fixture
def home(tmp_path: Path, backend: Backend) -> Path:
    init_workspace(tmp_path / "home", demo=True)
    # One decoding per file: the second pass doubles transcription time and is tested
    # where it matters (test_vocabulary_retrieve, test_batch, bench/asr.py).
    set_config(tmp_path / "home", stable_seconds=0.3, second_pass="false")
    use_store(tmp_path / "home", backend.url)
    return tmp_path / "home"


@pytest.fixture
def config(home: Path) -> Config:
    return load_config(home)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One English clip per sentence, different content (so different hashes)."""
    if not audiogen.have_espeak():
        pytest.fail("espeak-ng is missing: run `make setup`")
    folder = tmp_path_factory.mktemp("speech")
    for index, sentence in enumerate(audiogen.SENTENCES):
        audiogen.speak(sentence, folder / f"clip{index}.wav")
    return folder


@pytest.fixture(scope="session")
def clips(speech_dir: Path) -> list[Path]:
    return sorted(speech_dir.glob("clip*.wav"))


@pytest.fixture(scope="session")
def engine_factory() -> Iterator[object]:
    """A model loaded once for the whole session (loading costs seconds)."""
    engines: dict[str, WhisperEngine] = {}

    def factory(config: Config) -> WhisperEngine:
        if "engine" not in engines:
            engines["engine"] = WhisperEngine(config.transcription)
        return engines["engine"]

    yield factory
