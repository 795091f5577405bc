"""What only the PostgreSQL job store has: its configuration (no password in it), its
explicit, recorded migrations, and what an operator sees when the server is away.

The rules shared with SQLite (states, claims, locks, audit chain, archive index) are
tested on both backends in test_store, test_audit, test_archive and the others.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import PROJECT, Backend, execute, use_store
from transcribe.config import parse_config
from transcribe.errors import ConfigError, StoreError
from transcribe.store.postgres import MIGRATIONS, PostgresStore, describe_url
from transcribe.workspace import init_workspace

runner = CliRunner()


@pytest.fixture
def pg(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A PostgreSQL backend whose extra databases are dropped with the test."""
    backend = Backend("postgresql", tmp_path, request.getfixturevalue("pg_server"))
    request.addfinalizer(lambda: [backend.server.drop_database(d) for d in backend.databases])
    return backend


def workspace(tmp_path: Path, url: str) -> list[str]:
    home = tmp_path / "ws"
    init_workspace(home)
    use_store(home, url)
    return ["--home", str(home)]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://transcribe:s3cret@db.example/jobs",
        "postgres://transcribe:@db.example/jobs",
        "postgresql://db.example/jobs?user=transcribe&password=s3cret",
        "postgresql://db.example/jobs?sslmode=require&PASSWORD=s3cret",
    ],
)
def test_a_url_with_a_password_is_refused_without_echoing_it(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(tmp_path, {"store": {"url": url}})
    message = str(refused.value)
    assert "must not contain a password" in message and "PGPASSWORD" in message
    assert "s3cret" not in message and "db.example" not in message


def test_store_urls_are_checked(tmp_path: Path) -> None:
    assert parse_config(tmp_path, {}).store.backend == "sqlite"
    server = parse_config(tmp_path, {"store": {"url": "postgresql://transcribe@db/jobs"}})
    assert server.store.backend == "postgresql"
    local = parse_config(tmp_path, {"store": {"url": "sqlite:///state/jobs.db"}}).store
    assert (local.backend, local.path) == ("sqlite", tmp_path.resolve() / "state" / "jobs.db")
    absolute = parse_config(tmp_path, {"store": {"url": "sqlite:////srv/jobs.db"}}).store
    assert absolute.path == Path("/srv/jobs.db")
    for wrong, said in (
        ("mysql://db/jobs", "expected sqlite:///FILE or postgresql://"),
        ("jobs.db", "expected"),
        ("sqlite://", "sqlite:///FILE"),
        (42, "must be a string"),
    ):
        with pytest.raises(ConfigError, match=said):
            parse_config(tmp_path, {"store": {"url": wrong}})
    with pytest.raises(ConfigError, match="unknown key 'password'"):
        parse_config(tmp_path, {"store": {"url": "", "password": "x"}})


def test_db_migrate_creates_the_schema_once_and_records_it(pg: Backend, tmp_path: Path) -> None:
    url = pg.new_database(migrated=False)
    home = workspace(tmp_path, url)
    refused = runner.invoke(app, [*home, "status"])
    assert refused.exit_code == 10
    assert "has no schema yet" in refused.output and "transcribe db migrate" in refused.output
    first = runner.invoke(app, [*home, "db", "migrate"])
    assert first.exit_code == 0, first.output
    assert f"schema {len(MIGRATIONS)} (from schema 0)" in first.output
    assert "PostgreSQL database" in first.output
    again = runner.invoke(app, [*home, "db", "migrate"])
    assert again.exit_code == 0 and f"schema {len(MIGRATIONS)} (up to date)" in again.output
    with PostgresStore(url) as store:
        recorded = store.migrations()
        assert [version for version, _, _ in recorded] == list(range(1, len(MIGRATIONS) + 1))
        assert all(program.startswith("transcribe ") for _, _, program in recorded)
    assert runner.invoke(app, [*home, "status", "--json"]).output.strip() == "[]"


def test_machines_migrating_at_once_apply_each_version_once(pg: Backend) -> None:
    url = pg.new_database(migrated=False)
    script = "import sys; from transcribe.store.postgres import PostgresStore\n"
    script += "PostgresStore(sys.argv[1], migrate=True).close()\n"
    procs = [subprocess.Popen([sys.executable, "-c", script, url]) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with PostgresStore(url) as store:
        assert [v for v, _, _ in store.migrations()] == list(range(1, len(MIGRATIONS) + 1))


def test_a_newer_schema_is_refused(pg: Backend, tmp_path: Path) -> None:
    url = pg.new_database()
    with PostgresStore(url) as store:
        newer = len(MIGRATIONS) + 1
        execute(store, "INSERT INTO schema_migrations (version, program) VALUES (?, 'x')", newer)
    with pytest.raises(StoreError, match=f"newer version \\(schema {newer}\\)"):
        PostgresStore(url)
    result = runner.invoke(app, [*workspace(tmp_path, url), "db", "migrate"])
    assert result.exit_code == 10 and "upgrade this program" in result.output


def test_an_unreachable_server_is_one_line_without_a_password(tmp_path: Path) -> None:
    missing = tmp_path / "no-server-here"
    missing.mkdir()
    url = f"postgresql://transcribe@/jobs?host={missing}&port=6543"
    home = workspace(tmp_path, url)
    env_password = "hunter2-not-shown"
    done = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), *home, "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PGPASSWORD": env_password},
    )
    assert done.returncode == 10, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect to the job store")
    assert "database jobs on" in lines[0] and "as transcribe" in lines[0]
    assert env_password not in done.stderr and "Traceback" not in done.stderr
    assert describe_url(url).startswith("PostgreSQL database jobs on")


def test_init_leaves_a_server_alone_and_doctor_names_the_store(pg: Backend, tmp_path: Path) -> None:
    url = pg.new_database()
    home = workspace(tmp_path, url)
    init_workspace(Path(home[1]))  # again, now configured for the server
    assert not (Path(home[1]) / "jobs.db").exists()
    result = runner.invoke(app, [*home, "doctor", "--json"])
    assert '"name": "job store"' in result.output and "PostgreSQL database" in result.output


def test_db_migrate_on_the_embedded_store(tmp_path: Path) -> None:
    home = workspace(tmp_path, "")
    result = runner.invoke(app, [*home, "db", "migrate"])
    assert result.exit_code == 0 and "SQLite" in result.output and "(up to date)" in result.output
