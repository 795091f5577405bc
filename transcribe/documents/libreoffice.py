"""The LibreOffice edge: DOCX in, PDF/A out, bounded in time, checked afterwards.

Two converters with one interface:

* :class:`OneShotConverter` runs ``soffice --headless --convert-to pdf`` with its
  own throw-away profile (``-env:UserInstallation``) so it never collides with a
  desktop LibreOffice or another conversion. Simple, and what a single approval
  needs; it pays LibreOffice's start-up on every document.
* :class:`WarmConverter` keeps one LibreOffice running behind unoserver for a batch
  of documents. unoserver needs LibreOffice's Python-UNO bridge (Debian
  ``python3-uno``), which lives in the *system* Python, not in a virtualenv: the
  server is therefore started with a Python that can ``import uno`` (by default
  ``/usr/bin/python3``) and finds unoserver itself on a path appended after the
  system's own, while this process only speaks XML-RPC to it.

Both kill the whole process group on time-out, log the command, and check that a
real PDF came out, because LibreOffice happily exits 0 without writing anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from pathlib import Path
from types import TracebackType
from typing import Protocol

from transcribe.errors import ExternalToolError, RenderError
from transcribe.fsutil import temp_prefix

log = logging.getLogger(__name__)

INSTALL_HINT = "install LibreOffice: apt-get install libreoffice-writer-nogui"
UNO_HINT = "install the Python-UNO bridge: apt-get install python3-uno"
PDFA2B_OPTIONS = {"SelectPdfVersion": 2, "UseTaggedPDF": True}
_SERVER_BOOT = (
    "import sys; sys.path.append(sys.argv.pop(1)); sys.argv[0] = 'unoserver'; "
    "from unoserver.server import main; sys.exit(main())"
)


class Converter(Protocol):
    """Anything that turns one DOCX into one PDF (PDF/A-2b when ``pdfa``)."""

    name: str

    def convert(self, docx: Path, pdf: Path, *, pdfa: bool = True) -> None: ...


def find_soffice(explicit: str | None = None) -> str:
    """The LibreOffice binary, or a clear error saying how to install it. An
    explicitly configured binary that is missing is an error, not a fallback."""
    for candidate in (explicit,) if explicit else ("soffice", "libreoffice"):
        if found := shutil.which(candidate):
            return found
    raise ExternalToolError(f"LibreOffice ({explicit or 'soffice'}) not found", hint=INSTALL_HINT)


def check_pdf(pdf: Path, tool: str) -> None:
    """LibreOffice can exit 0 and write nothing, or half a file: look at it."""
    try:
        with pdf.open("rb") as handle:
            head = handle.read(5)
            handle.seek(max(pdf.stat().st_size - 1024, 0))
            tail = handle.read()
    except OSError as exc:
        raise RenderError(f"{tool} produced no PDF ({pdf.name} missing)") from exc
    if head != b"%PDF-" or b"%%EOF" not in tail:
        raise RenderError(f"{tool} produced a damaged PDF ({pdf.name})")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """soffice is a wrapper script that forks soffice.bin: kill them all."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


class OneShotConverter:
    """A fresh LibreOffice (and a fresh profile) per document."""

    name = "one-shot"

    def __init__(self, *, soffice: str | None = None, timeout_s: float = 120.0) -> None:
        self.soffice = soffice
        self.timeout_s = timeout_s

    def command(self, docx: Path, outdir: Path, profile: Path, pdfa: bool) -> list[str]:
        export = "pdf:writer_pdf_Export"
        if pdfa:
            data = ",".join(
                f'"{key}":{{"type":"{"boolean" if isinstance(v, bool) else "long"}",'
                f'"value":"{str(v).lower()}"}}'
                for key, v in PDFA2B_OPTIONS.items()
            )
            export += ":{" + data + "}"
        return [
            find_soffice(self.soffice),
            "--headless",
            "--norestore",
            "--nologo",
            "--nodefault",
            "--nolockcheck",
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            export,
            "--outdir",
            str(outdir),
            str(docx),
        ]

    def convert(self, docx: Path, pdf: Path, *, pdfa: bool = True) -> None:
        # Beside the document (the job's private scratch), named after this process,
        # with LibreOffice's own temporary files inside: a crash leaves nothing in
        # /tmp, and recovery sweeps the folder once this process is gone.
        with tempfile.TemporaryDirectory(prefix=temp_prefix() + "lo-", dir=docx.parent) as tmp:
            scratch = Path(tmp)
            outdir, profile = scratch / "out", scratch / "profile"
            command = self.command(docx, outdir, profile, pdfa)
            log.info("converting a document with %s", " ".join(command[:2]))  # not its name
            self._run(command, scratch)
            produced = outdir / f"{docx.stem}.pdf"
            check_pdf(produced, "LibreOffice")
            shutil.move(produced, pdf)

    def _run(self, command: list[str], scratch: Path) -> None:
        home = os.environ.get("HOME", tempfile.gettempdir())
        try:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "HOME": home, "TMPDIR": str(scratch)},
            )
        except OSError as exc:  # found on PATH but not runnable (broken install)
            raise ExternalToolError(
                f"cannot start LibreOffice ({command[0]}): {exc.strerror or exc}",
                hint=INSTALL_HINT,
            ) from None
        try:
            output, _ = process.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise ExternalToolError(
                f"LibreOffice did not finish within {self.timeout_s:.0f} s and was stopped",
                hint="check that the template opens in LibreOffice, then retry the job",
            ) from None
        except BaseException:  # Ctrl-C or SIGTERM mid-conversion: leave no soffice behind
            _kill_group(process)
            raise
        text = output.decode("utf-8", "replace").strip()
        log.debug("soffice output: %s", text)
        if process.returncode != 0:
            raise ExternalToolError(
                f"LibreOffice failed (exit {process.returncode}): {text[-300:]}"
            )


class _TimeoutTransport(xmlrpc.client.Transport):
    """xmlrpc's default transport waits forever on a hung server."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def make_connection(self, host):  # type: ignore[no-untyped-def]
        connection = super().make_connection(host)
        connection.timeout = self.timeout_s
        return connection


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_uno_python(explicit: str | None = None) -> str:
    """A Python that can ``import uno``: the venv's own if it was made with
    ``--system-site-packages``, else the system Python that python3-uno serves."""
    candidates = (
        [explicit]
        if explicit
        else [
            sys.executable,
            "/usr/bin/python3",
            "/usr/lib/libreoffice/program/python",
        ]
    )
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            probe = subprocess.run(
                [candidate, "-c", "import uno"], capture_output=True, timeout=30, check=False
            )
            if probe.returncode == 0:
                return candidate
    raise ExternalToolError("no Python with LibreOffice's 'uno' module found", hint=UNO_HINT)


def _unoserver_site() -> str:
    """Where this environment's unoserver package (and its metadata) is installed."""
    try:
        import unoserver
    except ImportError as exc:
        raise ExternalToolError("unoserver is not installed", hint="pip install unoserver") from exc
    return str(Path(unoserver.__file__).resolve().parent.parent)


class WarmConverter:
    """One LibreOffice kept running (through unoserver) for many documents.

    Use as a context manager; the server, its LibreOffice and its profile are gone
    after ``with``. A conversion that outlives ``timeout_s`` makes unoserver stop
    LibreOffice; the next conversion then starts a fresh one (once), so one bad
    document does not fail a whole overnight batch.
    """

    name = "warm"

    def __init__(
        self,
        *,
        soffice: str | None = None,
        python: str | None = None,
        timeout_s: float = 120.0,
        startup_timeout_s: float = 90.0,
        scratch_dir: Path | None = None,
    ) -> None:
        self.soffice = soffice
        self.scratch_dir = scratch_dir  # None: the system's temporary folder
        self.python = python
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._port = 0
        self.conversions = 0

    def __enter__(self) -> WarmConverter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start unoserver + LibreOffice and wait until it answers."""
        soffice = find_soffice(self.soffice)
        python = find_uno_python(self.python)
        # named after this process, LibreOffice's temporary files inside: recovery
        # sweeps what a killed batch leaves (see transcribe.stages.intake.sweep_temp_files)
        self._scratch = tempfile.TemporaryDirectory(
            prefix=temp_prefix() + "lo-warm-", dir=self.scratch_dir
        )
        scratch = Path(self._scratch.name)
        self._port, uno_port = _free_port(), _free_port()
        command = [
            python,
            "-c",
            _SERVER_BOOT,
            _unoserver_site(),
            "--interface",
            "127.0.0.1",
            "--port",
            str(self._port),
            "--uno-port",
            str(uno_port),
            "--executable",
            soffice,
            "--user-installation",
            str(scratch / "profile"),
            "--conversion-timeout",
            str(int(self.timeout_s)),
        ]
        log.info("starting warm LibreOffice: %s -c <unoserver> port %s", python, self._port)
        with (scratch / "unoserver.log").open("wb") as logfile:
            self._process = subprocess.Popen(
                command,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "TMPDIR": str(scratch)},
            )
        self._wait_ready()

    def _proxy(self, timeout_s: float) -> xmlrpc.client.ServerProxy:
        return xmlrpc.client.ServerProxy(
            f"http://127.0.0.1:{self._port}",
            allow_none=True,
            transport=_TimeoutTransport(timeout_s),
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise ExternalToolError(f"unoserver exited during start-up: {self._log_tail()}")
            with contextlib.suppress(OSError, xmlrpc.client.Error):
                self._proxy(5).info()
                return
            time.sleep(0.25)
        self.close()
        raise ExternalToolError(
            f"LibreOffice (unoserver) not ready after {self.startup_timeout_s:.0f} s"
        )

    def _log_tail(self) -> str:
        if self._scratch is None:
            return ""
        path = Path(self._scratch.name) / "unoserver.log"
        with contextlib.suppress(OSError):
            return path.read_text("utf-8", "replace").strip()[-400:]
        return ""

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def convert(self, docx: Path, pdf: Path, *, pdfa: bool = True) -> None:
        """Convert one document; restart LibreOffice once if it died."""
        with self._lock:
            if not self.alive():
                log.warning("warm LibreOffice is not running; starting a new one")
                self.close()
                self.start()
            try:
                self._convert(docx, pdf, pdfa)
            except (OSError, xmlrpc.client.Error) as exc:
                if self.alive() and "Timeout" not in str(exc):
                    raise RenderError(f"LibreOffice could not convert {docx.name}: {exc}") from exc
                raise ExternalToolError(
                    f"LibreOffice stopped while converting {docx.name} "
                    f"(hung past {self.timeout_s:.0f} s or crashed): {self._log_tail()[-200:]}"
                ) from exc
            self.conversions += 1

    def _convert(self, docx: Path, pdf: Path, pdfa: bool) -> None:
        options = [f"{k}={str(v).lower()}" for k, v in PDFA2B_OPTIONS.items()] if pdfa else []
        started = time.monotonic()
        self._proxy(self.timeout_s + 10).convert(
            str(docx.resolve()),
            None,
            str(pdf.resolve()),
            "pdf",
            "writer_pdf_Export",
            options,
            False,
            None,
            None,
        )
        log.info("converted a document in %.2f s (warm)", time.monotonic() - started)
        check_pdf(pdf, "LibreOffice (warm)")

    def close(self) -> None:
        """Stop unoserver and its LibreOffice, remove the profile."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # unoserver forwards it to LibreOffice and reaps it
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("unoserver ignored SIGTERM; killing its process group")
        if process is not None:
            _kill_group(process)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
