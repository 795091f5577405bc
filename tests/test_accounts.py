"""Accounts of the service at the library level: the store's rows and audit entries,
argon2id hashes, lockout, tokens kept as hashes, and who sees which job.

Every test taking ``store`` or ``config`` runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from cli import app
from tests.conftest import Backend, execute, query
from transcribe.config import Config, load_config, parse_config
from transcribe.errors import AccountError, AccountNotFound, StoreConflict
from transcribe.service import accounts as acc
from transcribe.service.accounts import LoginRefused, add_account, caller, login, token_hash
from transcribe.service.rights import may_read, visible_jobs
from transcribe.store import JobStore, new_job_id, open_store

pytestmark = pytest.mark.both_backends
PASSWORD = "correct horse battery"
runner = CliRunner()


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still argon2id, at a cost these tests can afford many times over (the rules are
    under test here, not argon2's cost; the server tests keep the real one)."""
    monkeypatch.setattr(acc, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


@pytest.fixture
def config(backend: Backend, tmp_path: Path) -> Config:
    """The demo's clients on the test's store, without the cost of a demo workspace."""
    clients = {name: {} for name in ("riverside-clinic", "maitre-dubois")}
    return parse_config(tmp_path, {"clients": clients, "store": {"url": backend.url}})


@pytest.fixture
def store(config: Config) -> Iterator[JobStore]:
    with open_store(config, actor="admin@desk") as opened:
        yield opened


def test_an_account_keeps_an_argon2id_hash_and_its_creation_is_audited(
    config: Config, store: JobStore
) -> None:
    add_account(
        config, store, "alice", role="secretary", clients=["riverside-clinic"], password=PASSWORD
    )
    account = store.account("alice")
    assert account is not None and account.clients == ("riverside-clinic",)
    assert account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
    assert store.events()[-1]["action"] == "account-add"
    assert store.events()[-1]["actor"] == "admin@desk"
    with pytest.raises(AccountError, match="exists already"):
        add_account(config, store, "alice", role="admin", password=PASSWORD)
    with pytest.raises(StoreConflict):
        store.add_account(account)


@pytest.mark.parametrize(
    ("name", "role", "clients", "password", "message"),
    [
        ("Bad Name", "secretary", ["riverside-clinic"], PASSWORD, "lowercase"),
        ("bob", "boss", ["riverside-clinic"], PASSWORD, "expected one of"),
        ("bob", "secretary", [], PASSWORD, "needs --clients"),
        ("bob", "secretary", ["nowhere"], PASSWORD, "no client 'nowhere'"),
        ("bob", "admin", ["riverside-clinic"], PASSWORD, "no --clients"),
        ("bob", "secretary", ["riverside-clinic"], "short", "at least 12"),
    ],
)
def test_bad_accounts_are_refused(
    config: Config,
    store: JobStore,
    name: str,
    role: str,
    clients: list[str],
    password: str,
    message: str,
) -> None:
    with pytest.raises(AccountError, match=message):
        add_account(config, store, name, role=role, clients=clients, password=password)
    assert store.accounts() == []


def test_login_gives_a_token_stored_only_as_its_hash(config: Config, store: JobStore) -> None:
    add_account(
        config, store, "alice", role="secretary", clients=["riverside-clinic"], password=PASSWORD
    )
    done = login(store, config.server, "alice", PASSWORD)
    rows = [tuple(row) for row in query(store, "SELECT token_hash FROM sessions")]
    assert rows == [(token_hash(done.token),)] and done.token not in rows[0][0]
    who = caller(store, config.server, done.token)
    assert who is not None and who.account.name == "alice"
    assert caller(store, config.server, done.token + "x") is None
    assert [e["action"] for e in store.events()][-1] == "login"


def test_a_login_is_renewed_while_used_never_past_its_maximum(
    config: Config, store: JobStore
) -> None:
    policy = replace(config.server, token_ttl_s=100.0, token_max_s=150.0)
    add_account(
        config, store, "alice", role="secretary", clients=["riverside-clinic"], password=PASSWORD
    )
    done = login(store, policy, "alice", PASSWORD)
    hashed = token_hash(done.token)
    created = time.time() - 120  # as if logged in two minutes ago, last used 50 s ago
    execute(
        store,
        "UPDATE sessions SET created_at = ?, expires_at = ? WHERE token_hash = ?",
        created,
        time.time() + 50,
        hashed,
    )
    who = caller(store, policy, done.token)
    assert who is not None and who.expires_at == pytest.approx(created + 150.0)
    execute(
        store, "UPDATE sessions SET expires_at = ? WHERE token_hash = ?", time.time() - 1, hashed
    )
    assert caller(store, policy, done.token) is None  # expired
    assert store.drop_expired_sessions(time.time()) == 1


def test_failed_logins_lock_the_account_then_a_new_password_unlocks_it(
    config: Config, store: JobStore
) -> None:
    policy = replace(config.server, max_failed_logins=3, lockout_s=600.0, failed_login_delay_s=0.5)
    add_account(
        config, store, "alice", role="secretary", clients=["riverside-clinic"], password=PASSWORD
    )
    delays = []
    for _ in range(2):
        with pytest.raises(LoginRefused, match="wrong account name or password") as refused:
            login(store, policy, "alice", "not the password")
        delays.append(refused.value.delay_s)
    assert delays == [0.5, 1.0]  # slower with each failure
    with pytest.raises(LoginRefused, match="now locked") as locked:
        login(store, policy, "alice", "still not it")
    assert locked.value.status == 429
    with pytest.raises(LoginRefused, match="locked") as still:
        login(store, policy, "alice", PASSWORD)  # the right password does not unlock it
    assert still.value.status == 429
    actions = [e["action"] for e in store.events()]
    assert actions.count("login-failed") == 3 and "account-locked" in actions
    acc.reset_password(store, "alice", "another long passphrase")
    assert login(store, policy, "alice", "another long passphrase").account.name == "alice"


def test_unknown_names_get_the_same_answer_as_wrong_passwords(
    config: Config, store: JobStore
) -> None:
    with pytest.raises(LoginRefused, match="wrong account name or password") as refused:
        login(store, config.server, "nobody", PASSWORD)
    assert refused.value.status == 401
    assert store.events()[-1]["detail"] == "unknown account"  # the guessed name is not kept


def test_disabling_ends_logins_and_refuses_new_ones(config: Config, store: JobStore) -> None:
    add_account(
        config, store, "alice", role="secretary", clients=["riverside-clinic"], password=PASSWORD
    )
    token = login(store, config.server, "alice", PASSWORD).token
    acc.disable_account(store, "alice")
    assert caller(store, config.server, token) is None
    with pytest.raises(LoginRefused, match="disabled"):
        login(store, config.server, "alice", PASSWORD)
    with pytest.raises(AccountNotFound):
        acc.disable_account(store, "nobody")
    assert store.events()[-1]["action"] == "account-disable"


def test_rights_secretary_author_admin(config: Config, store: JobStore) -> None:
    jobs = {}
    for key, client, author in [
        ("hart", "riverside-clinic", "Dr Hart"),
        ("lee", "riverside-clinic", "Dr Lee"),
        ("dubois", "maitre-dubois", "Me Dubois"),
    ]:
        job_id = new_job_id()
        store.insert_job(
            id=job_id, client=client, source_name=f"{key}.wav", content_hash=key, author=author
        )
        jobs[key] = store.get(job_id)
    sec = add_account(
        config, store, "sec", role="secretary", clients=["riverside-clinic"], password=PASSWORD
    )
    hart = add_account(
        config,
        store,
        "hart",
        role="author",
        clients=["riverside-clinic"],
        author="Dr Hart",
        password=PASSWORD,
    )
    admin = add_account(config, store, "root", role="admin", password=PASSWORD)
    assert {j.id for j in visible_jobs(store, sec)} == {jobs["hart"].id, jobs["lee"].id}
    assert [j.id for j in visible_jobs(store, hart)] == [jobs["hart"].id]
    assert visible_jobs(store, admin) == []
    assert not may_read(sec, jobs["dubois"]) and not may_read(hart, jobs["lee"])
    assert not any(may_read(admin, job) for job in jobs.values())


def test_users_commands(home: Path) -> None:
    config = load_config(home)
    home_option = ["--home", str(home)]

    def add(name: str, role: str, clients: str, *more: str, password: str = PASSWORD) -> Any:
        command = [*home_option, "users", "add", name, "--role", role, "--clients", clients]
        return runner.invoke(app, [*command, *more], input=password + "\n")

    added = add("alice", "secretary", "riverside-clinic,maitre-dubois")
    assert added.exit_code == 0, added.output
    author = add("hart", "author", "riverside-clinic", "--author", "Dr Hart")
    assert author.exit_code == 0, author.output
    short = add("bob", "secretary", "riverside-clinic", password="short")
    assert short.exit_code == 15 and "at least 12" in short.output
    listed = runner.invoke(app, [*home_option, "users", "list"])
    assert "alice" in listed.output and "(Dr Hart)" in listed.output and "bob" not in listed.output
    assert runner.invoke(app, [*home_option, "users", "disable", "alice"]).exit_code == 0
    shown = runner.invoke(app, [*home_option, "users", "list", "--json"])
    rows = {row["name"]: row for row in json.loads(shown.output)}
    assert rows["alice"]["disabled"] is True and "password_hash" not in rows["alice"]
    reset = runner.invoke(
        app, [*home_option, "users", "reset-password", "hart"], input="a brand new passphrase\n"
    )
    assert reset.exit_code == 0, reset.output
    missing = runner.invoke(app, [*home_option, "users", "disable", "nobody"])
    assert missing.exit_code == 15 and "no account 'nobody'" in missing.output
    with open_store(config) as store:
        assert login(store, config.server, "hart", "a brand new passphrase").account.author == (
            "Dr Hart"
        )
