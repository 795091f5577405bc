"""The letter stage: an approved job becomes a signed PDF/A on its client's letterhead.

Reads ``approved.json`` (the text and fields the secretary approved), fills the
client's template, converts and signs it (see :mod:`transcribe.documents`), and only
once the signed PDF is written and verified does the job move to ``rendered``. A
failure leaves the job ``failed`` with the reason, retryable, and no partial PDF.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import ClientConfig, Config
from ..documents import (
    Converter,
    DocumentMetadata,
    RenderOptions,
    SigningOptions,
    check_templates,
    render_pdf,
    template_fields,
    templates_json,
    verify_signed_pdf,
)
from ..errors import (
    ConfigError,
    ExternalToolError,
    RenderError,
    StateError,
    StoreError,
    WorkspaceError,
)
from ..store import Job, JobState, JobStore, check_attempt
from .transcription import job_dir

log = logging.getLogger(__name__)

APPROVED_NAME = "approved.json"
LETTER_NAME = "letter.pdf"
LANGUAGE_TAGS = {"fr": "fr-FR", "en": "en-GB"}
LETTERS_LOCK = ".letters.lock"
#: What fails a letter (retryable): the document, LibreOffice, the certificate or its
#: passphrase, or the disk (full, read-only) under the job's work folder.
RENDER_FAULTS = (RenderError, ExternalToolError, ConfigError, WorkspaceError)


def client_template(config: Config, client: ClientConfig) -> Path | None:
    """The client's letterhead, or None when the client has no template configured."""
    if not client.template:
        return None
    return config.paths.templates / client.id / client.template


def required_fields(config: Config, client: ClientConfig) -> tuple[str, ...]:
    """Fields the secretary must fill before approving (the body excluded)."""
    template = client_template(config, client)
    if template is None:
        return ()
    if not template.is_file():
        raise ConfigError(
            f"template {template} of client {client.id!r} is missing",
            hint="run `transcribe templates check`",
        )
    fields = template_fields(template)
    return tuple(f for f in fields.required if f != fields.body_field)


def signing_options(config: Config, *, prompt: Any = None) -> SigningOptions | None:
    """Signing settings from ``[signing]``; None only when signing is switched off."""
    signing = config.signing
    if not signing.enabled:
        return None
    home = config.paths.home
    pkcs12 = home / signing.pkcs12
    if not pkcs12.is_file():
        raise ConfigError(
            f"no signing certificate at {pkcs12}",
            hint="put the PKCS#12 there, or run `init --demo` for a TEST one",
        )
    passphrase_file = home / signing.passphrase_file if signing.passphrase_file else None
    env = signing.passphrase_env
    return SigningOptions(
        pkcs12=pkcs12,
        passphrase_env=env if env and os.environ.get(env) else None,
        passphrase_file=passphrase_file if passphrase_file and passphrase_file.exists() else None,
        passphrase_prompt=prompt,
        timestamp_url=signing.timestamp_url or None,
        visible_stamp=signing.visible_stamp,
        trust_roots=(home / signing.trust_root,) if signing.trust_root else (),
    )


def letter_path(config: Config, job: Job) -> Path:
    return job_dir(config, job) / LETTER_NAME


def load_approved(config: Config, job: Job) -> dict[str, Any]:
    path = job_dir(config, job) / APPROVED_NAME
    if not path.is_file():
        raise StateError(f"job {job.id} has no approved text ({APPROVED_NAME} is missing)")
    return json.loads(path.read_text(encoding="utf-8"))


def _metadata(config: Config, job: Job, client: ClientConfig) -> DocumentMetadata:
    title = job.document_type or (Path(client.template).stem.replace("-", " ") or "letter")
    return DocumentMetadata(
        title=title,
        author=job.author or client.name,
        language=LANGUAGE_TAGS.get(job.language or "", "fr-FR"),
        job_id=job.id,
    )


def render_job(
    config: Config,
    store: JobStore,
    job_id: str,
    *,
    converter: Converter | None = None,
    prompt: Any = None,
    attempt: int | None = None,
) -> Job:
    """approved -> rendered. Idempotent: a verified letter left by a crash is reused.

    ``attempt``: the fencing token of a queued run (platform mode); its commits hold
    only while the job is still at that attempt, and a run found stale before it
    starts renders nothing (:class:`~transcribe.errors.StaleAttempt`).
    """
    job = store.get(job_id)
    check_attempt(job, attempt)
    if job.state == JobState.RENDERED:
        return job
    if job.state != JobState.APPROVED:
        raise StateError(f"job {job_id} is {job.state}, not approved")
    out = letter_path(config, job)
    try:
        if not _already_rendered(out):
            _render(config, job, out, converter, prompt)
    except RENDER_FAULTS as exc:
        if isinstance(exc, WorkspaceError):  # the disk: say how to resume this job
            exc.hint = f"free space or fix access there, then `transcribe retry {job_id}`"
        log.warning("rendering job %s failed: %s", job_id, exc)
        return store.transition(
            job_id,
            JobState.FAILED,
            reason=f"rendering: {one_line(exc)}",
            expect_attempts=attempt,
        )
    return store.transition(
        job_id, JobState.RENDERED, expect=JobState.APPROVED, expect_attempts=attempt
    )


def one_line(exc: BaseException, limit: int = 400) -> str:
    """A job's reason is one line: tool output (LibreOffice's) may hold several."""
    return " ".join(str(exc).split())[:limit]


def finish_approved(
    config: Config,
    store: JobStore,
    job_id: str,
    *,
    converter: Converter | None = None,
    attempt: int | None = None,
) -> Job:
    """approved -> rendered -> archived: the letter stage, then the archive stage.

    One letter at a time per workspace: ``approve`` and a running watcher both pick a
    freshly approved job up, and two renders of one job would race in its work folder
    (one archiving and removing it under the other's LibreOffice). Whoever comes
    second re-reads the state under the lock and finds the letter done. ``attempt``
    fences a queued run's commits (see :func:`render_job`).
    """
    from ..archive import archive_or_fail

    with letters_lock(config):
        job = store.get(job_id)
        if job.state == JobState.ARCHIVED:
            return job
        job = render_job(config, store, job_id, converter=converter, attempt=attempt)
        if job.state == JobState.RENDERED:
            job = archive_or_fail(config, store, job_id, attempt=attempt)
    return job


@contextlib.contextmanager
def letters_lock(config: Config, *, timeout_s: float = 600.0) -> Iterator[None]:
    """``flock`` on ``work/.letters.lock``, waited for as long as one letter may take;
    it disappears with a killed process."""
    config.paths.work.mkdir(parents=True, exist_ok=True)
    fd = os.open(config.paths.work / LETTERS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(
                        "another process has been rendering a letter for too long",
                        hint="the watcher finishes approved letters; see `transcribe status`",
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def finish_all_approved(config: Config, store: JobStore) -> list[Job]:
    """What the watcher and the batch do with letters approved in the review loop."""
    approved = store.jobs(JobState.APPROVED)
    if not approved:
        return []
    with _converter_for(config, len(approved)) as converter:
        return [finish_approved(config, store, job.id, converter=converter) for job in approved]


@contextlib.contextmanager
def _converter_for(config: Config, count: int) -> Iterator[Converter | None]:
    """A warm LibreOffice for a batch; when it cannot start (LibreOffice missing or
    broken), one-shot conversions instead, so each job fails with its own reason
    rather than the whole batch being skipped turn after turn."""
    if count <= 2:
        yield None
        return
    from ..documents import warm_converter

    converter = warm_converter(RenderOptions(work_dir=config.paths.work))  # not /tmp
    try:
        converter.start()
    except ExternalToolError as exc:
        converter.close()
        log.warning("warm LibreOffice unavailable (%s); converting one by one", exc)
        yield None
        return
    except BaseException:  # Ctrl-C or SIGTERM while it boots: no server left running
        converter.close()
        raise
    try:
        yield converter
    finally:
        converter.close()


def _render(config: Config, job: Job, out: Path, converter: Converter | None, prompt: Any) -> None:
    client = config.client(job.client)
    if client is None:
        raise ConfigError(f"client {job.client!r} is no longer in the config")
    template = client_template(config, client)
    if template is None:
        raise ConfigError(f"client {client.id!r} has no template configured")
    approved = load_approved(config, job)
    render_pdf(
        template,
        approved["text"],
        approved.get("fields", {}),
        out,
        options=RenderOptions(work_dir=job_dir(config, job)),
        signing=signing_options(config, prompt=prompt),
        metadata=_metadata(config, job, client),
        converter=converter,
    )


def _already_rendered(out: Path) -> bool:
    """A complete, intact signed letter from an interrupted earlier run."""
    if not out.is_file():
        return False
    try:
        report = verify_signed_pdf(out)
    except (RenderError, ValueError):
        return False
    return report.intact and report.whole_document


def templates_report(config: Config, client: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """``templates check``: fields per template, plus every problem found, one line each."""
    report = check_templates(config.paths.templates, client)
    problems = [
        f"{name}/{template}: {problem}"
        for name, templates in report.items()
        for template, fields in templates.items()
        for problem in fields.problems
    ]
    for client_cfg in config.clients.values():
        if client not in (None, client_cfg.id):
            continue
        path = client_template(config, client_cfg)
        if path is not None and not path.is_file():
            problems.append(
                f"{client_cfg.id}: configured template {client_cfg.template} is missing"
            )
    return templates_json(report), problems
