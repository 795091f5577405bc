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
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import Config
from ..errors import JobNotFound, StoreError, TranscribeError
from ..status import status_row
from ..store import Job, JobStore, open_store
from . import review
from .accounts import Caller, LoginRefused, caller, login
from .openapi import API_PREFIX, LEASE_HEADER, REASON_HEADER, SESSION_HEADER, openapi_schema
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
JobAction = Callable[[JobStore, Caller, Job, dict[str, Any]], Response]
#: who may do what to a job they may see (see :mod:`.rights` for which jobs those are)
READERS = ("secretary", "author")
REVIEWERS = ("secretary",)
AUTHORS = ("author",)
#: an admin's reason to read a letter: a sentence, not a word, not an essay
MIN_REASON, MAX_REASON = 10, 500


class Refused(HTTPException):
    """A refusal with its one-line reason, and any headers it needs."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


async def refusal(_request: Request, exc: Exception) -> Response:
    """What the library refused, with the status it chose."""
    assert isinstance(exc, Refusal)
    return error_response(exc.status, exc.message)


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


def lease_of(request: Request) -> str:
    """The review lease a change is made under (``X-Review-Lease``), or 409."""
    token = request.headers.get(LEASE_HEADER, "").strip()
    if not token:
        raise Refused(409, f"no review lease: POST .../lease first and send it as {LEASE_HEADER}")
    return token


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

    async def review_queue(self, request: Request) -> Response:
        token = bearer(request)

        def work() -> Response:
            with self.store() as store:
                who = self.authenticated(store, token)
                if who.account.role not in REVIEWERS:
                    store.record(
                        "denied", None, f"a {who.account.role} account asked for the review queue"
                    )
                    raise Refused(403, "only a secretary account has a review queue")
                jobs = visible_jobs(store, who.account)
                return self.respond(who, review.review_queue(self.config, store, jobs))

        return await run_in_threadpool(work)

    def visible_job(
        self,
        store: JobStore,
        who: Caller,
        job_id: str,
        roles: tuple[str, ...] = READERS,
        reason: str | None = None,
    ) -> Job:
        """The job, if this account may touch it so: 403 for a role with no business
        there, 404 for a job it may not see (as for one that does not exist); both
        audited. An admin with a ``reason`` (where the endpoint takes one) reads any
        job, and the reason is audited first."""
        if reason is not None and who.account.role == "admin":
            return self._admin_access(store, who, job_id, reason)
        if who.account.role not in roles:
            store.record("denied", job_id, f"a {who.account.role} account asked for this")
            if not may_read_jobs(who.account):
                raise Refused(403, "an admin account manages accounts and reads no job")
            raise Refused(403, f"an {who.account.role} account cannot do this")
        try:
            job = store.get(job_id)
        except JobNotFound:
            job = None
        if job is None or not may_read(who.account, job):
            store.record("denied", job_id, "job not visible to this account")
            log.info("job %s refused to account %s", job_id, who.account.name)
            raise Refused(404, f"no job {job_id}")
        return job

    def _admin_access(self, store: JobStore, who: Caller, job_id: str, reason: str) -> Job:
        reason = " ".join(reason.split())
        if not MIN_REASON <= len(reason) <= MAX_REASON:
            raise Refused(400, f"a reason is {MIN_REASON} to {MAX_REASON} characters")
        try:
            job = store.get(job_id)
        except JobNotFound:
            raise Refused(404, f"no job {job_id}") from None
        store.record("admin-access", job.id, f"admin reason: {reason}")
        log.info("job %s read by admin %s with a reason (audited)", job.id, who.account.name)
        return job

    async def on_job(
        self,
        request: Request,
        action: JobAction,
        *,
        roles: tuple[str, ...] = READERS,
        body_kb: float | None = None,
        reason: str | None = None,
    ) -> Response:
        """The frame of every ``/jobs/{id}/...`` endpoint: the token, the id, the JSON
        body (when ``body_kb``), the account's right to the job; then ``action`` in a
        worker thread with the store open as the caller."""
        token = bearer(request)
        job_id = request.path_params["job_id"]
        if not JOB_ID.match(job_id):
            raise Refused(400, "not a job id")
        body = await read_json(request, int(body_kb * 1024)) if body_kb else {}

        def work() -> Response:
            with self.store() as store:
                who = self.authenticated(store, token)
                job = self.visible_job(store, who, job_id, roles, reason)
                return action(store, who, job, body)

        return await run_in_threadpool(work)

    async def job(self, request: Request) -> Response:
        def read(store: JobStore, who: Caller, job: Job, _body: dict[str, Any]) -> Response:
            store.record("view", job.id, "job status read over the API")
            return self.respond(who, status_row(job))

        return await self.on_job(request, read)

    # -- the review over the network (secretaries) ----------------------------------

    async def take_lease(self, request: Request) -> Response:
        def take(store: JobStore, who: Caller, job: Job, body: dict[str, Any]) -> Response:
            given = body.get("lease")
            if given is not None and not isinstance(given, str):
                raise Refused(400, "lease: the token of a lease to renew")
            lease = review.take_lease(self.config, store, who.account, job, given)
            return self.respond(who, lease.as_dict())

        return await self.on_job(request, take, roles=REVIEWERS, body_kb=self.policy.max_json_kb)

    async def drop_lease(self, request: Request) -> Response:
        def drop(store: JobStore, who: Caller, job: Job, _body: dict[str, Any]) -> Response:
            review.release_lease(store, who.account, job, lease_of(request))
            return self.respond(who, {"job_id": job.id, "released": True})

        return await self.on_job(request, drop, roles=REVIEWERS)

    async def draft(self, request: Request) -> Response:
        def read(store: JobStore, who: Caller, job: Job, _body: dict[str, Any]) -> Response:
            return self.respond(who, review.read_draft(self.config, store, job))

        return await self.on_job(request, read, roles=REVIEWERS)

    async def save_draft(self, request: Request) -> Response:
        def save(store: JobStore, who: Caller, job: Job, body: dict[str, Any]) -> Response:
            edits = review.parse_save(body)
            token = lease_of(request)
            answer = review.save_edits(self.config, store, who.account, job, token, edits)
            return self.respond(who, answer)

        return await self.on_job(request, save, roles=REVIEWERS, body_kb=review.MAX_SAVE_KB)

    async def audio(self, request: Request) -> Response:
        query = request.query_params
        try:
            start, end = float(query["start"]), float(query["end"])
            speed = float(query.get("speed", "1"))
        except (KeyError, ValueError):
            raise Refused(400, "an audio window needs start and end seconds") from None

        def listen(store: JobStore, who: Caller, job: Job, _body: dict[str, Any]) -> Response:
            data = review.audio_window(self.config, store, job, start, end, speed)
            headers = {SESSION_HEADER: f"{who.expires_at:.0f}", "Cache-Control": "no-store"}
            return Response(data, media_type="audio/wav", headers=headers)

        return await self.on_job(request, listen, roles=REVIEWERS)

    async def approve(self, request: Request) -> Response:
        def approve(store: JobStore, who: Caller, job: Job, body: dict[str, Any]) -> Response:
            base, accept = body.get("revision"), body.get("accept_unreliable", False)
            if (base is not None and not isinstance(base, int)) or not isinstance(accept, bool):
                raise Refused(400, "expected revision (integer) and accept_unreliable (boolean)")
            done = review.approve(
                self.config,
                store,
                who.account,
                job,
                lease_of(request),
                base=base,
                accept_unreliable=accept,
            )
            log.info("job %s approved by account %s", job.id, who.account.name)
            return self.respond(who, status_row(done))

        return await self.on_job(request, approve, roles=REVIEWERS, body_kb=self.policy.max_json_kb)

    async def send_back(self, request: Request) -> Response:
        def ask(store: JobStore, who: Caller, job: Job, body: dict[str, Any]) -> Response:
            question = body.get("question")
            if not isinstance(question, str):
                raise Refused(400, 'expected {"question": "..."}')
            token = lease_of(request)
            done = review.ask_author(self.config, store, who.account, job, token, question)
            return self.respond(who, status_row(done))

        return await self.on_job(request, ask, roles=REVIEWERS, body_kb=self.policy.max_json_kb)

    # -- what authors and secretaries both read ---------------------------------------

    async def question(self, request: Request) -> Response:
        def read(store: JobStore, who: Caller, job: Job, _body: dict[str, Any]) -> Response:
            return self.respond(who, review.read_question(self.config, store, job))

        return await self.on_job(request, read)

    async def answer(self, request: Request) -> Response:
        def answer(store: JobStore, who: Caller, job: Job, body: dict[str, Any]) -> Response:
            text = body.get("answer")
            if not isinstance(text, str):
                raise Refused(400, 'expected {"answer": "..."}')
            done = review.answer_question(self.config, who.account, job, text)
            return self.respond(who, status_row(done))

        return await self.on_job(request, answer, roles=AUTHORS, body_kb=self.policy.max_json_kb)

    async def letter(self, request: Request) -> Response:
        def download(store: JobStore, who: Caller, job: Job, _body: dict[str, Any]) -> Response:
            data = review.read_letter(self.config, store, job)
            log.info("letter of job %s downloaded by account %s", job.id, who.account.name)
            headers = {
                SESSION_HEADER: f"{who.expires_at:.0f}",
                "Cache-Control": "no-store",
                "Content-Disposition": f'attachment; filename="{job.id}.pdf"',
            }
            return Response(data, media_type="application/pdf", headers=headers)

        given = request.headers.get(REASON_HEADER)
        return await self.on_job(request, download, reason=unquote(given) if given else None)

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
    job = f"{API_PREFIX}/jobs/{{job_id}}"
    routes = [
        Route(f"{API_PREFIX}/login", api.login, methods=["POST"]),
        Route(f"{API_PREFIX}/jobs", api.jobs, methods=["GET"]),
        Route(f"{API_PREFIX}/review", api.review_queue, methods=["GET"]),
        Route(f"{API_PREFIX}/dictations", api.dictations, methods=["POST"]),
        Route(f"{job}/lease", api.take_lease, methods=["POST"]),
        Route(f"{job}/lease", api.drop_lease, methods=["DELETE"]),
        Route(f"{job}/draft", api.draft, methods=["GET"]),
        Route(f"{job}/draft", api.save_draft, methods=["PUT"]),
        Route(f"{job}/audio", api.audio, methods=["GET"]),
        Route(f"{job}/approve", api.approve, methods=["POST"]),
        Route(f"{job}/send-back", api.send_back, methods=["POST"]),
        Route(f"{job}/question", api.question, methods=["GET"]),
        Route(f"{job}/answer", api.answer, methods=["POST"]),
        Route(f"{job}/letter", api.letter, methods=["GET"]),
        # last: any other path under /jobs/ ("../x", "a b") reaches here, and is refused
        Route(f"{API_PREFIX}/jobs/{{job_id:path}}", api.job, methods=["GET"]),
        Route(f"{API_PREFIX}/openapi.json", api.openapi, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: http_error,
            Refusal: refusal,
            StoreError: store_error,
            TranscribeError: library_error,
        },
    )
