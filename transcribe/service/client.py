"""The client side of the service, for the command line (``status --server``, ``submit``).

A login token is kept owner-only under the user's config folder
(``$XDG_CONFIG_HOME/transcribe/tokens/``, else ``~/.config/transcribe/tokens/``), one
file per server and account, and reused until it expires, so a script does not send
the password with every command. A token the server no longer takes (expired,
account disabled, server restarted with a new store) is dropped and the password
asked for once more.

The server's certificate is checked against the system's trusted authorities, or
against ``--ca FILE`` only (the demo's ``keys/demo-ca.pem``). A password is never
sent over plain HTTP except to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import ssl
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ..config import Limits
from ..errors import ConfigError, InputRejected, JobNotFound, ServiceError
from ..fsutil import atomic_write_bytes, atomic_write_text
from ..stages.sidecar import Sidecar, find_sidecar, read_sidecar
from .openapi import (
    API_PREFIX,
    CLIENT_HEADER,
    LEASE_HEADER,
    NAME_HEADER,
    REASON_HEADER,
    SESSION_HEADER,
    SIDECAR_HEADER,
)

PasswordSource = Callable[[], str]


class ReviewConflict(ServiceError):
    """The server refused a review change (409): another reviewer holds the job, this
    client's lease was lost, or the draft moved on. The client keeps its edits."""


def config_folder() -> Path:
    """``$XDG_CONFIG_HOME/transcribe``, else ``~/.config/transcribe``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "transcribe"


def check_server_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ServiceError(f"server {url!r}: expected https://HOST[:PORT]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ServiceError("the server URL takes no user, password, query or fragment")
    if parts.scheme == "http" and parts.hostname != "127.0.0.1":
        raise ServiceError(
            f"refusing to send a password over plain HTTP to {parts.hostname}",
            hint="use https://",
        )
    return url.rstrip("/")


def tls_context(ca: Path | None) -> ssl.SSLContext:
    """The system's trusted authorities, or only ``ca``."""
    if ca is None:
        return ssl.create_default_context()
    if not ca.is_file():
        raise ServiceError(f"no certificate file {ca}")
    try:
        return ssl.create_default_context(cafile=str(ca))
    except ssl.SSLError as exc:
        raise ServiceError(f"{ca} is not a PEM certificate: {exc.reason}") from None


class TokenCache:
    """One owner-only JSON file per server and account."""

    def __init__(self, folder: Path, server: str, user: str) -> None:
        key = hashlib.sha256(f"{server}\n{user}".encode()).hexdigest()[:32]
        self.folder = folder / "tokens"
        self.path = self.folder / f"{key}.json"
        self.server, self.user = server, user

    def load(self) -> str | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("server") != self.server or data.get("user") != self.user:
            return None
        if not isinstance(data.get("expires_at"), int | float) or data["expires_at"] <= time.time():
            return None
        token = data.get("token")
        return token if isinstance(token, str) else None

    def save(self, token: str, expires_at: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        data = {"server": self.server, "user": self.user, "token": token, "expires_at": expires_at}
        atomic_write_text(self.path, json.dumps(data) + "\n", mode=0o600)

    def drop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class ServiceClient:
    """Requests to one server as one account; logs in when it must."""

    def __init__(
        self,
        server: str,
        user: str,
        password: PasswordSource,
        *,
        ca: Path | None = None,
        folder: Path | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.server = check_server_url(server)
        self.user = user
        self.password = password
        self.ca, self.folder, self.timeout_s = ca, folder, timeout_s
        self.cache = TokenCache(folder or config_folder(), self.server, user)
        verify: ssl.SSLContext | bool = tls_context(ca)
        self.http = httpx.Client(base_url=self.server, verify=verify, timeout=timeout_s)

    def sibling(self, password: PasswordSource) -> ServiceClient:
        """Another connection as the same account, sharing the token (one per thread)."""
        return ServiceClient(
            self.server,
            self.user,
            password,
            ca=self.ca,
            folder=self.folder,
            timeout_s=self.timeout_s,
        )

    def logged_in(self) -> None:
        """Log in now if no token is cached, so a password is asked before a full-screen
        program starts, never in the middle of it."""
        if self.cache.load() is None:
            self.login()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, API_PREFIX + path, **kwargs)
        except httpx.ConnectError as exc:
            hint = None
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                hint = "the server's certificate is not trusted here: pass --ca FILE"
            raise ServiceError(f"cannot reach {self.server}: {exc}", hint=hint) from None
        except httpx.HTTPError as exc:
            raise ServiceError(f"request to {self.server} failed: {exc}") from None

    def login(self) -> str:
        answer = self._send("POST", "/login", json={"name": self.user, "password": self.password()})
        if answer.status_code != 200:
            raise ServiceError(f"{self.server} refused the login: {_reason(answer)}")
        data = answer.json()
        self.cache.save(data["token"], float(data["expires_at"]))
        return str(data["token"])

    def request(self, method: str, path: str) -> Any:
        """The JSON answer to an authenticated request; a stale token is replaced once."""
        return self.call(method, path).json()

    def authorized(
        self, method: str, path: str, body: Callable[[], dict[str, Any]] | None = None
    ) -> httpx.Response:
        """The answer to a request sent with the login token, whatever its status.

        ``body`` gives the request's content and headers afresh for each try, so a file
        is read again from its start when a stale token makes the first try fail.
        """
        token = self.cache.load()
        fresh = token is None
        for _ in range(2):
            if token is None:
                token = self.login()
            extra = body() if body is not None else {}
            headers = {**extra.pop("headers", {}), "Authorization": f"Bearer {token}"}
            answer = self._send(method, path, headers=headers, **extra)
            if answer.status_code == 401 and not fresh:
                self.cache.drop()
                token, fresh = None, True
                continue
            break
        expires = answer.headers.get(SESSION_HEADER, "")
        if expires.isdigit() and answer.status_code < 400:
            self.cache.save(token, float(expires))
        return answer

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/jobs"))

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/jobs/{job_id}"))

    def call(
        self,
        method: str,
        path: str,
        *,
        payload: dict[str, Any] | None = None,
        lease: str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """An authenticated request; 2xx answers returned, the rest raised: 404 as
        :class:`JobNotFound`, 409 as :class:`ReviewConflict`, others as ServiceError."""

        def body() -> dict[str, Any]:
            extra: dict[str, Any] = {
                "headers": {**({LEASE_HEADER: lease} if lease else {}), **(headers or {})}
            }
            if payload is not None:
                extra["json"] = payload
            if params is not None:
                extra["params"] = params
            return extra

        answer = self.authorized(method, path, body)
        if answer.status_code < 300:
            return answer
        if answer.status_code == 404:
            raise JobNotFound(f"{self.server}: {_reason(answer)}")
        if answer.status_code == 409:
            raise ReviewConflict(f"{self.server}: {_reason(answer)}")
        raise ServiceError(f"{self.server} refused: {_reason(answer)}")

    # -- the review over the network -------------------------------------------------

    def review_queue(self) -> list[dict[str, Any]]:
        """The jobs in review this secretary may open (``GET /review``)."""
        return list(self.call("GET", "/review").json())

    def take_lease(self, job_id: str, lease: str | None = None) -> dict[str, Any]:
        """A new review lease on the job, or ``lease`` renewed."""
        payload = {"lease": lease} if lease else {}
        return dict(self.call("POST", f"/jobs/{job_id}/lease", payload=payload).json())

    def release_lease(self, job_id: str, lease: str) -> None:
        self.call("DELETE", f"/jobs/{job_id}/lease", lease=lease)

    def draft(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/jobs/{job_id}/draft").json())

    def save(self, job_id: str, lease: str, save: dict[str, Any]) -> dict[str, Any]:
        """Edits made on ``save["revision"]``; the new revision."""
        return dict(self.call("PUT", f"/jobs/{job_id}/draft", payload=save, lease=lease).json())

    def audio(self, job_id: str, start: float, end: float, speed: float = 1.0) -> bytes:
        """A window of the dictation as WAV bytes, to play on this machine."""
        params = {"start": f"{start:.3f}", "end": f"{end:.3f}", "speed": f"{speed:g}"}
        return self.call("GET", f"/jobs/{job_id}/audio", params=params).content

    def approve(
        self, job_id: str, lease: str, *, revision: int, accept_unreliable: bool = False
    ) -> dict[str, Any]:
        payload = {"revision": revision, "accept_unreliable": accept_unreliable}
        return dict(
            self.call("POST", f"/jobs/{job_id}/approve", payload=payload, lease=lease).json()
        )

    def send_back(self, job_id: str, lease: str, question: str) -> dict[str, Any]:
        payload = {"question": question}
        return dict(
            self.call("POST", f"/jobs/{job_id}/send-back", payload=payload, lease=lease).json()
        )

    def question(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/jobs/{job_id}/question").json())

    def answer(self, job_id: str, answer: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/jobs/{job_id}/answer", payload={"answer": answer}).json())

    def letter(
        self, job_id: str, out: Path, *, force: bool = False, reason: str | None = None
    ) -> int:
        """The signed letter written to ``out`` (0600, atomically); its size. An admin
        gives a ``reason``, which the server audits."""
        if out.exists() and not force:
            raise ConfigError(f"{out} already exists", hint="choose another name or use --force")
        headers = {REASON_HEADER: quote(reason, safe="")} if reason else None
        data = self.call("GET", f"/jobs/{job_id}/letter", headers=headers).content
        if not data.startswith(b"%PDF-"):
            raise ServiceError(f"{self.server} sent something that is not a PDF")
        atomic_write_bytes(out, data)
        return len(data)

    def submit(self, audio: Path, client: str | None, sidecar: dict[str, Any]) -> dict[str, Any]:
        """Send a dictation; its job as the server answers (``outcome`` added).

        Sending the same file again is safe: the server answers with the job it made
        the first time. A file the server refuses (over its cap, a bad name) or
        quarantines is :class:`InputRejected` with the server's one line.
        """
        headers = {
            "Content-Type": "application/octet-stream",
            NAME_HEADER: quote(os.fsencode(audio.name), safe=""),
            SIDECAR_HEADER: json.dumps(sidecar),
        }
        if client:
            headers[CLIENT_HEADER] = client
        with ExitStack() as files:

            def body() -> dict[str, Any]:
                return {"headers": dict(headers), "content": files.enter_context(audio.open("rb"))}

            answer = self.authorized("POST", "/dictations", body)
        if answer.status_code in (400, 413):
            raise InputRejected(f"{self.server} refused the file: {_reason(answer)}")
        if answer.status_code not in (200, 201):
            raise ServiceError(f"{self.server} refused: {_reason(answer)}")
        job = dict(answer.json())
        if job.get("state") == "quarantined":
            raise InputRejected(f"refused: {job.get('reason')} (job {job.get('id')})")
        return job


def sidecar_fields(audio: Path, *, author: str | None, urgent: bool) -> dict[str, Any]:
    """What goes with an upload: the file's own sidecar, as intake would read it
    (``name.wav.json`` or ``name.json``, checked here so a wrong one is said at once),
    with ``--author`` and ``--urgent`` over it."""
    if not audio.is_file():
        raise InputRejected(f"no audio file {audio}")
    found = find_sidecar(audio)
    sidecar = read_sidecar(found, max_kb=Limits().max_sidecar_kb) if found else Sidecar()
    fields = {k: v for k, v in sidecar.as_dict().items() if v is not None and k != "ignored_keys"}
    if author:
        fields["author"] = author
    if urgent:
        fields["priority"] = "urgent"
    return fields


def _reason(answer: httpx.Response) -> str:
    """The server's one line, or the status when the answer is not ours."""
    try:
        message = answer.json().get("error")
    except (ValueError, AttributeError):
        message = None
    return f"{message} (HTTP {answer.status_code})" if message else f"HTTP {answer.status_code}"
