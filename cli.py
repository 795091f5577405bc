"""Command-line interface: thin Typer commands over the ``transcribe`` library.

Each command parses its options, calls one library function, and draws the result.
Errors from the library's tree become a one-line message and its exit code; a
traceback is shown only with ``-v``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transcribe import __version__
from transcribe.config import Config
from transcribe.errors import TranscribeError
from transcribe.store import Job

app = typer.Typer(
    help="Dictation pipeline: inbox -> Whisper transcript -> review -> signed, archived letter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


class State:
    home: Path = Path.cwd()
    verbose: bool = False


state = State()


@app.callback()
def main(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Workspace folder [default: $TRANSCRIBE_HOME, else the current folder]",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Log details; tracebacks on errors.")
    ] = False,
) -> None:
    state.home = home or Path(os.environ.get("TRANSCRIBE_HOME") or Path.cwd())
    state.verbose = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """The one handler for the library's error tree."""
    try:
        yield
    except TranscribeError as exc:
        if state.verbose:
            err.print_exception()
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        raise typer.Exit(130) from None


def _config() -> Config:
    from transcribe.workspace import open_workspace

    return open_workspace(state.home)


class ConsoleReporter:
    """Prints job progress lines; plain text when not on a terminal."""

    def job(self, job: Job, message: str) -> None:
        detail = (
            f" ({job.reason})"
            if job.reason and message in ("quarantined", "failed", "duplicate")
            else ""
        )
        out.print(
            f"{job.id}  {job.client:<18} {message:<12} {job.source_name}{detail}",
            markup=False,
            highlight=False,
        )

    def note(self, message: str) -> None:
        out.print(message, markup=False, highlight=False)


class WorkerReporter(ConsoleReporter):
    """A worker's lines are its log, often collected centrally: job ids and states,
    never a source file name (senders name files after patients)."""

    def job(self, job: Job, message: str) -> None:
        out.print(f"{job.id}  {job.client:<18} {message}", markup=False, highlight=False)


@app.command()
def init(
    demo: Annotated[
        bool, typer.Option("--demo", help="Add demo clients and sample templates.")
    ] = False,
) -> None:
    """Create a workspace: inbox/, archive/, templates/, keys/, config, job store."""
    from transcribe.workspace import init_workspace

    with errors_to_exit():
        result = init_workspace(state.home, demo=demo)
    verb = "created" if result.created_config else "checked"
    out.print(f"workspace {verb}: {result.home}", markup=False, highlight=False)
    if result.clients:
        out.print(
            f"clients: {', '.join(result.clients)}  (drop audio in inbox/<client>/)",
            markup=False,
            highlight=False,
        )


@app.command()
def watch(
    once: Annotated[
        bool, typer.Option("--once", help="Handle what is in the inbox now, then exit.")
    ] = False,
) -> None:
    """Take in dictations from inbox/<client>/ and transcribe them."""
    from transcribe.asr.engine import WhisperEngine
    from transcribe.runners.watcher import watch as run_watch

    with errors_to_exit():
        config = _config()

        def engine_factory() -> WhisperEngine:
            return WhisperEngine(config.transcription, base_dir=config.paths.home)

        if not once:
            out.print(
                f"watching {config.paths.inbox} (Ctrl-C to stop)", markup=False, highlight=False
            )
        summary = run_watch(
            config, once=once, engine_factory=engine_factory, reporter=ConsoleReporter()
        )
    if once:
        out.print(
            f"done: {len(summary.taken)} file(s) taken in, "
            f"{len(summary.transcribed)} job(s) transcribed",
            markup=False,
            highlight=False,
        )


@app.command()
def worker(
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            help="Take tasks from this queue: transcribe, transcribe-gpu or letters;"
            " repeat as needed [default: transcribe and letters, and transcribe-gpu"
            " on a machine with a CUDA GPU].",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Tasks run at once (one transcription at a time).")
    ] = 1,
) -> None:
    """Platform mode: run stages from the shared queue on this machine."""
    from transcribe.asr.engine import WhisperEngine
    from transcribe.runners.worker import WorkerOptions, run_worker

    with errors_to_exit():
        config = _config()
        options = WorkerOptions(concurrency=concurrency)
        if queue:
            options = WorkerOptions(queues=tuple(queue), concurrency=concurrency)
        run_worker(
            config,
            options,
            lambda: WhisperEngine(config.transcription, base_dir=config.paths.home),
            WorkerReporter(),
        )


def _status_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=None, show_lines=False)
    for column in ("id", "client", "state", "source", "reason", "warnings"):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = [str(row[c] or "") for c in ("id", "client", "state", "source", "reason")]
        table.add_row(*cells, _warning_count(row["warnings"]))
    return table


def _warning_count(warnings: list[dict[str, str]]) -> str:
    """``2 (language, unreliable)``: how many, and which; ``show`` gives the texts."""
    if not warnings:
        return ""
    return f"{len(warnings)} ({', '.join(w['code'] for w in warnings)})"


#: the options every client of a remote `transcribe serve` shares
UserOption = Annotated[str | None, typer.Option("--user", help="Your account (with --server).")]
CaOption = Annotated[
    Path | None,
    typer.Option("--ca", help="Trust only this CA certificate (the demo's keys/demo-ca.pem)."),
]


def _password_source(user: str) -> Any:
    """``$TRANSCRIBE_PASSWORD``, else a prompt (asked only when a login is needed)."""

    def ask() -> str:
        given = os.environ.get("TRANSCRIBE_PASSWORD")
        if given:
            return given
        if not sys.stdin.isatty():
            from transcribe.errors import ServiceError

            raise ServiceError(
                f"a password for {user} is needed and there is no terminal to ask it",
                hint="set TRANSCRIBE_PASSWORD",
            )
        return str(typer.prompt(f"password for {user}", hide_input=True, err=True))

    return ask


def _remote(server: str, user: str | None, ca: Path | None) -> Any:
    """A client of ``server`` as ``user`` (the password asked only if a login is needed)."""
    from transcribe.errors import ConfigError
    from transcribe.service.client import ServiceClient

    if not user:
        raise ConfigError("--server needs --user NAME (your account on that server)")
    return ServiceClient(server, user, _password_source(user), ca=ca)


def _remote_jobs(server: str, user: str | None, ca: Path | None) -> list[dict[str, Any]]:
    with _remote(server, user, ca) as client:
        return list(client.jobs())


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list of jobs.")] = False,
    client: Annotated[str | None, typer.Option(help="Only this client's jobs.")] = None,
    queues: Annotated[
        bool,
        typer.Option(
            "--queues",
            help="Platform mode: only the work queue (tasks per queue, workers, stalled"
            " tasks); with --json, as one object.",
        ),
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Ask this `transcribe serve` (https://HOST:PORT) instead of the local"
            " workspace: the jobs your account may see.",
        ),
    ] = None,
    user: UserOption = None,
    ca: CaOption = None,
) -> None:
    """Jobs and their states; in platform mode, the work queue after them."""
    from transcribe.status import list_jobs, platform_status

    if server is not None:
        with errors_to_exit():
            if queues:
                from transcribe.errors import ConfigError

                raise ConfigError("--queues is read on the platform's machines, not --server")
            rows = _remote_jobs(server, user, ca)
        rows = [row for row in rows if client is None or row["client"] == client]
        if as_json:
            typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            out.print(_status_table(rows) if rows else "no jobs")
        return
    with errors_to_exit():
        config = _config()
        if queues:
            queue = platform_status(config)
        else:  # --json stays the list of jobs that scripts read
            rows = list_jobs(config, client=client)
            queue = platform_status(config) if config.platform and not as_json else None
    if as_json:
        typer.echo(json.dumps(queue if queues else rows, ensure_ascii=False, indent=2))
        return
    if not queues:
        out.print(_status_table(rows) if rows else "no jobs yet")
    if queue is not None:
        _print_queue(queue)


def _print_queue(queue: dict[str, Any]) -> None:
    """The work queue in three short parts; ids and task names only."""
    depth = Table(title=None, show_lines=False)
    for column in ("queue", "todo", "doing"):
        depth.add_column(column, justify="left" if column == "queue" else "right")
    for row in queue["queues"]:
        depth.add_row(row["name"], str(row["todo"]), str(row["doing"]))
    out.print(depth)
    seen = queue["workers"]
    _line(f"workers seen in the last {queue['seen_within_s']:.0f} s: {len(seen) or 'none'}")
    for worker in seen:
        running = ", ".join(_task(task) for task in worker["running"]) or "idle"
        _line(f"  worker {worker['id']}  heartbeat {worker['silent_s']:.0f} s ago  {running}")
    stalled = queue["stalled"]
    after = f"{queue['stalled_after_s']:.0f} s"
    _line(f"stalled tasks (worker silent over {after}, or gone): {len(stalled) or 'none'}")
    for task in stalled:
        on = f"worker {task['worker_id']}" if task["worker_id"] is not None else "worker gone"
        _line(f"  {_task(task)} on {task['queue']}, {on}")


def _task(task: dict[str, Any]) -> str:
    """``transcribe.transcribe job 20250101-abcd (task 12)``: the upkeep has no job."""
    job = f" job {task['job_id']}" if task["job_id"] else ""
    return f"{task['task']}{job} (task {task['id']})"


@app.command()
def show(
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Also words with times and probabilities.")
    ] = False,
) -> None:
    """A job's current draft text and fields."""
    from transcribe.status import load_job_draft

    with errors_to_exit():
        draft = load_job_draft(_config(), job_id)
    if as_json:
        typer.echo(json.dumps(draft, ensure_ascii=False, indent=2))
        return
    for warning in draft["warnings"]:
        typer.echo(f"warning ({warning['code']}): {warning['text']}")
    for name, value in draft["fields"].items():
        typer.echo(f"{name}: {value}")
    if draft["fields"] or draft["warnings"]:
        typer.echo("")
    typer.echo(draft["text"])


@app.command()
def demo() -> None:
    """Make a demo workspace, drop sample dictations, run the pipeline, show the result."""
    from transcribe.asr.engine import WhisperEngine
    from transcribe.runners.demo import run_demo
    from transcribe.workspace import init_workspace, open_workspace

    with errors_to_exit():
        init_workspace(state.home, demo=True)
        config = open_workspace(state.home)
        result = run_demo(config, ConsoleReporter(), lambda: WhisperEngine(config.transcription))
    table = Table(title="Demo jobs")
    for column in ("job", "client", "state", "audio", "start of the draft"):
        table.add_column(column, no_wrap=column in ("job", "state"))
    for row in result.jobs:
        seconds = f"{row['duration_s']:.0f} s" if row["duration_s"] else ""
        filed = "signed PDF/A, in the encrypted archive" if row["state"] == "archived" else ""
        preview = _preview(result.previews.get(row["id"], row["reason"] or filed))
        table.add_row(row["id"], row["client"], row["state"], seconds, preview)
    out.print(table)
    for job_id, credit in result.credits.items():
        if job_id in result.previews:
            out.print(f"\n{job_id}, a real recording ({credit}):", style="bold", markup=False)
            out.print(_preview(result.previews[job_id], 480), markup=False, highlight=False)
    home = config.paths.home
    lines = [
        f"python cli.py --home {home} review             # correct and approve, keyboard only",
        f"python cli.py --home {home} show JOB --json    # words, times, confidence",
        f"python cli.py --home {home} archive list       # signed letters, encrypted",
    ]
    lines += [
        f"age -d -i {home}/keys/archive.key -o letter.pdf {path}" for path in result.archived[:1]
    ]
    lines.append(
        f"drop audio (wav, mp3, m4a, ogg, flac, webm, amr, dss) into {home}/inbox/<client>/"
    )
    out.print("\nNext:", style="bold")
    for line in lines:
        out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def _preview(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BatchProgress:
    """Rich progress on a terminal (jobs, audio hours, ETA, current file); lines elsewhere."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.live = out.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[audio]}"),
            TimeRemainingColumn(),
            console=out,
            disable=not self.live,
        )
        self.task = self.progress.add_task("batch", total=None, audio="")
        self.audio_total = self.audio_done = 0.0
        self.jobs_done = 0

    def __enter__(self) -> BatchProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def _line(self, text: str) -> None:
        if self.live:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            out.print(text, markup=False, highlight=False, soft_wrap=True)

    def started(self, jobs: int, audio_s: float) -> None:
        self.audio_total = audio_s
        self.progress.update(self.task, total=jobs, audio=f"{audio_s / 3600:.2f} h of audio")
        self._line(f"{jobs} job(s) pending, {audio_s / 60:.1f} min of audio")

    def group_started(self, jobs: list[Job]) -> None:
        names = ", ".join(j.source_name for j in jobs)
        self.progress.update(self.task, description=names[:40])
        if not self.live:
            self._line(f"transcribing {len(jobs)} job(s): {names}")

    def job_done(self, job: Job) -> None:
        self.jobs_done += 1
        self.audio_done += job.duration_s or 0.0
        left = max(self.audio_total - self.audio_done, 0.0) / 3600
        self.progress.update(self.task, advance=1, audio=f"{left:.2f} h left")
        reason = f" ({job.reason})" if job.reason else ""
        self._line(f"{job.id}  {job.client:<18} {job.state:<12} {job.source_name}{reason}")

    def job(self, job: Job, message: str) -> None:
        self._line(f"{job.id}  {job.client:<18} {message:<12} {job.source_name}")

    def note(self, message: str) -> None:
        self._line(message)


def _deadline(until: str | None) -> Any:
    """``HH:MM`` local time; a time already past today means tomorrow (overnight runs)."""
    if until is None:
        return None
    from datetime import datetime, timedelta

    from transcribe.errors import ConfigError

    try:
        hours, minutes = (int(part) for part in until.split(":"))
        now = datetime.now().astimezone()
        target = now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
    except ValueError:
        raise ConfigError(f"--until {until!r}: expected HH:MM") from None
    return target if target > now else target + timedelta(days=1)


@app.command()
def batch(
    until: Annotated[str | None, typer.Option(help="Stop taking new jobs at HH:MM.")] = None,
    max_jobs: Annotated[int | None, typer.Option(min=1, help="At most this many jobs.")] = None,
) -> None:
    """Overnight run: take in the inbox, then transcribe everything pending.

    In platform mode: this machine works its transcription queues until they are empty.
    """
    from transcribe.asr.engine import WhisperEngine
    from transcribe.runners.batch import BatchOptions, run_batch

    with errors_to_exit():
        config = _config()
        options = BatchOptions(until=_deadline(until), max_jobs=max_jobs)
        with BatchProgress() as progress:
            report = run_batch(
                config, lambda: WhisperEngine(config.transcription), options, progress
            )
    done = len(report.jobs) - len(report.failures)
    out.print(
        f"batch {report.stopped_by}: {done} job(s) transcribed, {report.audio_s / 60:.1f} min "
        f"of audio in {report.wall_s:.0f} s ({report.speed:.1f}x real time), "
        f"{len(report.failures)} failure(s), {report.pending_left} still pending",
        markup=False,
        highlight=False,
    )
    for failure in report.failures:
        out.print(
            f"  {failure['id']} {failure['state']}: {failure['reason']}",
            markup=False,
            highlight=False,
        )
    out.print(f"report: {report.report_path}", markup=False, highlight=False)


@app.command()
def retry(job_id: Annotated[str, typer.Argument(metavar="JOB")]) -> None:
    """Send a failed job back to the stage that failed (transcription or letter)."""
    from transcribe.stages.transcription import retry_job
    from transcribe.store import open_store
    from transcribe.store.audit import operator_id

    with errors_to_exit():
        config = _config()
        with open_store(config, actor=operator_id()) as store:
            job = retry_job(config, store, job_id)
    who = "queued for the workers" if config.platform else "the next watch or batch picks it up"
    out.print(f"{job.id}  {job.state}  ({who})", markup=False, highlight=False)


@app.command("format")
def format_command(
    lang: Annotated[str, typer.Option("--lang", help="fr or en")],
    client: Annotated[
        str | None, typer.Option(help="Use this client's dictation settings.")
    ] = None,
) -> None:
    """Dictated text on stdin, written text on stdout (to check the rules)."""
    from transcribe.asr.postprocess import format_text

    with errors_to_exit():
        client_cfg = None
        if client is not None:
            client_cfg = _config().client(client)
            if client_cfg is None:
                from transcribe.errors import ConfigError

                raise ConfigError(f"no client {client!r} in the config")
        typer.echo(format_text(sys.stdin.read(), lang, client_cfg))


templates_app = typer.Typer(help="Letter templates of each client.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")


@templates_app.command("check")
def templates_check(
    client: Annotated[str | None, typer.Argument(help="Only this client.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable fields.")] = False,
) -> None:
    """Each template's required and optional fields, and what is wrong with them."""
    from transcribe.stages.letter import templates_report

    with errors_to_exit():
        report, problems = templates_report(_config(), client)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for client_id, templates in report.items():
            for name, fields in templates.items():
                out.print(f"{client_id}/{name}", style="bold", markup=False, highlight=False)
                out.print(
                    f"  required: {', '.join(fields['required']) or '-'}",
                    markup=False,
                    highlight=False,
                )
                out.print(
                    f"  optional: {', '.join(fields['optional']) or '-'}",
                    markup=False,
                    highlight=False,
                )
    for problem in problems:
        err.print(f"problem: {problem}", markup=False, highlight=False)
    if problems:
        raise typer.Exit(2)


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable checks.")] = False,
) -> None:
    """What is installed, which model and device, what is missing."""
    from dataclasses import asdict

    from transcribe.doctor import run_checks, store_check
    from transcribe.workspace import load_config

    config = None
    with errors_to_exit():
        if (state.home / "transcribe.toml").is_file():
            config = load_config(state.home)
        checks = run_checks(config.transcription if config else None)
        if config:
            checks.append(store_check(config))
    if as_json:
        typer.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        table = Table(show_header=False, box=None)
        for check in checks:
            mark = (
                "[green]ok[/]"
                if check.ok
                else ("[red]MISSING[/]" if check.required else "[yellow]absent[/]")
            )
            table.add_row(mark, check.name, escape(check.detail))
        out.print(f"transcribe {__version__}")
        out.print(table)
    if not all(c.ok for c in checks if c.required):
        raise typer.Exit(1)


@app.command()
def review(
    job_id: Annotated[
        str | None, typer.Argument(metavar="[JOB]", help="Open this job directly.")
    ] = None,
    reviewer: Annotated[
        str | None,
        typer.Option(help="Who reviews, for the lock and the audit log [default: user@host]."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Review the jobs of this `transcribe serve` (https://HOST:PORT) from here;"
            " the audio plays on this computer.",
        ),
    ] = None,
    user: UserOption = None,
    ca: CaOption = None,
) -> None:
    """The review loop: jobs waiting for review, or one job directly (keys: ? or F1).

    With --server, keys and player come from ~/.config/transcribe/review-keys.toml.
    """
    from transcribe.review import load_settings, reviewer_id
    from transcribe.review.session import LocalWorkplace, Workplace
    from transcribe.review.tui import run_review

    with errors_to_exit():
        workplace: Workplace
        if server is not None:
            from transcribe.review.remote import remote_workplace
            from transcribe.service.client import config_folder

            settings = load_settings(config_folder())
            workplace = remote_workplace(_remote(server, user, ca), settings)
        else:
            config = _config()
            settings = load_settings(config.paths.home)
            workplace = LocalWorkplace(config, reviewer or reviewer_id(), settings)
        run_review(workplace, job_id, settings=settings, write=typer.echo)


@app.command()
def approve(
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    text_file: Annotated[
        Path | None,
        typer.Option("--text-file", help="The approved text ('-': stdin) [default: the draft]."),
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="A letter field as name=value; repeat as needed."),
    ] = None,
    reviewer: Annotated[
        str | None,
        typer.Option(help="Who approves, for the audit log [default: user@host]."),
    ] = None,
    accept_unreliable: Annotated[
        bool,
        typer.Option(
            "--accept-unreliable",
            help="Approve although passages Whisper could not transcribe reliably were not "
            "looked at in the review loop (audited).",
        ),
    ] = False,
) -> None:
    """Approve a job in review without the terminal loop (required fields are checked)."""
    from transcribe.review import approve_job, parse_field_args, read_text_arg, reviewer_id
    from transcribe.stages.letter import finish_approved
    from transcribe.store import open_store

    with errors_to_exit():
        config = _config()
        who = reviewer or reviewer_id()
        job = approve_job(
            config,
            job_id,
            text=read_text_arg(text_file) if text_file else None,
            fields=parse_field_args(field or []),
            reviewer=who,
            accept_unreliable=accept_unreliable,
        )
        if config.platform:  # the approval queued the letter: a letters worker makes it
            out.print(f"{job.id}  {job.state}  (queued for the letters workers)", markup=False)
            return
        with open_store(config, actor=who) as store:
            job = finish_approved(config, store, job.id)
        if job.state == "failed":
            from transcribe.errors import RenderError

            raise RenderError(
                f"job {job.id} was approved but {job.reason}",
                hint=f"fix it, then `transcribe retry {job.id}`",
            )
    out.print(f"{job.id}  {job.state}", markup=False, highlight=False)


archive_app = typer.Typer(
    help="The encrypted archive: list, decrypt, verify, purge.", no_args_is_help=True
)
app.add_typer(archive_app, name="archive")
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
keys_app = typer.Typer(help="The archive's keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(help="The job store (SQLite or PostgreSQL).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@contextmanager
def _audited_store() -> Iterator[tuple[Config, Any]]:
    """Config and job store, with the operator as the audit log's actor."""
    from transcribe.store import open_store
    from transcribe.store.audit import operator_id

    config = _config()
    with open_store(config, actor=operator_id()) as store:
        yield config, store


def _line(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@archive_app.command("list")
def archive_list(
    client: Annotated[str | None, typer.Option(help="Only this client's jobs.")] = None,
    patient: Annotated[
        str | None, typer.Option(help="Jobs about this patient (searched blind, audited).")
    ] = None,
    matter: Annotated[
        str | None, typer.Option(help="Jobs of this matter (searched blind, audited).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
) -> None:
    """Archived jobs: ids, client, dates, document type, items (never a name)."""
    from transcribe.archive import list_archive

    with errors_to_exit(), _audited_store() as (config, store):
        jobs = list_archive(config, store, client=client, patient=patient, matter=matter)
    if as_json:
        typer.echo(json.dumps([j.as_dict() for j in jobs], ensure_ascii=False, indent=2))
        return
    for job in jobs:
        row = job.as_dict()
        kept = [k for k, v in row["items"].items() if not v["purged_at"]]
        _line(
            f"{job.job_id}  {job.client:<18} {row['archived_at'][:10]}  "
            f"{job.document_type or '-':<16} {', '.join(kept) or '(all purged)'}"
        )
    if not jobs:
        _line("no archived jobs")


@archive_app.command("get")
def archive_get(
    job_id: Annotated[str, typer.Argument(metavar="JOB")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write it (0600).")],
    item: Annotated[str, typer.Option(help="letter, audio or transcript.")] = "letter",
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT.")] = False,
    server: Annotated[
        str | None,
        typer.Option("--server", help="Download the signed letter from this `transcribe serve`."),
    ] = None,
    user: UserOption = None,
    ca: CaOption = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", help="An admin's reason to read the letter (with --server; audited)."
        ),
    ] = None,
) -> None:
    """Decrypt one archived item (checked against the index; audited)."""
    from transcribe.archive import get_item

    if server is not None:
        with errors_to_exit():
            if item != "letter":
                from transcribe.errors import ConfigError

                raise ConfigError("over --server only the signed letter is downloaded")
            with _remote(server, user, ca) as client:
                size = client.letter(job_id, output, force=force, reason=reason)
        _line(f"{job_id} letter -> {output} ({size} bytes)")
        return
    with errors_to_exit(), _audited_store() as (config, store):
        get_item(config, store, job_id, output, kind=item, force=force)
    _line(f"{job_id} {item} -> {output}")


@archive_app.command("verify")
def archive_verify() -> None:
    """Every item decrypts, matches the index, and every letter's signature is valid."""
    from transcribe.archive import ArchiveError, verify_archive

    with errors_to_exit(), _audited_store() as (config, store):
        report = verify_archive(config, store)
        for note in report.notes:
            err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
        for problem in report.problems:
            err.print(f"problem: {problem}", markup=False, highlight=False, soft_wrap=True)
        if not report.ok:
            raise ArchiveError(f"{len(report.problems)} archive item(s) failed verification")
    _line(f"archive ok: {report.checked} item(s) verified, {report.purged} purged")


@archive_app.command("purge")
def archive_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what is due.")] = False,
) -> None:
    """Delete archived items whose retention period is over (each removal audited)."""
    from transcribe.archive import purge

    with errors_to_exit(), _audited_store() as (config, store):
        purged = purge(config, store, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    for item in purged:
        _line(f"{verb} {item.job_id} {item.kind} (retention {item.days} days)")
    _line(f"{len(purged)} item(s) {verb}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; name the first bad entry."""
    from transcribe.store.audit import verify_audit

    with errors_to_exit(), _audited_store() as (_, store):
        report = verify_audit(store)
        report.raise_if_broken()
    _line(f"audit log intact: {report.entries} entries, head {report.head}")


@audit_app.command("export")
def audit_export(
    output: Annotated[Path, typer.Option("-o", "--output", help="JSON-lines file (0600).")],
) -> None:
    """Write the audit log, hashes included, as JSON lines."""
    from transcribe.store.audit import export_audit

    with errors_to_exit(), _audited_store() as (_, store):
        count = export_audit(store, output)
    _line(f"{count} audit entries -> {output}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt the whole archive to a new archive key, then retire the old one."""
    from transcribe.archive import rotate_keys

    with errors_to_exit(), _audited_store() as (config, store):
        result = rotate_keys(config, store)
    _line(
        f"archive key rotated: {result.reencrypted + result.already_done} item(s) "
        f"re-encrypted in {result.seconds:.1f} s; old key kept as {result.retired}"
    )


vocabulary_app = typer.Typer(
    help="What was learnt from the authors' approved letters and corrections.",
    no_args_is_help=True,
)
app.add_typer(vocabulary_app, name="vocabulary")


@vocabulary_app.command("forget-author")
def vocabulary_forget_author(
    client: Annotated[str, typer.Argument(metavar="CLIENT")],
    author: Annotated[str, typer.Argument(metavar="AUTHOR", help="As in the sidecars.")],
) -> None:
    """Purge an author's learnt corrections and terms for a client (audited)."""
    from transcribe.vocabulary.authors import forget_author

    with errors_to_exit(), _audited_store() as (config, store):
        gone = forget_author(config.paths.home, client, author, audit=store)
    _line(f"{client}: {gone.corrections} correction(s) and {gone.terms} term(s) forgotten")


users_app = typer.Typer(
    help="Accounts of the HTTPS service (`transcribe serve`).", no_args_is_help=True
)
app.add_typer(users_app, name="users")


def _new_password(name: str) -> str:
    """From standard input when it is not a terminal (scripts), else asked twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt(f"new password for {name}", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Annotated[str, typer.Option(help="secretary, author or admin.")],
    clients: Annotated[
        str, typer.Option(help="Comma-separated client ids whose jobs this account sees.")
    ] = "",
    author: Annotated[
        str | None,
        typer.Option(help="An author's name as the sidecars write it [default: NAME]."),
    ] = None,
) -> None:
    """Add an account; the password is read from standard input, or asked twice."""
    from transcribe.service.accounts import add_account, check_name

    with errors_to_exit(), _audited_store() as (config, store):
        check_name(name)
        password = _new_password(name)
        account = add_account(
            config,
            store,
            name,
            role=role,
            clients=clients.split(","),
            author=author,
            password=password,
        )
    _line(f"account {account.name} added: {account.role} {','.join(account.clients)}".rstrip())


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list.")] = False,
) -> None:
    """Accounts, roles, clients, and whether they are disabled or locked."""
    import time as _time

    with errors_to_exit(), _audited_store() as (_, store):
        accounts = store.accounts()
    if as_json:
        typer.echo(json.dumps([a.as_dict() for a in accounts], ensure_ascii=False, indent=2))
        return
    for account in accounts:
        flags = []
        if account.disabled:
            flags.append("disabled")
        if account.locked_until and account.locked_until > _time.time():
            flags.append("locked")
        who = f" ({account.author})" if account.author and account.author != account.name else ""
        _line(
            f"{account.name:<20} {account.role:<10} {','.join(account.clients) or '-':<30}"
            f" {' '.join(flags)}{who}".rstrip()
        )
    if not accounts:
        _line("no accounts: add one with `transcribe users add NAME --role ...`")


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Refuse this account's logins from now on, and end the open ones (audited)."""
    from transcribe.service.accounts import disable_account

    with errors_to_exit(), _audited_store() as (_, store):
        disable_account(store, name)
    _line(f"account {name} disabled")


@users_app.command("reset-password")
def users_reset_password(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """A new password (standard input, or asked twice); unlocks the account (audited)."""
    from transcribe.service.accounts import get_account, reset_password

    with errors_to_exit(), _audited_store() as (_, store):
        get_account(store, name)
        reset_password(store, name, _new_password(name))
    _line(f"account {name}: new password set, account unlocked, its logins ended")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: [server] host].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port [default: [server] port].")
    ] = None,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="Plain HTTP, only with --host 127.0.0.1 (behind a local TLS proxy).",
        ),
    ] = False,
) -> None:
    """The HTTPS JSON API for secretaries and authors elsewhere (Ctrl-C stops it)."""
    from transcribe.service.server import ServeOptions, server_url
    from transcribe.service.server import serve as run_serve

    with errors_to_exit():
        config = _config()
        options = ServeOptions(host=host, port=port, insecure_http=insecure_http)
        err.print(f"serving {server_url(config, options)}", markup=False, highlight=False)
        run_serve(config, options)


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="The dictation (its sidecar beside it goes too).")],
    server: Annotated[
        str, typer.Option("--server", help="The `transcribe serve` to send it to (https://...).")
    ],
    user: Annotated[str, typer.Option("--user", help="Your account on that server.")],
    client: Annotated[
        str | None, typer.Option(help="The client it is for [default: your account's only one].")
    ] = None,
    author: Annotated[str | None, typer.Option(help="Who dictated (over the sidecar's).")] = None,
    urgent: Annotated[bool, typer.Option("--urgent", help="Priority: urgent.")] = False,
    ca: CaOption = None,
) -> None:
    """Send a dictation to a server: prints its job id and state (sending again is safe)."""
    from transcribe.service.client import sidecar_fields

    with errors_to_exit():
        fields = sidecar_fields(file, author=author, urgent=urgent)
        with _remote(server, user, ca) as service:
            job = service.submit(file, client, fields)
    again = " (already received)" if job["outcome"] == "already-received" else ""
    _line(f"{job['id']} {job['state']}{again}")


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the job store's schema; each version is recorded."""
    from transcribe.store import migrate_store
    from transcribe.store.audit import operator_id

    with errors_to_exit():
        result = migrate_store(_config(), actor=operator_id())
    change = "up to date" if result.before == result.after else f"from schema {result.before}"
    _line(f"{result.store}: schema {result.after} ({change})")


if __name__ == "__main__":
    app()
