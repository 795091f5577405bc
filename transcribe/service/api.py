"""The JSON API of ``transcribe serve`` (Starlette), version 1.

Every answer is JSON; every refusal is ``{"error": "one line"}`` with its status:
400 for a body that is too large, not JSON or not ``application/json``, or an id
that is not one; 401 without a live login token; 403 for a role that has no business
there; 404 for a job that does not exist *or* that this account may not see (same
answer, so ids cannot be probed; the attempt is audited); 429 while an account is
locked; 413 for an upload over the intake's size cap (from Content-Length, unread,
or once a chunked body grows past it).

Each request opens the job store in a worker thread, as the account it comes from
(the audit trail's actor is ``api:NAME``), and closes it: a store is one per thread,
and a dropped database connection costs one request, not the server. What is
logged is the request line (no query string is ever used for secrets) and the
account: never a body, a token, a password, or anything of a job but its id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import Config
from ..errors import JobNotFound, StoreError, TranscribeError
from ..status import status_row
from ..store import JobStore, open_store
from .accounts import Caller, LoginRefused, caller, login
from .openapi import API_PREFIX, SESSION_HEADER, openapi_schema
from .refusal import Refusal
from .rights import may_read, may_read_jobs, visible_jobs
from .uploads import (
    StoredUpload,
    UploadAnswer,
    UploadForm,
    check_declared_size,
    clean_up,
    read_form,
    store_body,
    take_upload,
)

log = logging.getLogger("transcribe.service")

#: a job id as the store makes them (``20261123-a1b2c3``), with room for other forms;
#: anything else (``../x``, spaces, a megabyte) is refused before the store sees it
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
StoreFactory = Callable[..., JobStore]


class Refused(HTTPException):
    """A refusal with its one-line reason, and any headers it needs."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


async def store_error(_request: Request, exc: Exception) -> Response:
    """The store is down or busy: say so in one line, log it without the request."""
    log.warning("job store error: %s", exc)
    return error_response(503, "the job store is unavailable; try again")


async def library_error(_request: Request, exc: Exception) -> Response:
    """Any other expected failure of the library: its one line, as a server error."""
    log.warning("request failed: %s", exc)
    return error_response(500, "the server could not answer; see its log")


async def read_json(request: Request, limit_bytes: int) -> dict[str, Any]:
    """The request's JSON object, refused (400) when oversized, mistyped or malformed.

    The size is checked from Content-Length before reading, then again while reading
    (a chunked body has none), so a huge body is never held in memory.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Refused(400, "expected a JSON body (Content-Type: application/json)")
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > limit_bytes):
        raise Refused(400, f"request body over {limit_bytes // 1024} KB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit_bytes:
            raise Refused(400, f"request body over {limit_bytes // 1024} KB")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise Refused(400, "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, "expected a JSON object")
    return value


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, "no login token: POST /api/v1/login first", _challenge())
    return token.strip()


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="transcribe"'}


class Api:
    """The endpoints, over one workspace's config; a store opened per request."""

    def __init__(self, config: Config, store_factory: StoreFactory = open_store) -> None:
        self.config = config
        self.policy = config.server
        self.store_factory = store_factory

    @contextmanager
    def store(self, actor: str = "api") -> Iterator[JobStore]:
        with self.store_factory(self.config, actor=actor) as store:
            yield store

    def authenticated(self, store: JobStore, token: str) -> Caller:
        """The caller of a request, or 401; the store acts as them from here on."""
        who = caller(store, self.policy, token)
        if who is None:
            raise Refused(401, "login expired or unknown: log in again", _challenge())
        store.actor = f"api:{who.account.name}"
        return who

    def respond(self, who: Caller, data: Any) -> Response:
        return JSONResponse(data, headers={SESSION_HEADER: f"{who.expires_at:.0f}"})

    # -- endpoints ------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        body = await read_json(request, int(self.policy.max_json_kb * 1024))
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise Refused(400, 'expected {"name": "...", "password": "..."}')

        def work() -> dict[str, Any]:
            with self.store() as store:
                done = login(store, self.policy, name, password)
            account = done.account
            log.info("login: account %s", account.name)
            return {
                "token": done.token,
                "token_type": "bearer",
                "expires_at": done.expires_at,
                "account": {
                    "name": account.name,
                    "role": account.role,
                    "clients": list(account.clients),
                },
            }

        try:
            return JSONResponse(await run_in_threadpool(work))
        except LoginRefused as refused:
            log.info("login refused (%s)", refused.status)
            await asyncio.sleep(refused.delay_s)  # slows guessing, holds no thread
            headers = (
                {"Retry-After": f"{self.policy.lockout_s:.0f}"} if refused.status == 429 else None
            )
            return error_response(refused.status, refused.message, headers)

    async def jobs(self, request: Request) -> Response:
        token = bearer(request)

        def work() -> Response:
            with self.store() as store:
                who = self.authenticated(store, token)
                if not may_read_jobs(who.account):
                    raise Refused(403, "an admin account manages accounts and reads no job")
                rows = [status_row(job) for job in visible_jobs(store, who.account)]
                store.record("list", None, f"{len(rows)} jobs listed over the API")
            return self.respond(who, rows)

        return await run_in_threadpool(work)

    async def job(self, request: Request) -> Response:
        token = bearer(request)
        job_id = request.path_params["job_id"]  # a path: "../x" reaches here, and is refused
        if not JOB_ID.match(job_id):
            raise Refused(400, "not a job id")

        def work() -> Response:
            with self.store() as store:
                who = self.authenticated(store, token)
                if not may_read_jobs(who.account):
                    store.record("denied", job_id, "an admin asked for a job")
                    raise Refused(403, "an admin account manages accounts and reads no job")
                try:
                    job = store.get(job_id)
                except JobNotFound:
                    job = None
                if job is None or not may_read(who.account, job):
                    store.record("denied", job_id, "job not visible to this account")
                    log.info("job %s refused to account %s", job_id, who.account.name)
                    raise Refused(404, f"no job {job_id}")
                store.record("view", job_id, "job status read over the API")
                row = status_row(job)
            return self.respond(who, row)

        return await run_in_threadpool(work)

    async def dictations(self, request: Request) -> Response:
        """An upload: checked from its headers, stored under the cap, then taken in.

        Every refusal after the login is audited, with its one line (which names no
        file and no patient); so is every upload that made or found a job.
        """
        token = bearer(request)
        who = await run_in_threadpool(self._uploader, token)
        try:
            form = read_form(request.headers, who.account, self.config)
            check_declared_size(request.headers, self.config)
            upload = await store_body(request.stream(), form, self.config)
        except Refusal as refused:
            await run_in_threadpool(self._refused_upload, who, refused)
            raise Refused(refused.status, refused.message) from None
        try:
            answer = await run_in_threadpool(self._take, who, form, upload)
        except Refusal as refused:
            log.warning("upload of account %s not taken in now", who.account.name)
            raise Refused(refused.status, refused.message) from None
        log.info("upload: account %s, job %s, %s", who.account.name, answer.job.id, answer.outcome)
        status = 200 if answer.outcome == "already-received" else 201
        data = {**status_row(answer.job), "outcome": answer.outcome}
        headers = {SESSION_HEADER: f"{who.expires_at:.0f}"}
        headers["Location"] = f"{API_PREFIX}/jobs/{answer.job.id}"
        return JSONResponse(data, status_code=status, headers=headers)

    def _uploader(self, token: str) -> Caller:
        with self.store() as store:
            who = self.authenticated(store, token)
            if not may_read_jobs(who.account):
                store.record("denied", None, "an admin tried to upload a dictation")
                raise Refused(403, "an admin account manages accounts and sends no dictation")
        return who

    def _refused_upload(self, who: Caller, refused: Refusal) -> None:
        log.info("upload refused to account %s (%s)", who.account.name, refused.status)
        with self.store(f"api:{who.account.name}") as store:
            store.record("upload-refused", None, f"{refused.status}: {refused.message}")

    def _take(self, who: Caller, form: UploadForm, upload: StoredUpload) -> UploadAnswer:
        with self.store(f"api:{who.account.name}") as store:
            try:
                return take_upload(self.config, store, who.account, form, upload)
            finally:
                clean_up(store, upload)

    async def openapi(self, _request: Request) -> Response:
        return JSONResponse(openapi_schema())


def create_app(config: Config, store_factory: StoreFactory = open_store) -> Starlette:
    """The ASGI application of ``transcribe serve`` for one workspace."""
    api = Api(config, store_factory)
    routes = [
        Route(f"{API_PREFIX}/login", api.login, methods=["POST"]),
        Route(f"{API_PREFIX}/jobs", api.jobs, methods=["GET"]),
        Route(f"{API_PREFIX}/dictations", api.dictations, methods=["POST"]),
        Route(f"{API_PREFIX}/jobs/{{job_id:path}}", api.job, methods=["GET"]),
        Route(f"{API_PREFIX}/openapi.json", api.openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: http_error,
            StoreError: store_error,
            TranscribeError: library_error,
        },
    )
