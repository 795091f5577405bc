"""Workspace configuration: one TOML file, validated into frozen dataclasses.

Everything a run depends on is read once into :class:`Config` and passed explicitly;
there are no global settings. Validation happens here, before any model is loaded,
so a typo in the config fails in milliseconds with a message naming the key.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, WorkspaceError

CONFIG_NAME = "transcribe.toml"
LANGUAGES = ("fr", "en", "auto")
DOMAINS = ("medical", "legal", "general")
DEVICES = ("auto", "cpu", "cuda")
BIAS_MODES = ("initial_prompt", "hotwords", "none")
FIRST_PASS = ("vocabulary", "plain")
GUARDS = ("terms", "all", "off")
COMPUTE_TYPES = ("auto", "int8", "int8_float16", "float16", "float32")
CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ClientConfig:
    """One doctor's practice or law firm: its inbox folder is ``inbox/<id>/``."""

    id: str
    name: str
    language: str = "auto"
    domain: str = "general"
    template: str = ""
    vocabulary: tuple[str, ...] = ()
    author_vocabulary: dict[str, tuple[str, ...]] = field(default_factory=dict)
    author_language: dict[str, str] = field(default_factory=dict)  # "fr", "en" or "auto"
    dictation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TranscriptionConfig:
    """Whisper settings; ``auto`` picks CUDA float16 when present, else CPU int8."""

    model: str = "base"
    device: str = "auto"
    compute_type: str = "auto"
    beam_size: int = 5
    vad: bool = True
    cpu_threads: int = 0  # 0: one per available core
    bias: str = "initial_prompt"  # how vocabulary reaches Whisper (see bench/asr.py)
    # Decode again with the terms the first pass nearly heard leading the prompt
    # (transcribe/vocabulary/retrieve.py): better terms for about twice the time.
    second_pass: bool = True
    # Let lexicon correction ask Whisper, on the audio, whether it would rather have
    # heard a term that spelling alone cannot vouch for (vocabulary/acoustic.py).
    acoustic_check: bool = True
    # The first pass decodes without a prompt ("plain": as fast as plain Whisper, and
    # what biasing must beat) and the windows that nearly heard a term are decoded
    # again with the refocused prompt; or with the vocabulary prompt ("vocabulary":
    # twice the time, no better on bench/asr.py's sets, and the guard then runs too).
    first_pass: str = "plain"
    # Biasing may only win: prompted windows are decoded once more without a prompt
    # and give way when less likely ("terms": windows holding vocabulary terms Whisper
    # was unsure of; "all"; "off"). See asr/passes.py.
    guard: str = "terms"


@dataclass(frozen=True)
class Limits:
    """Caps checked before decoding, and the watcher's timing."""

    max_file_mb: float = 1024.0
    max_duration_min: float = 240.0
    stable_seconds: float = 2.0
    scan_interval_s: float = 30.0
    claim_timeout_s: float = 4 * 3600.0
    max_sidecar_kb: float = 64.0
    # The decoding child (transcribe/asr/decode.py): address space, CPU seconds, and the
    # wall-clock time the service waits for its output, per file.
    decode_memory_mb: float = 1024.0  # a 4-hour 44.1 kHz stereo mp3 peaks at ~180 MB
    decode_cpu_s: float = 600.0  # that mp3 takes ~18 s of CPU on a 2-core VM
    decode_timeout_s: float = 1800.0


@dataclass(frozen=True)
class SigningConfig:
    """Where the signing certificate and its passphrase come from (never the passphrase)."""

    pkcs12: str = "keys/signing.p12"
    passphrase_env: str = "TRANSCRIBE_SIGNING_PASSPHRASE"
    passphrase_file: str = "keys/signing.pass"
    trust_root: str = ""
    timestamp_url: str = ""
    visible_stamp: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class FilesConfig:
    """Where audio, work files and the archive live (``transcribe/files/``).

    ``url = ""`` keeps the embedded mode's local folders; ``s3://bucket/prefix`` puts
    them in S3-compatible object storage, ``endpoint_url`` naming a server other than
    AWS (SeaweedFS, Ceph, Garage...). Credentials come from the environment only.
    """

    url: str = ""
    endpoint_url: str = ""
    region: str = ""


@dataclass(frozen=True)
class Paths:
    """Workspace folders, absolute."""

    home: Path
    inbox: Path
    archive: Path
    work: Path
    quarantine: Path
    templates: Path
    keys: Path

    @property
    def database(self) -> Path:
        return self.home / "jobs.db"


@dataclass(frozen=True)
class StoreConfig:
    """Where the job store is: ``url`` empty (``jobs.db`` in the workspace, the
    default), ``sqlite:///FILE`` (relative to the workspace; ``sqlite:////abs/FILE``)
    or ``postgresql://user@host/db``. Never a password: libpq takes it from
    ``PGPASSWORD``, a ``PGPASSFILE`` or a ``PGSERVICE`` entry, all outside the config."""

    url: str = ""
    backend: str = "sqlite"  # sqlite | postgresql
    path: Path | None = None  # the SQLite file, when not the workspace's jobs.db


#: The work queues of platform mode (Procrastinate queues in the PostgreSQL store).
TRANSCRIBE_QUEUES = ("transcribe", "transcribe-gpu")
LETTERS_QUEUE = "letters"


@dataclass(frozen=True)
class QueueConfig:
    """Platform mode: ``enabled`` with a PostgreSQL store, ``watch`` only takes files in
    and each stage runs as a task of the Procrastinate queue, on whichever machine runs
    ``transcribe worker``. Off (the default), every stage runs where it always did.

    ``transcribe`` is the queue dictations go to (``transcribe-gpu`` where GPU workers
    take them). A worker tells the queue it is alive every ``heartbeat_s``; one silent
    for ``stalled_after_s`` is taken for dead and its tasks are run again elsewhere, as
    the check every ``check_stalled_s`` finds them. Keep ``stalled_after_s`` several
    heartbeats long: a live worker taken for dead costs a second run of its job.
    """

    enabled: bool = False
    transcribe: str = "transcribe"
    heartbeat_s: float = 10.0
    stalled_after_s: float = 60.0
    check_stalled_s: float = 60.0


@dataclass(frozen=True)
class ServerConfig:
    """``transcribe serve``: where it listens, its TLS files, and how logins behave.

    ``certificate`` (PEM, the chain a client checks) and ``private_key`` (owner-only)
    are relative to the workspace. A login lasts ``token_ttl_s`` after its last use,
    never more than ``token_max_s`` in all. Each failed login waits
    ``failed_login_delay_s`` times the failures so far (at most 5 s) before it is
    answered, and ``max_failed_logins`` in a row lock the account for ``lockout_s``.
    A JSON body larger than ``max_json_kb`` is refused unread.
    """

    host: str = "127.0.0.1"
    port: int = 8443
    certificate: str = "keys/server.pem"
    private_key: str = "keys/server.key"
    token_ttl_s: float = 900.0
    token_max_s: float = 12 * 3600.0
    max_failed_logins: int = 5
    lockout_s: float = 900.0
    failed_login_delay_s: float = 1.0
    max_json_kb: float = 16.0


@dataclass(frozen=True)
class Config:
    paths: Paths
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)
    limits: Limits = field(default_factory=Limits)
    signing: SigningConfig = field(default_factory=SigningConfig)
    clients: dict[str, ClientConfig] = field(default_factory=dict)
    files: FilesConfig = field(default_factory=FilesConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    server: ServerConfig = field(default_factory=ServerConfig)

    def client(self, client_id: str) -> ClientConfig | None:
        return self.clients.get(client_id)

    @property
    def platform(self) -> bool:
        """Stages run from the shared work queue (``transcribe worker``), not in
        ``watch``; only ever true on a PostgreSQL store (checked when loading)."""
        return self.queue.enabled and self.store.backend == "postgresql"


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _check_keys(section: str, values: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in [{section}]")


def _choice(section: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"[{section}] {key} = {value!r}: expected one of {', '.join(choices)}")
    return str(value)


def _number(section: str, key: str, value: Any, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"[{section}] {key} must be a number >= {minimum}, not {value!r}")
    return float(value)


def _paths(home: Path, raw: dict[str, Any]) -> Paths:
    names = ("inbox", "archive", "work", "quarantine", "templates", "keys")
    _check_keys("paths", raw, set(names))
    resolved = {}
    for name in names:
        value = raw.get(name, name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"[paths] {name} must be a folder name or path")
        resolved[name] = (home / value).resolve()
    return Paths(home=home, **resolved)


def _transcription(raw: dict[str, Any]) -> TranscriptionConfig:
    defaults = TranscriptionConfig()
    _check_keys("transcription", raw, set(defaults.__dataclass_fields__))
    model = raw.get("model", defaults.model)
    if not isinstance(model, str) or not model:
        raise ConfigError("[transcription] model must be a name or a folder")
    beam = raw.get("beam_size", defaults.beam_size)
    threads = raw.get("cpu_threads", defaults.cpu_threads)
    if not isinstance(beam, int) or not 1 <= beam <= 20:
        raise ConfigError(f"[transcription] beam_size must be 1..20, not {beam!r}")
    if not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"[transcription] cpu_threads must be >= 0, not {threads!r}")
    vad = raw.get("vad", defaults.vad)
    if not isinstance(vad, bool):
        raise ConfigError("[transcription] vad must be true or false")
    switches = {}
    for name in ("second_pass", "acoustic_check"):
        switches[name] = raw.get(name, getattr(defaults, name))
        if not isinstance(switches[name], bool):
            raise ConfigError(f"[transcription] {name} must be true or false")
    return TranscriptionConfig(
        model=model,
        device=_choice("transcription", "device", raw.get("device", "auto"), DEVICES),
        compute_type=_choice(
            "transcription", "compute_type", raw.get("compute_type", "auto"), COMPUTE_TYPES
        ),
        beam_size=beam,
        vad=vad,
        cpu_threads=threads,
        bias=_choice("transcription", "bias", raw.get("bias", defaults.bias), BIAS_MODES),
        first_pass=_choice(
            "transcription", "first_pass", raw.get("first_pass", defaults.first_pass), FIRST_PASS
        ),
        guard=_choice("transcription", "guard", raw.get("guard", defaults.guard), GUARDS),
        **switches,
    )


def _limits(raw: dict[str, Any]) -> Limits:
    defaults = Limits()
    _check_keys("limits", raw, set(defaults.__dataclass_fields__))
    values = {
        key: _number("limits", key, raw.get(key, getattr(defaults, key)))
        for key in defaults.__dataclass_fields__
    }
    return Limits(**values)


def _terms(section: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[{section}] vocabulary must be a list of strings")
    return tuple(value)


def _authors(section: str, raw: Any) -> dict[str, dict[str, Any]]:
    """``[clients.X.authors."Dr Hart"]``: each author's own terms and language."""
    if not isinstance(raw, dict):
        raise ConfigError(f"[{section}.authors] must be a table of authors")
    authors = {}
    for name, table in raw.items():
        where = f'{section}.authors."{name}"'
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table")
        _check_keys(where, table, {"vocabulary", "language"})
        authors[name] = {"vocabulary": _terms(where, table.get("vocabulary", []))}
        if "language" in table:
            authors[name]["language"] = _choice(where, "language", table["language"], LANGUAGES)
    return authors


def _dictation(section: str, raw: Any) -> dict[str, Any]:
    """Checked now by building the options, so a typo fails at start-up."""
    from .dictation import DictationOptions

    if not isinstance(raw, dict):
        raise ConfigError(f"[{section}.dictation] must be a table")
    try:
        DictationOptions(**raw)
    except TypeError as exc:
        raise ConfigError(f"[{section}.dictation]: {exc}") from None
    return dict(raw)


def _signing(raw: dict[str, Any]) -> SigningConfig:
    defaults = SigningConfig()
    _check_keys("signing", raw, set(defaults.__dataclass_fields__))
    values: dict[str, Any] = {}
    for key in defaults.__dataclass_fields__:
        value = raw.get(key, getattr(defaults, key))
        if not isinstance(value, type(getattr(defaults, key))):
            raise ConfigError(f"[signing] {key} has the wrong type: {value!r}")
        values[key] = value
    if "passphrase" in raw:
        raise ConfigError("[signing] passphrase must not be in the config file")
    return SigningConfig(**values)


S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9_-][A-Za-z0-9._-]*)*/?$")
SECRET_WORDS = re.compile(r"secret|password|passphrase|token|credential|access_key|key_id")


def _files(raw: dict[str, Any]) -> FilesConfig:
    """``[files]``; a secret here is refused by name: a config file is copied, backed up
    and shown on screens, so S3 keys come from the environment or an owner-only file."""
    for key in raw:
        if SECRET_WORDS.search(key.lower()):
            raise ConfigError(
                f"[files] {key}: credentials must not be in the config file",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_SHARED_CREDENTIALS_FILE naming an owner-only file",
            )
    _check_keys("files", raw, set(FilesConfig.__dataclass_fields__))
    values = {key: raw.get(key, "") for key in FilesConfig.__dataclass_fields__}
    for key, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(f"[files] {key} must be a string, not {value!r}")
    # The values are not echoed: a URL may be where someone pasted a secret.
    if values["url"] and not S3_URL.match(values["url"]):
        raise ConfigError(
            '[files] url: expected "" (local folders) '
            "or s3://bucket/prefix (lowercase bucket name, no credentials)"
        )
    endpoint = urlsplit(values["endpoint_url"])
    if values["endpoint_url"] and (
        endpoint.scheme not in ("http", "https") or not endpoint.hostname or "@" in endpoint.netloc
    ):
        raise ConfigError("[files] endpoint_url: expected http(s)://host[:port], no credentials")
    if not re.fullmatch(r"[a-z0-9-]*", values["region"]):
        raise ConfigError(f"[files] region = {values['region']!r} is not a region name")
    return FilesConfig(**values)


STORE_URLS = "sqlite:///FILE or postgresql://USER@HOST/DATABASE"


def _store(home: Path, raw: dict[str, Any]) -> StoreConfig:
    """``[store] url``; the URL is never echoed back, in case it holds a secret."""
    _check_keys("store", raw, {"url"})
    url = raw.get("url", "")
    if not isinstance(url, str):
        raise ConfigError(f"[store] url must be a string: {STORE_URLS}")
    url = url.strip()
    if not url:
        return StoreConfig()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        if not rest.startswith("/") or not rest.strip("/"):
            raise ConfigError(
                f"[store] url: a SQLite store is written {STORE_URLS.split(' or ')[0]}"
            )
        return StoreConfig(url=url, backend="sqlite", path=(home / rest[1:]).resolve())
    if sep and scheme in ("postgresql", "postgres"):
        if _has_password(url):
            raise ConfigError(
                "[store] url must not contain a password",
                hint="give it in PGPASSWORD, an owner-only PGPASSFILE (~/.pgpass) or a"
                " PGSERVICE entry, never in the config",
            )
        return StoreConfig(url=url, backend="postgresql")
    raise ConfigError(f"[store] url: expected {STORE_URLS}, or nothing for jobs.db")


def _has_password(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        in_netloc = parts.password is not None
    except ValueError:  # a malformed address: refuse it rather than guess
        return True
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    return in_netloc or any(key.lower() == "password" for key in query)


def _queue(raw: dict[str, Any], store: StoreConfig) -> QueueConfig:
    """``[queue]``: the work queue lives in the job store's database, so platform mode
    needs a PostgreSQL store; asked for on SQLite it is refused here, at start-up."""
    defaults = QueueConfig()
    _check_keys("queue", raw, set(defaults.__dataclass_fields__))
    enabled = raw.get("enabled", defaults.enabled)
    if not isinstance(enabled, bool):
        raise ConfigError("[queue] enabled must be true or false")
    if enabled and store.backend != "postgresql":
        raise ConfigError(
            "[queue] enabled needs a PostgreSQL job store: the work queue lives in its"
            " database (set [store] url, then run `transcribe db migrate`)"
        )
    timings = {
        key: _number("queue", key, raw.get(key, getattr(defaults, key)), minimum=0.1)
        for key in ("heartbeat_s", "stalled_after_s", "check_stalled_s")
    }
    if timings["stalled_after_s"] <= timings["heartbeat_s"]:
        raise ConfigError("[queue] stalled_after_s must be longer than heartbeat_s")
    return QueueConfig(
        enabled=enabled,
        transcribe=_choice(
            "queue", "transcribe", raw.get("transcribe", "transcribe"), TRANSCRIBE_QUEUES
        ),
        **timings,
    )


def _server(raw: dict[str, Any]) -> ServerConfig:
    """``[server]``; the private key's passphrase, if any, never goes here."""
    defaults = ServerConfig()
    _check_keys("server", raw, set(defaults.__dataclass_fields__))
    values: dict[str, Any] = {}
    for key in ("host", "certificate", "private_key"):
        values[key] = raw.get(key, getattr(defaults, key))
        if not isinstance(values[key], str) or not values[key]:
            raise ConfigError(f"[server] {key} must be a non-empty string")
    for key in ("port", "max_failed_logins"):
        value = raw.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ConfigError(f"[server] {key} must be a whole number 1..65535, not {value!r}")
        values[key] = value
    for key in ("token_ttl_s", "token_max_s", "lockout_s", "max_json_kb"):
        values[key] = _number("server", key, raw.get(key, getattr(defaults, key)), minimum=1.0)
    delay = raw.get("failed_login_delay_s", defaults.failed_login_delay_s)
    values["failed_login_delay_s"] = _number("server", "failed_login_delay_s", delay)
    if values["token_max_s"] < values["token_ttl_s"]:
        raise ConfigError("[server] token_max_s must be at least token_ttl_s")
    return ServerConfig(**values)


def _client(client_id: str, raw: Any) -> ClientConfig:
    section = f"clients.{client_id}"
    if not CLIENT_ID.match(client_id):
        raise ConfigError(f"client id {client_id!r} must be lowercase letters, digits, '-' or '_'")
    if not isinstance(raw, dict):
        raise ConfigError(f"[{section}] must be a table")
    allowed = {"name", "language", "domain", "template", "vocabulary", "authors", "dictation"}
    _check_keys(section, raw, allowed)
    authors = _authors(section, raw.get("authors", {}))
    return ClientConfig(
        id=client_id,
        name=str(raw.get("name", client_id)),
        language=_choice(section, "language", raw.get("language", "auto"), LANGUAGES),
        domain=_choice(section, "domain", raw.get("domain", "general"), DOMAINS),
        template=str(raw.get("template", "")),
        vocabulary=_terms(section, raw.get("vocabulary", [])),
        author_vocabulary={name: a["vocabulary"] for name, a in authors.items()},
        author_language={name: a["language"] for name, a in authors.items() if "language" in a},
        dictation=_dictation(section, raw.get("dictation", {})),
    )


def parse_config(home: Path, raw: dict[str, Any]) -> Config:
    """Validate a parsed TOML document; every error names the offending key."""
    _check_keys(
        "top level",
        raw,
        {
            "paths",
            "transcription",
            "limits",
            "signing",
            "clients",
            "retention",
            "files",
            "store",
            "queue",
            "server",
        },
    )
    clients = {cid: _client(cid, value) for cid, value in _table(raw, "clients").items()}
    store = _store(home, _table(raw, "store"))
    return Config(
        paths=_paths(home, _table(raw, "paths")),
        transcription=_transcription(_table(raw, "transcription")),
        limits=_limits(_table(raw, "limits")),
        signing=_signing(_table(raw, "signing")),
        clients=clients,
        files=_files(_table(raw, "files")),
        store=store,
        queue=_queue(_table(raw, "queue"), store),
        server=_server(_table(raw, "server")),
    )


def load_config(home: Path) -> Config:
    """Read ``<home>/transcribe.toml``; a missing file means an uninitialised workspace."""
    home = home.resolve()
    path = home / CONFIG_NAME
    if not path.is_file():
        raise WorkspaceError(
            f"{home} is not a workspace (no {CONFIG_NAME})",
            hint=f"run `transcribe --home {home} init`",
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(home, raw)
