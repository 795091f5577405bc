"""Creating and opening a workspace (``--home``): folders, config, job store.

A workspace holds confidential audio and letters, so every folder is created
owner-only (0700) and every file the program writes is 0600.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from .asr.models import PROJECT_ROOT
from .config import CONFIG_NAME, Config, load_config
from .errors import WorkspaceError
from .fsutil import atomic_write_text
from .keys import ensure_archive_keys
from .store import open_store

SHIPPED_TEMPLATES = PROJECT_ROOT / "templates"

CONFIG_HEADER = """\
# Dictation pipeline workspace configuration.
# Paths are relative to this file's folder. Secrets (signing passphrases, keys)
# never go here: see the keys/ folder and the documentation.

[paths]
inbox = "inbox"            # doctors and lawyers drop audio into inbox/<client>/
archive = "archive"        # encrypted, signed letters
work = "work"              # per-job working files (owner-only)
quarantine = "quarantine"  # rejected input, with the reason in the job store
templates = "templates"    # templates/<client>/*.docx
keys = "keys"

[transcription]
model = "base"             # "base" (embedded), a local model folder, or a hub name
device = "auto"            # auto | cpu | cuda
compute_type = "auto"      # auto: float16 on GPU, int8 on CPU
beam_size = 5
vad = true
cpu_threads = 0            # 0: one thread per available core
bias = "initial_prompt"    # initial_prompt | hotwords | none: how vocabulary reaches Whisper
second_pass = true         # decode again, prompted with the terms the first pass nearly heard
acoustic_check = true      # correct a doubtful word to a lexicon term Whisper prefers on the audio

[limits]
max_file_mb = 1024
max_duration_min = 240
stable_seconds = 2.0       # a dropped file is taken once unchanged this long
scan_interval_s = 30       # full inbox rescan, in case a file event was missed
claim_timeout_s = 14400
max_sidecar_kb = 64
decode_memory_mb = 1024    # audio is decoded in a child process with these caps:
decode_cpu_s = 600         # memory (address space), CPU seconds, and the time the
decode_timeout_s = 1800    # service waits for it; a file that breaks one is quarantined

[signing]
# PKCS#12 certificate that signs every letter (PAdES). Its passphrase comes from
# the environment variable, else the file (must be readable by its owner only),
# else a prompt. `init --demo` makes a TEST certificate: never use it for real.
pkcs12 = "keys/signing.p12"
passphrase_env = "TRANSCRIBE_SIGNING_PASSPHRASE"
passphrase_file = "keys/signing.pass"
trust_root = ""            # extra root certificate (PEM) to trust when verifying
timestamp_url = ""         # a time-stamping authority makes signatures PAdES B-T
visible_stamp = false

[store]
# Where jobs, their audit trail and the archive index are kept. Empty: jobs.db in this
# folder (SQLite). Several machines: "postgresql://USER@HOST/DATABASE", then run
# `transcribe db migrate`. Never a password here: libpq reads PGPASSWORD, PGPASSFILE
# (~/.pgpass, owner-only) or PGSERVICE.
url = ""

[queue]
# Platform mode (needs the PostgreSQL store above): `watch` only takes files in, and
# `transcribe worker` processes on any machine run transcription and letters from the
# queue in that database. Off: this machine's watch and batch do everything.
enabled = false
transcribe = "transcribe"  # where dictations are queued: transcribe (CPU) | transcribe-gpu
heartbeat_s = 10           # a worker says it is alive this often
stalled_after_s = 60       # silent this long, it is taken for dead: its job runs elsewhere
check_stalled_s = 60       # how often workers look for the jobs of dead ones

[server]
# `transcribe serve`: the HTTPS API that secretaries and authors reach over the network
# (accounts: `transcribe users add`). `init --demo` makes a TEST certificate for these
# two files, and keys/demo-ca.pem for clients to trust: never use it for real.
host = "127.0.0.1"
port = 8443
certificate = "keys/server.pem"   # PEM: the server's certificate, then its chain
private_key = "keys/server.key"   # PEM, owner-only, not encrypted
token_ttl_s = 900          # a login lasts this long after its last use...
token_max_s = 43200        # ...and never longer than this in all
max_failed_logins = 5      # failed logins in a row that lock an account...
lockout_s = 900            # ...for this long (`users reset-password` unlocks it)
failed_login_delay_s = 1.0 # each failed login is answered this much later per failure
max_json_kb = 16           # a larger request body is refused unread
"""

DEMO_CLIENTS = """
[clients.cabinet-martin]
name = "Cabinet de cardiologie du Dr Martin (DÉMO)"
language = "fr"
domain = "medical"
template = "compte-rendu.docx"
vocabulary = ["Kardégic", "bisoprolol", "apixaban", "échocardiographie"]

[clients.maitre-dubois]
name = "Maître Dubois, avocat (DÉMO)"
language = "fr"
domain = "legal"
template = "lettre.docx"
vocabulary = ["assignation", "référé", "conclusions"]

[clients.riverside-clinic]
name = "Riverside Clinic (DEMO)"
language = "en"
domain = "medical"
template = "clinic-letter.docx"
vocabulary = ["bisoprolol", "apixaban", "echocardiography"]
"""

EXAMPLE_CLIENT = """
# Add one table per client; its inbox folder is inbox/<id>/.
# [clients.dr-example]
# name = "Dr Example"
# language = "fr"          # fr | en | auto
# domain = "medical"       # medical | legal | general
# template = "letter.docx"
# vocabulary = ["term", "Colleague Name"]
"""


@dataclass(frozen=True)
class InitResult:
    home: Path
    created_config: bool
    clients: tuple[str, ...]


def _make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def init_workspace(home: Path, *, demo: bool = False) -> InitResult:
    """Create folders, config and job store; harmless to run again on a workspace."""
    home = home.resolve()
    _make_private_dir(home)
    config_path = home / CONFIG_NAME
    created = not config_path.exists()
    if created:
        atomic_write_text(config_path, CONFIG_HEADER + (DEMO_CLIENTS if demo else EXAMPLE_CLIENT))
    elif demo and "[clients.cabinet-martin]" not in config_path.read_text(encoding="utf-8"):
        atomic_write_text(config_path, config_path.read_text(encoding="utf-8") + DEMO_CLIENTS)
    config = load_config(home)
    ensure_folders(config)
    ensure_archive_keys(config.paths.keys)  # archive identity + blind-index secret
    if demo:
        _copy_demo_templates(config)
        _make_demo_certificate(config)
        _make_demo_tls(config)
    if config.store.backend == "sqlite":
        open_store(config).close()  # a server's schema is made by `transcribe db migrate`
    return InitResult(home=home, created_config=created, clients=tuple(config.clients))


def ensure_folders(config: Config) -> None:
    """Every folder the pipeline writes to, owner-only, plus one inbox per client."""
    paths = config.paths
    for folder in (
        paths.inbox,
        paths.archive,
        paths.work,
        paths.work / "jobs",
        paths.quarantine,
        paths.templates,
        paths.keys,
    ):
        _make_private_dir(folder)
    for client_id in config.clients:
        _make_private_dir(paths.inbox / client_id)
        _make_private_dir(paths.templates / client_id)


def _copy_demo_templates(config: Config) -> None:
    for client_id in config.clients:
        shipped = SHIPPED_TEMPLATES / client_id
        if not shipped.is_dir():
            continue
        for template in shipped.glob("*.docx"):
            target = config.paths.templates / client_id / template.name
            if not target.exists():
                shutil.copy2(template, target)
                os.chmod(target, 0o600)


def _make_demo_certificate(config: Config) -> None:
    """A TEST signing certificate, its passphrase in an owner-only file (demo only)."""
    from .documents import make_test_certificate

    pkcs12 = config.paths.home / config.signing.pkcs12
    if pkcs12.exists():
        return
    passphrase = secrets.token_urlsafe(24)
    atomic_write_text(config.paths.home / config.signing.passphrase_file, passphrase + "\n")
    make_test_certificate(
        pkcs12,
        passphrase=passphrase,
        holder="Secrétariat de démonstration",
        organisation="Transcribe demo",
    )


def _make_demo_tls(config: Config) -> None:
    """A TEST certificate for `transcribe serve`, and keys/demo-ca.pem for its clients."""
    from .service.tls import make_demo_tls

    make_demo_tls(config)


def open_workspace(home: Path) -> Config:
    """Load the config of an initialised workspace and check its folders exist."""
    config = load_config(home)
    if not config.paths.inbox.is_dir():
        raise WorkspaceError(
            f"workspace {config.paths.home} has no inbox folder",
            hint=f"run `transcribe --home {config.paths.home} init`",
        )
    return config
