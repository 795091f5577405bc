"""The API's OpenAPI 3.1 description, written by hand next to the endpoints.

Served at ``/api/v1/openapi.json`` and kept in ``docs/openapi.json``; a test checks
that the two agree and that every route is described, so the file in ``docs/`` is
what the server does. Regenerate it with ``python -m transcribe.service.openapi``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..status import STATUS_FIELDS

API_PREFIX = "/api/v1"
#: on every authenticated answer: until when (epoch seconds) the login now holds
SESSION_HEADER = "X-Session-Expires"
#: an upload's sidecar fields travel in headers, so that its body is the audio alone
NAME_HEADER = "X-Dictation-Name"
CLIENT_HEADER = "X-Dictation-Client"
SIDECAR_HEADER = "X-Dictation-Sidecar"
#: a review change (save, approve, send back) is made under this lease token
LEASE_HEADER = "X-Review-Lease"
#: why an admin reads a letter (percent-encoded UTF-8; a header, so never in a log line)
REASON_HEADER = "X-Access-Reason"
DOCS_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, ref: str, *, array: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{ref}"}
    if array:
        schema = {"type": "array", "items": schema}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


UNAUTHORIZED = _error("No login token, or an expired or unknown one: log in again")
ADMIN = _error("An admin account manages accounts and reads no job")

JOB_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string"},
    "client": {"type": "string"},
    "state": {"type": "string"},
    "source": {"type": "string", "description": "the dropped file's name"},
    "reason": {"type": ["string", "null"]},
    "priority": {"type": "string", "enum": ["urgent", "normal"]},
    "language": {"type": ["string", "null"]},
    "duration_s": {"type": ["number", "null"]},
    "duplicate_of": {"type": ["string", "null"]},
    "attempts": {"type": "integer"},
    "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"},
    "warnings": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "text": {"type": "string"}},
        },
    },
}
assert tuple(JOB_PROPERTIES) == STATUS_FIELDS  # the shape of `transcribe status --json`


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "schema": {"type": "string"}, "description": description}


def _upload(security: list[dict[str, list[str]]]) -> dict[str, Any]:
    """``POST /dictations``: the body is the audio; what a sidecar says is in headers."""
    return {
        "summary": "Send a dictation: taken in as a file dropped in inbox/<client>/ (audited)",
        "security": security,
        "parameters": [
            _header(NAME_HEADER, "the file's name, percent-encoded UTF-8; no path"),
            _header(CLIENT_HEADER, "the client; optional for an account with one client"),
            _header(SIDECAR_HEADER, "the sidecar's JSON object (author, patient, priority...)"),
        ],
        "requestBody": {
            "required": True,
            "content": {
                "audio/*": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "201": _json("A new job: accepted, or quarantined with its reason", "Upload"),
            "200": _json("The same audio again: the job made the first time", "Upload"),
            "400": _error("Not audio, a name that is a path, or no client named"),
            "401": UNAUTHORIZED,
            "403": _error("An admin, or an author sending someone else's dictation"),
            "404": _error("No such client for this account (audited)"),
            "413": _error("Over the intake's size cap; the body is not kept"),
            "503": _error("The server cannot take it in now: send it again"),
        },
    }


SECURITY = [{"bearer": []}]
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
LEASE = _header(LEASE_HEADER, "the token of this reviewer's live lease on the job")
NOT_VISIBLE = _error("No such job, or not one this account may see (audited)")
LEASE_LOST = _error(
    "Another reviewer holds the job, the lease was lost, or the draft changed since the "
    "revision named"
)


def _json_body(ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _on_job(
    summary: str,
    ok: dict[str, Any],
    *,
    who: str = "A secretary of the job's client",
    lease: bool = False,
    body: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``/jobs/{job_id}/...`` operation: the refusals every one of them shares."""
    operation: dict[str, Any] = {
        "summary": summary,
        "description": f"{who}.",
        "security": SECURITY,
        "parameters": [JOB_ID, *([LEASE] if lease else [])],
        "responses": {
            "200": ok,
            "400": _error("Not a job id, or a malformed body"),
            "401": UNAUTHORIZED,
            "403": _error("A role with no business here (audited)"),
            "404": NOT_VISIBLE,
            **({"409": LEASE_LOST} if lease else {}),
            **(extra or {}),
        },
    }
    if body:
        operation["requestBody"] = _json_body(body)
    return operation


def _review_paths() -> dict[str, Any]:
    """The review loop over the network, and what authors read and answer."""
    job = f"{API_PREFIX}/jobs/{{job_id}}"
    conflict = {"409": _error("The job is not in review, or another reviewer holds it")}
    return {
        f"{job}/lease": {
            "post": _on_job(
                "Take a review lease, or renew one (body: its token)",
                _json("The lease: its token, expiry and the draft's revision", "Lease"),
                body="LeaseRequest",
                extra=conflict,
            ),
            "delete": _on_job("Give the lease back", {"description": "Released"}, lease=True),
        },
        f"{job}/draft": {
            "get": _on_job(
                "The draft: text, Whisper's words, fields, unreliable passages (audited)",
                _json("The draft", "Draft"),
                extra=conflict,
            ),
            "put": _on_job(
                "Save edits made on a revision of the draft (renews the lease)",
                _json("The new revision", "Saved"),
                lease=True,
                body="Save",
            ),
        },
        f"{job}/audio": {
            "get": {
                **_on_job(
                    "A window of the dictation's audio as WAV (audited)",
                    {"description": "audio/wav", "content": {"audio/wav": {}}},
                    extra={"422": _error("The audio cannot be decoded")},
                ),
                "parameters": [
                    JOB_ID,
                    *(
                        {
                            "name": n,
                            "in": "query",
                            "required": n != "speed",
                            "schema": {"type": "number"},
                        }
                        for n in ("start", "end", "speed")
                    ),
                ],
            }
        },
        f"{job}/approve": {
            "post": _on_job(
                "Approve the draft as saved: the letter is rendered, signed, archived next",
                _json("The job, approved", "Job"),
                lease=True,
                body="Approve",
                extra={"422": _error("Required fields missing, or the text is empty")},
            )
        },
        f"{job}/send-back": {
            "post": _on_job(
                "Send the job back to its author with a question",
                _json("The job, waiting for the author", "Job"),
                lease=True,
                body="Question",
            )
        },
        f"{job}/question": {
            "get": _on_job(
                "The question asked of the author, and the answer once given (audited)",
                _json("The question", "QuestionRecord"),
                who="A secretary of the job's client, or the job's author",
            )
        },
        f"{job}/answer": {
            "post": _on_job(
                "The author's answer: the job goes back to review",
                _json("The job, back in review", "Job"),
                who="The job's author",
                body="Answer",
                extra={"409": _error("The job is not waiting for an answer")},
            )
        },
        f"{job}/letter": {
            "get": _with_parameter(
                _header(REASON_HEADER, "an admin's reason to read it"),
                _on_job(
                    "The signed PDF letter, decrypted from the archive (audited)",
                    {"description": "application/pdf", "content": {"application/pdf": {}}},
                    who="A secretary of the job's client, or the job's author; an admin only "
                    f"with a reason in {REASON_HEADER} (audited as admin-access)",
                    extra={"409": _error("The letter is not archived yet")},
                ),
            )
        },
    }


def _with_parameter(parameter: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    return {**operation, "parameters": [*operation["parameters"], parameter]}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
REVIEW_SCHEMAS: dict[str, Any] = {
    "LeaseRequest": _object(lease=STRING),
    "Lease": _object(job_id=STRING, lease=STRING, expires_at={"type": "number"}, revision=INTEGER),
    "Draft": _object(
        job_id=STRING,
        revision=INTEGER,
        language={"type": ["string", "null"]},
        text=STRING,
        words={"type": "array", "items": {"type": "object"}},
        fields={"type": "object", "additionalProperties": STRING},
        cursor=INTEGER,
        unreliable={"type": "array", "items": {"type": "object"}},
        warnings={"type": "array", "items": {"type": "object"}},
        template={"type": ["object", "null"]},
    ),
    "Save": {
        **_object(
            revision=INTEGER,
            edits={
                "type": "array",
                "items": _object(
                    start=INTEGER,
                    end=INTEGER,
                    replacement=STRING,
                    kind={"enum": ["word", "sentence", "text"]},
                ),
            },
            fields={"type": "object", "additionalProperties": STRING},
            cursor=INTEGER,
            looked_at={"type": "array", "items": INTEGER},
            text_sha256=STRING,
        ),
        "required": ["revision"],
    },
    "Saved": _object(job_id=STRING, revision=INTEGER),
    "Approve": _object(revision=INTEGER, accept_unreliable={"type": "boolean"}),
    "Question": {**_object(question=STRING), "required": ["question"]},
    "Answer": {**_object(answer=STRING), "required": ["answer"]},
    "QuestionRecord": _object(
        job_id=STRING,
        state=STRING,
        question=STRING,
        asked_at=STRING,
        answer={"type": ["string", "null"]},
        answered_at={"type": ["string", "null"]},
    ),
}


def openapi_schema() -> dict[str, Any]:
    security = [{"bearer": []}]
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "transcribe service",
            "version": __version__,
            "description": 'Dictation jobs over HTTPS. Errors are {"error": "one line"}.',
        },
        "paths": {
            f"{API_PREFIX}/login": {
                "post": {
                    "summary": "Log in: a bearer token, renewed while it is used",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Login"}}
                        },
                    },
                    "responses": {
                        "200": _json("Logged in", "Token"),
                        "400": _error("Not a JSON object with name and password, or too large"),
                        "401": _error("Wrong account name or password"),
                        "403": _error("The account is disabled"),
                        "429": _error("Too many failed logins: the account is locked for a while"),
                    },
                }
            },
            f"{API_PREFIX}/jobs": {
                "get": {
                    "summary": "The jobs this account may see (audited)",
                    "security": security,
                    "responses": {
                        "200": _json("Jobs, urgent first, then oldest", "Job", array=True),
                        "401": UNAUTHORIZED,
                        "403": ADMIN,
                    },
                }
            },
            f"{API_PREFIX}/review": {
                "get": {
                    "summary": "The review queue: this secretary's jobs in review (audited)",
                    "security": security,
                    "responses": {
                        "200": _json(
                            "Jobs in review, urgent first, then oldest", "QueueEntry", array=True
                        ),
                        "401": UNAUTHORIZED,
                        "403": _error("Not a secretary account"),
                    },
                }
            },
            f"{API_PREFIX}/jobs/{{job_id}}": {
                "get": {
                    "summary": "One job (audited)",
                    "security": security,
                    "parameters": [job_id],
                    "responses": {
                        "200": _json("The job", "Job"),
                        "400": _error("Not a job id"),
                        "401": UNAUTHORIZED,
                        "403": ADMIN,
                        "404": _error("No such job, or not one this account may see (audited)"),
                    },
                }
            },
            **_review_paths(),
            f"{API_PREFIX}/dictations": {"post": _upload(security)},
            f"{API_PREFIX}/openapi.json": {
                "get": {
                    "summary": "This description",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "Login": {
                    "type": "object",
                    "required": ["name", "password"],
                    "properties": {"name": {"type": "string"}, "password": {"type": "string"}},
                },
                "Token": {
                    "type": "object",
                    "properties": {
                        "token": {"type": "string"},
                        "token_type": {"const": "bearer"},
                        "expires_at": {"type": "number", "description": "epoch seconds"},
                        "account": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "role": {"enum": ["secretary", "author", "admin"]},
                                "clients": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
                "Job": {"type": "object", "properties": JOB_PROPERTIES},
                "QueueEntry": {
                    "type": "object",
                    "properties": {
                        **JOB_PROPERTIES,
                        "author": {"type": ["string", "null"]},
                        "document_type": {"type": ["string", "null"]},
                        "doubtful": {"type": "integer", "description": "doubtful places"},
                        "locked_by": {
                            "type": ["string", "null"],
                            "description": "who reviews it now (a live lock or lease)",
                        },
                    },
                },
                **REVIEW_SCHEMAS,
                "Upload": {
                    "type": "object",
                    "properties": {
                        **JOB_PROPERTIES,
                        "outcome": {
                            "enum": ["accepted", "quarantined", "duplicate", "already-received"]
                        },
                    },
                },
            },
        },
    }


def openapi_text() -> str:
    return json.dumps(openapi_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS_FILE
    target.write_text(openapi_text(), encoding="utf-8")
    print(f"wrote {target}")
