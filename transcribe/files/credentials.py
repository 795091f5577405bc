"""S3 credentials: from the environment or an owner-only file, never the config.

Only two sources, read here and handed to boto3 explicitly, so that boto3's own
search (profiles in the home folder, container and instance metadata endpoints)
never runs: a worker uses the keys its operator gave it, or stops with one line
saying what to set.

* ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``);
* ``AWS_SHARED_CREDENTIALS_FILE``: an INI file in AWS's format, owner-only (a file
  group or others can read is refused), its ``[$AWS_PROFILE]`` or ``[default]`` section.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

KEY_ID_ENV = "AWS_ACCESS_KEY_ID"
SECRET_ENV = "AWS_SECRET_ACCESS_KEY"
TOKEN_ENV = "AWS_SESSION_TOKEN"
FILE_ENV = "AWS_SHARED_CREDENTIALS_FILE"
PROFILE_ENV = "AWS_PROFILE"
HOW = f"set {KEY_ID_ENV} and {SECRET_ENV}, or {FILE_ENV} naming an owner-only file"


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    source: str = "environment"


def s3_credentials(environ: Mapping[str, str] | None = None) -> S3Credentials:
    """The credentials the operator gave this process, or ConfigError saying how."""
    env = os.environ if environ is None else environ
    key_id, secret = env.get(KEY_ID_ENV, ""), env.get(SECRET_ENV, "")
    if key_id or secret:
        if not (key_id and secret):
            raise ConfigError(f"only one of {KEY_ID_ENV} and {SECRET_ENV} is set", hint=HOW)
        return S3Credentials(key_id, secret, env.get(TOKEN_ENV) or None)
    if env.get(FILE_ENV):
        return _from_file(Path(env[FILE_ENV]), env.get(PROFILE_ENV) or "default")
    raise ConfigError("no S3 credentials in the environment", hint=HOW)


def _read_owner_only(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(f"cannot open the S3 credentials file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"the S3 credentials file {path} is readable by group/others "
                f"({stat.filemode(mode)})",
                hint=f"chmod 600 {path}",
            )
        return handle.read().decode("utf-8", errors="replace")


def _from_file(path: Path, profile: str) -> S3Credentials:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(_read_owner_only(path), source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"the S3 credentials file {path} is not an INI file: {exc}") from None
    if not parser.has_section(profile):
        raise ConfigError(f"the S3 credentials file {path} has no [{profile}] section")
    section = parser[profile]
    key_id = section.get("aws_access_key_id", "").strip()
    secret = section.get("aws_secret_access_key", "").strip()
    if not key_id or not secret:
        raise ConfigError(
            f"[{profile}] of {path} needs aws_access_key_id and aws_secret_access_key"
        )
    token = section.get("aws_session_token", "").strip() or None
    return S3Credentials(key_id, secret, token, source=str(path))
