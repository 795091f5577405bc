"""``transcribe serve`` for real: uvicorn in a subprocess on a free port of 127.0.0.1,
TLS with the TEST certificate of ``init --demo``, driven by real httpx clients and by
``transcribe status --server``. One server per backend (SQLite, PostgreSQL) for the
whole module; each test uses accounts and jobs of its own where it changes them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import BACKENDS, PROJECT, execute, set_config, use_store
from transcribe.config import Config, load_config
from transcribe.service.accounts import add_account
from transcribe.service.api import create_app
from transcribe.service.openapi import DOCS_FILE, openapi_schema, openapi_text
from transcribe.status import status_row
from transcribe.store import new_job_id, open_store
from transcribe.workspace import init_workspace

PASSWORD = "correct horse battery"
#: what each account sees of JOBS (by key); admin: 403, no account: 401
VISIBLE = {
    "sec": {"hart", "lee"},
    "hart": {"hart"},
    "dubois-sec": {"dubois"},
}
ACCOUNTS: dict[str, dict[str, Any]] = {
    "sec": {"role": "secretary", "clients": ["riverside-clinic"]},
    "hart": {"role": "author", "clients": ["riverside-clinic"], "author": "Dr Hart"},
    "dubois-sec": {"role": "secretary", "clients": ["maitre-dubois"]},
    "root": {"role": "admin"},
    "victim": {"role": "secretary", "clients": ["riverside-clinic"]},
    "leaver": {"role": "secretary", "clients": ["riverside-clinic"]},
    "cli": {"role": "secretary", "clients": ["riverside-clinic"]},
}
#: (client, author, source name): the source names stand for the patient names
#: senders put in file names, which must never reach the server's log
JOBS = {
    "hart": ("riverside-clinic", "Dr Hart", "Hart-Jeanne-Dupont.wav"),
    "lee": ("riverside-clinic", "Dr Lee", "Lee-Marcel-Durand.wav"),
    "dubois": ("maitre-dubois", "Me Dubois", "Dubois-Succession-Martin.wav"),
}
runner = CliRunner()


@dataclass
class Service:
    home: Path
    config: Config
    url: str
    ca: Path
    log: Path
    jobs: dict[str, str]  # key -> job id
    tokens: dict[str, str] = field(default_factory=dict)  # account -> token (cached)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", verify=_trust(self.ca), timeout=30)

    def token(self, name: str) -> str:
        if name not in self.tokens:
            with self.client() as http:
                answer = http.post("/login", json={"name": name, "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            self.tokens[name] = answer.json()["token"]
        return self.tokens[name]

    def get(self, path: str, name: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(name)}"} if name else {}
        with self.client() as http:
            return http.get(path, headers=headers)

    def events(self, **match: Any) -> list[dict[str, Any]]:
        with open_store(self.config) as store:
            events = store.events()
        return [e for e in events if all(e[k] == v for k, v in match.items())]


def _trust(ca: Path) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(ca))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed(config: Config) -> dict[str, str]:
    ids = {}
    with open_store(config, actor="test") as store:
        for name, values in ACCOUNTS.items():
            add_account(config, store, name, password=PASSWORD, **values)
        for key, (client, author, source) in JOBS.items():
            ids[key] = new_job_id()
            store.insert_job(
                id=ids[key], client=client, source_name=source, content_hash=key, author=author
            )
    return ids


def _wait_until_up(url: str, ca: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server stopped: {log.read_text()[-2000:]}")
        try:
            httpx.get(url + "/api/v1/openapi.json", verify=_trust(ca), timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("the server did not start within 60 s")


@pytest.fixture(scope="module", params=BACKENDS)
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp(f"service-{request.param}")
    home = folder / "home"
    init_workspace(home, demo=True)
    set_config(home, max_failed_logins=3, lockout_s=600, failed_login_delay_s=0.01)
    database = None
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_server")
        database = pg.create_database()
        use_store(home, pg.url(database))
    config = load_config(home)
    jobs = _seed(config)
    log = folder / "server.log"
    try:
        with running_server(home, log) as url:
            yield Service(home, config, url, home / "keys" / "demo-ca.pem", log, jobs)
    finally:
        if database is not None:
            request.getfixturevalue("pg_server").drop_database(database)


@contextmanager
def served_workspace(
    folder: Path, accounts: dict[str, dict[str, Any]], **settings: float | str
) -> Iterator[Service]:
    """A demo workspace with ``accounts`` (password :data:`PASSWORD`) and ``settings``
    in its config, served by a real server until the end (SQLite)."""
    home = folder / "home"
    init_workspace(home, demo=True)
    set_config(home, **settings)
    config = load_config(home)
    with open_store(config, actor="test") as store:
        for name, values in accounts.items():
            add_account(config, store, name, password=PASSWORD, **values)
    log = folder / "server.log"
    with running_server(home, log) as url:
        yield Service(home, config, url, home / "keys" / "demo-ca.pem", log, {})


@contextmanager
def running_server(home: Path, log: Path) -> Iterator[str]:
    """``transcribe serve`` as a real process on a free port; its URL, until the end."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                str(PROJECT / "cli.py"),
                "--home",
                str(home),
                "serve",
                "--port",
                str(port),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{port}"
    try:
        _wait_until_up(url, home / "keys" / "demo-ca.pem", process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the authorization matrix ---------------------------------------------------------


@pytest.mark.parametrize("name", [*VISIBLE, "root", None])
def test_job_list_is_exactly_what_each_account_may_see(service: Service, name: str | None) -> None:
    answer = service.get("/jobs", name)
    if name is None:
        assert answer.status_code == 401 and answer.json() == {
            "error": "no login token: POST /api/v1/login first"
        }
        return
    if name == "root":
        assert answer.status_code == 403 and "reads no job" in answer.json()["error"]
        return
    assert answer.status_code == 200
    expected_ids = {service.jobs[key] for key in VISIBLE[name]}
    assert {row["id"] for row in answer.json()} == expected_ids
    with open_store(service.config) as store:  # the shape of the local `status --json`
        local = [status_row(job) for job in store.jobs() if job.id in expected_ids]
    assert answer.json() == json.loads(json.dumps(local))
    assert service.events(actor=f"api:{name}", action="list")


@pytest.mark.parametrize("key", list(JOBS))
@pytest.mark.parametrize("name", [*VISIBLE, "root", None])
def test_each_job_is_read_only_by_those_who_may_see_it(
    service: Service, name: str | None, key: str
) -> None:
    job_id = service.jobs[key]
    answer = service.get(f"/jobs/{job_id}", name)
    if name is None:
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        return
    actor = f"api:{name}"
    if name == "root":
        assert answer.status_code == 403
        assert service.events(actor=actor, action="denied", job_id=job_id)
    elif key in VISIBLE[name]:
        assert answer.status_code == 200 and answer.json()["id"] == job_id
        assert answer.json()["client"] == JOBS[key][0]
        assert service.events(actor=actor, action="view", job_id=job_id)
    else:  # another client's job, or another author's: as if it did not exist
        assert answer.status_code == 404 and answer.json() == {"error": f"no job {job_id}"}
        assert service.events(actor=actor, action="denied", job_id=job_id)


def test_guessed_and_path_like_ids(service: Service) -> None:
    guessed = "20990101-abcdef"
    answer = service.get(f"/jobs/{guessed}", "sec")
    assert answer.status_code == 404 and answer.json() == {"error": f"no job {guessed}"}
    assert service.events(actor="api:sec", action="denied", job_id=guessed)
    for path in ("/jobs/..%2F..%2Fetc%2Fpasswd", "/jobs/a%20b", "/jobs/" + "x" * 200):
        answer = service.get(path, "sec")
        assert answer.status_code == 400 and answer.json() == {"error": "not a job id"}


# -- logins ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "headers", "message"),
    [
        (b'{"name": "sec"}', {"content-type": "text/plain"}, "expected a JSON body"),
        (b"{not json", {"content-type": "application/json"}, "not valid JSON"),
        (b"[1, 2]", {"content-type": "application/json"}, "expected a JSON object"),
        (b'{"name": 1}', {"content-type": "application/json"}, 'expected {"name"'),
        (b'{"a": "' + b"x" * 100_000 + b'"}', {"content-type": "application/json"}, "over 16 KB"),
    ],
)
def test_bad_login_bodies_get_400_in_one_line(
    service: Service, content: bytes, headers: dict[str, str], message: str
) -> None:
    with service.client() as http:
        answer = http.post("/login", content=content, headers=headers)
    assert answer.status_code == 400 and message in answer.json()["error"]
    assert "\n" not in answer.json()["error"]


def test_huge_chunked_body_is_refused_without_a_length(service: Service) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}'

    with service.client() as http:
        answer = http.post("/login", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "over 16 KB" in answer.json()["error"]


def test_wrong_passwords_lock_the_account(service: Service) -> None:
    with service.client() as http:
        answers = [
            http.post("/login", json={"name": "victim", "password": f"wrong guess {n}"})
            for n in range(3)
        ]
        after = http.post("/login", json={"name": "victim", "password": PASSWORD})
        unknown = http.post("/login", json={"name": "nobody", "password": PASSWORD})
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert answers[0].json() == unknown.json() == {"error": "wrong account name or password"}
    assert after.status_code == 429 and "locked" in after.json()["error"]
    assert int(after.headers["retry-after"]) > 0
    assert len(service.events(action="login-failed", detail="account victim, failure 1")) == 1
    assert service.events(action="account-locked")


def test_expired_unknown_and_disabled_tokens_get_401(service: Service) -> None:
    token = service.token("leaver")
    assert service.get("/jobs", "leaver").status_code == 200
    with open_store(service.config) as store:
        execute(store, "UPDATE sessions SET expires_at = ? WHERE account = 'leaver'", 1.0)
    with service.client() as http:
        expired = http.get("/jobs", headers={"Authorization": f"Bearer {token}"})
        forged = http.get("/jobs", headers={"Authorization": "Bearer not-a-token"})
    assert expired.status_code == forged.status_code == 401
    assert expired.json() == {"error": "login expired or unknown: log in again"}
    del service.tokens["leaver"]
    token = service.token("leaver")
    home = ["--home", str(service.home)]
    assert runner.invoke(app, [*home, "users", "disable", "leaver"]).exit_code == 0
    with service.client() as http:
        gone = http.get("/jobs", headers={"Authorization": f"Bearer {token}"})
        again = http.post("/login", json={"name": "leaver", "password": PASSWORD})
    assert gone.status_code == 401 and again.status_code == 403


# -- the command-line client ----------------------------------------------------------


def _status(service: Service, config_home: Path, *extra: str, password: str | None) -> Any:
    """``status --server`` as a real process: no terminal, the password from the env."""
    env = {k: v for k, v in os.environ.items() if k != "TRANSCRIBE_PASSWORD"}
    env["XDG_CONFIG_HOME"] = str(config_home)
    if password is not None:
        env["TRANSCRIBE_PASSWORD"] = password
    return subprocess.run(
        [
            sys.executable,
            str(PROJECT / "cli.py"),
            "status",
            "--server",
            service.url,
            "--user",
            "cli",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def _status_in_process(
    service: Service, config_home: Path, *extra: str, password: str | None
) -> Any:
    """The same through CliRunner (no terminal either): an interpreter start cheaper."""
    env = {"XDG_CONFIG_HOME": str(config_home), "TRANSCRIBE_PASSWORD": password}
    args = ["status", "--server", service.url, "--user", "cli", *extra]
    return runner.invoke(app, args, env=env)


def test_status_server_json_lists_the_accounts_jobs_and_keeps_its_token(
    service: Service, tmp_path: Path
) -> None:
    ca = ["--ca", str(service.ca)]
    first = _status(service, tmp_path, *ca, "--json", password=PASSWORD)
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    assert {row["id"] for row in rows} == {service.jobs["hart"], service.jobs["lee"]}
    with open_store(service.config) as store:
        local = [status_row(store.get(row["id"])) for row in rows]
    assert rows == json.loads(json.dumps(local))  # the local `status --json` shape
    folder = tmp_path / "transcribe" / "tokens"
    (token_file,) = folder.iterdir()
    assert folder.stat().st_mode & 0o777 == 0o700 and token_file.stat().st_mode & 0o777 == 0o600
    reused = _status_in_process(service, tmp_path, *ca, "--json", password=None)
    assert reused.exit_code == 0, reused.output  # no password needed: the token was kept
    assert json.loads(reused.stdout) == rows
    assert len(service.events(action="login", detail="account cli")) == 1
    with open_store(service.config) as store:
        execute(store, "UPDATE sessions SET expires_at = ? WHERE account = 'cli'", 1.0)
    stale = _status_in_process(service, tmp_path, *ca, "--json", password=None)
    assert stale.exit_code == 14 and "TRANSCRIBE_PASSWORD" in stale.output
    untrusted = _status_in_process(service, tmp_path, "--json", password=PASSWORD)  # no --ca
    assert untrusted.exit_code == 14 and "--ca" in untrusted.output
    wrong = _status_in_process(service, tmp_path / "other", *ca, password="not the password")
    assert wrong.exit_code == 14 and "wrong account name or password" in wrong.output


# -- what the server writes, and what it refuses to start with ---------------------------


def test_the_log_holds_no_token_password_or_file_name(service: Service) -> None:
    service.get("/jobs", "sec")
    service.get(f"/jobs/{service.jobs['hart']}", "hart")
    log = service.log.read_text(encoding="utf-8")
    assert "/api/v1/jobs" in log  # the request lines are there
    secrets = [PASSWORD, *service.tokens.values(), *(source for _, _, source in JOBS.values())]
    assert not [s for s in secrets if s in log]


def test_openapi_is_served_and_kept_in_docs(service: Service) -> None:
    with service.client() as http:
        assert http.get("/openapi.json").json() == openapi_schema()
    assert DOCS_FILE.read_text(encoding="utf-8") == openapi_text(), (
        "run `python -m transcribe.service.openapi`"
    )
    described = {
        (path, method.upper())
        for path, item in openapi_schema()["paths"].items()
        for method in item
    }
    served = {
        (route.path.replace(":path", ""), method)
        for route in create_app(service.config).routes
        for method in route.methods - {"HEAD"}
    }
    assert served == described


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0", "--insecure-http"], "plain HTTP is refused on 0.0.0.0"),
        (["--port", "1"], "no TLS file"),
    ],
)
def test_serve_refuses_plain_http_off_loopback_and_missing_certificates(
    tmp_path: Path, args: list[str], message: str
) -> None:
    init_workspace(tmp_path, demo=False)
    result = runner.invoke(app, ["--home", str(tmp_path), "serve", *args])
    assert result.exit_code == 14 and message in result.output
