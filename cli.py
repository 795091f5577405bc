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
    from transcribe.engine import WhisperEngine
    from transcribe.watcher import watch as run_watch

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


def _status_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=None, show_lines=False)
    for column in ("id", "client", "state", "source", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row[c] or "") for c in ("id", "client", "state", "source", "reason")))
    return table


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable list of jobs.")] = False,
    client: Annotated[str | None, typer.Option(help="Only this client's jobs.")] = None,
) -> None:
    """Jobs and their states."""
    from transcribe.status import list_jobs

    with errors_to_exit():
        rows = list_jobs(_config(), client=client)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    elif not rows:
        out.print("no jobs yet")
    else:
        out.print(_status_table(rows))


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
    for name, value in draft["fields"].items():
        typer.echo(f"{name}: {value}")
    if draft["fields"]:
        typer.echo("")
    typer.echo(draft["text"])


@app.command()
def demo() -> None:
    """Make a demo workspace, drop sample dictations, run the pipeline, show the result."""
    from transcribe.demo import drop_samples
    from transcribe.engine import WhisperEngine
    from transcribe.status import list_jobs, load_job_draft
    from transcribe.watcher import watch as run_watch
    from transcribe.workspace import init_workspace, open_workspace

    with errors_to_exit():
        init_workspace(state.home, demo=True)
        config = open_workspace(state.home)
        dropped = drop_samples(config)
        out.print(
            f"dropped {len(dropped)} sample dictation(s) into {config.paths.inbox}",
            markup=False,
            highlight=False,
        )
        run_watch(
            config,
            once=True,
            reporter=ConsoleReporter(),
            engine_factory=lambda: WhisperEngine(config.transcription),
        )
        rows = list_jobs(config)
        previews = {
            row["id"]: _preview(load_job_draft(config, row["id"])["text"])
            for row in rows
            if row["state"] == "review"
        }
    table = Table(title="Demo jobs")
    for column in ("job", "client", "state", "audio", "start of the transcript"):
        table.add_column(column, no_wrap=column in ("job", "state"))
    for row in rows:
        seconds = f"{row['duration_s']:.0f} s" if row["duration_s"] else ""
        table.add_row(
            row["id"],
            row["client"],
            row["state"],
            seconds,
            previews.get(row["id"], row["reason"] or ""),
        )
    out.print(table)
    home = config.paths.home
    out.print("\nNext:", style="bold")
    out.print(f"  python cli.py --home {home} show JOB          # a whole draft", markup=False)
    out.print(
        f"  python cli.py --home {home} show JOB --json   # words, times, confidence", markup=False
    )
    out.print(
        f"  python cli.py --home {home} watch             # keep watching the inbox", markup=False
    )
    out.print(
        f"  drop audio (wav, mp3, m4a, ogg, flac, webm, amr, dss) into {home}/inbox/<client>/",
        markup=False,
    )


def _preview(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable checks.")] = False,
) -> None:
    """What is installed, which model and device, what is missing."""
    from dataclasses import asdict

    from transcribe.doctor import run_checks
    from transcribe.workspace import load_config

    transcription = None
    with errors_to_exit():
        if (state.home / "transcribe.toml").is_file():
            transcription = load_config(state.home).transcription
        checks = run_checks(transcription)
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
            table.add_row(mark, check.name, check.detail)
        out.print(f"transcribe {__version__}")
        out.print(table)
    if not all(c.ok for c in checks if c.required):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
