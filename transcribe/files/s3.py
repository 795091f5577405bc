"""Platform mode's file store: S3-compatible object storage through boto3.

Every machine reaches the same objects, so any worker can take any task. What it
sends is an age file, always: work files and audio are encrypted to the working key
in the task's scratch folder first, archive items go as the age files they already
are, and :meth:`S3FileStore._send`, the only place that uploads, refuses anything
else. A reader gets back exactly what was put: decrypted for the former (the object's
``sealing`` metadata says which), byte for byte for the latter.

Atomicity is S3's own: a PUT, or a multipart upload, makes an object visible only
once complete (s3transfer aborts a failed multipart upload; the parts of a killed
one stay invisible until :meth:`S3FileStore.abort_incomplete_uploads` or a bucket
lifecycle rule drops them). Downloads are decrypted into a temporary file beside the
destination and renamed only once age has authenticated every chunk.
"""

from __future__ import annotations

import functools
import io
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import pyrage
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

from ..config import FilesConfig
from ..errors import ConfigError, FileStoreError
from ..fsutil import atomic_output
from ..keys import Identity
from .contract import FileStore, check_key, check_plain_key, check_prefix, content_hash, missing
from .credentials import S3Credentials, s3_credentials
from .sealing import HEADER_LIMIT, WorkingKey, age_problem, decrypt_stream, encrypt_file

SEALING = "sealing"  # object metadata: "working" (ours to decrypt) or "as-is" (archive)
WORKING, AS_IS = "working", "as-is"
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class S3Options:
    """Where the objects go, and how hard to try; built from ``[files]``."""

    bucket: str
    prefix: str = ""  # "" or ending with "/"
    endpoint_url: str = ""
    region: str = ""
    multipart_threshold: int = 64 << 20
    multipart_chunksize: int = 16 << 20  # S3's minimum part is 5 MiB
    max_attempts: int = 3
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0

    @classmethod
    def from_config(cls, files: FilesConfig) -> S3Options:
        if not files.url.startswith("s3://"):
            raise ConfigError("[files] url must be s3://bucket/prefix for object storage")
        bucket, _, prefix = files.url.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        return cls(
            bucket=bucket,
            prefix=f"{prefix}/" if prefix else "",
            endpoint_url=files.endpoint_url,
            region=files.region,
        )


@functools.cache
def _session() -> boto3.session.Session:
    """One boto3 session per process, without credentials: it caches the service
    models that every client would otherwise load again (about 0.1 s each)."""
    return boto3.session.Session()


_CLIENT_LOCK = threading.Lock()  # boto3 sessions are not safe to share unguarded


def s3_client(options: S3Options, credentials: S3Credentials) -> Any:
    """A boto3 client with explicit credentials and region, so boto3 searches nothing
    (no profile folder, no instance metadata endpoint), and the endpoint of the config
    only (``AWS_ENDPOINT_URL`` is ignored)."""
    config = BotoConfig(
        signature_version="s3v4",
        s3={"addressing_style": "path" if options.endpoint_url else "auto"},
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        connect_timeout=options.connect_timeout_s,
        read_timeout=options.read_timeout_s,
        ignore_configured_endpoint_urls=True,
    )
    try:
        with _CLIENT_LOCK:
            return _session().client(
                "s3",
                region_name=options.region or "us-east-1",
                endpoint_url=options.endpoint_url or None,
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
                config=config,
            )
    except ProfileNotFound as exc:
        raise ConfigError(
            f"S3: {exc}", hint="unset AWS_PROFILE or name a profile that exists"
        ) from None
    except (BotoCoreError, ValueError) as exc:
        raise ConfigError(f"S3 client: {exc}") from None


class S3FileStore(FileStore):
    """Objects are ``s3://<bucket>/<prefix><key>``, each an age file."""

    def __init__(
        self,
        options: S3Options,
        working: WorkingKey,
        scratch_root: Path,
        credentials: S3Credentials | None = None,
    ) -> None:
        super().__init__(scratch_root)
        self.options = options
        self.working = working
        self.credentials = credentials or s3_credentials()
        self.recipient = working.recipient()
        if working.identity_path.exists():
            working.check_pair()
        self.client = s3_client(options, self.credentials)
        self._identities: list[Identity] | None = None
        self._transfer = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=options.multipart_chunksize,
            max_concurrency=4,
        )

    @property
    def where(self) -> str:
        return f"s3://{self.options.bucket}/{self.options.prefix}"

    def _name(self, key: str) -> str:
        return self.options.prefix + key

    def _identities_for_reading(self) -> list[Identity]:
        if self._identities is None:
            self._identities = self.working.identities()
        return self._identities

    # -- writing ---------------------------------------------------------------------

    def put_file(self, key: str, path: Path) -> None:
        self._put_encrypted(check_plain_key(key), path, None)

    def _put_checked(self, key: str, path: Path, sha256: str) -> None:
        self._put_encrypted(check_plain_key(key), path, sha256)

    def put_bytes(self, key: str, data: bytes) -> None:
        check_plain_key(key)
        self._send(key, pyrage.encrypt(data, [self.recipient]), WORKING)

    def put_sealed(self, key: str, path: Path) -> None:
        self._send(check_key(key), path, AS_IS)

    def _put_encrypted(self, key: str, path: Path, sha256: str | None) -> None:
        """Encrypt in a private scratch folder (plaintext never leaves), then send."""
        with self.scratch("put") as folder:
            sealed = folder / "object.age"
            digest = encrypt_file(path, sealed, self.recipient)
            if sha256 is not None and digest != sha256:
                raise FileStoreError(f"{path} changed while it was stored as {key!r}")
            self._send(key, sealed, WORKING)

    def _send(self, key: str, body: Path | bytes, sealing: str) -> None:
        """The only upload: refuses, before a byte goes out, anything not an age file."""
        if isinstance(body, bytes):
            problem = age_problem(body[:HEADER_LIMIT], len(body))
        else:
            with open(body, "rb") as handle:
                problem = age_problem(handle.read(HEADER_LIMIT), body.stat().st_size)
        if problem:
            raise FileStoreError(f"refused to store {key!r}: {problem}")
        extra = {"Metadata": {SEALING: sealing}, "ContentType": "application/octet-stream"}
        try:
            if isinstance(body, bytes):
                self.client.put_object(
                    Bucket=self.options.bucket, Key=self._name(key), Body=body, **extra
                )
            else:
                self.client.upload_file(
                    str(body), self.options.bucket, self._name(key), extra, Config=self._transfer
                )
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "store", key) from None
        except S3UploadFailedError as exc:  # boto3 wraps the client's error in its own
            cause = exc.__cause__ or exc.__context__
            reason = cause if isinstance(cause, BotoCoreError | ClientError) else exc
            raise self._failure(reason, "store", key) from None

    # -- reading ---------------------------------------------------------------------

    def _get(self, key: str) -> dict[str, Any]:
        try:
            return self.client.get_object(
                Bucket=self.options.bucket, Key=self._name(check_key(key))
            )
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise missing(key) from None
            raise self._failure(exc, "read", key) from None
        except BotoCoreError as exc:
            raise self._failure(exc, "read", key) from None

    def _read_into(self, key: str, response: dict[str, Any], sink: BinaryIO) -> None:
        """Stream a fetched object into ``sink``: decrypted, or as is for archive items."""
        body = response["Body"]
        try:
            if response.get("Metadata", {}).get(SEALING) == AS_IS:
                for chunk in iter(lambda: body.read(_CHUNK), b""):
                    sink.write(chunk)
                return
            digest = decrypt_stream(body, sink, self._identities_for_reading(), key)
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "read", key) from None
        finally:
            body.close()
        expected = content_hash(key)
        if expected is not None and digest != expected:
            raise FileStoreError(f"{key!r} is damaged: its content no longer matches its hash")

    def get_file(self, key: str, dest: Path) -> None:
        response = self._get(key)  # a missing object creates nothing at ``dest``
        with atomic_output(dest, mode=0o600) as staged:
            self._read_into(key, response, staged.file)

    def get_bytes(self, key: str) -> bytes:
        sink = io.BytesIO()
        self._read_into(key, self._get(key), sink)
        return sink.getvalue()

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.options.bucket, Key=self._name(check_key(key)))
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return False
            raise self._failure(exc, "look up", key) from None
        except BotoCoreError as exc:
            raise self._failure(exc, "look up", key) from None
        return True

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.options.bucket, Key=self._name(check_key(key)))
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "delete", key) from None

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        keys = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.options.bucket, Prefix=self._name(prefix)
            )
            for page in pages:
                keys += [item["Key"] for item in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "list", prefix or "everything") from None
        start = len(self.options.prefix)
        return sorted(name[start:] for name in keys)

    # -- upkeep ----------------------------------------------------------------------

    def abort_incomplete_uploads(self, older_than_s: float = 24 * 3600.0) -> int:
        """Drop the parts of multipart uploads a killed worker left (invisible, but
        billed and holding ciphertext); returns how many. A bucket lifecycle rule
        (AbortIncompleteMultipartUpload) does the same on servers that have one."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        aborted = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.options.bucket, Prefix=self.options.prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] <= cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.options.bucket,
                            Key=upload["Key"],
                            UploadId=upload["UploadId"],
                        )
                        aborted += 1
        except (BotoCoreError, ClientError) as exc:
            raise self._failure(exc, "clean up uploads under", self.options.prefix) from None
        return aborted

    def _failure(self, exc: Exception, action: str, key: str) -> FileStoreError:
        """boto3's errors in the operator's words, one line."""
        code = _code(exc) if isinstance(exc, ClientError) else ""
        if code == "NoSuchBucket":
            reason = f"bucket {self.options.bucket!r} does not exist"
        elif code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            reason = f"the server refused the credentials from {self.credentials.source} ({code})"
        elif isinstance(exc, ClientError):
            reason = f"{code}: {exc.response.get('Error', {}).get('Message', '')}".strip()
        else:
            reason = " ".join(str(exc).split())
        return FileStoreError(f"cannot {action} {key!r} in {self.where}: {reason}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
