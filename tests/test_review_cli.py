"""``approve JOB --text-file F --field k=v`` and ``review`` through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import PROJECT
from tests.test_review_session import RIVERSIDE_REQUIRED, make_job
from transcribe.config import Config
from transcribe.store import JobState, open_store

runner = CliRunner()


def field_args(fields: dict[str, str]) -> list[str]:
    return [arg for name, value in fields.items() for arg in ("--field", f"{name}={value}")]


@pytest.mark.both_backends
def test_approve_without_a_terminal(config: Config, tmp_path: Path) -> None:
    home = str(config.paths.home)
    job_id = make_job(config, fields={"patient": "Jane Roe"})
    letter = tmp_path / "letter.txt"
    letter.write_text("Dear Dr Patel,\nThank you for seeing Mrs Roe.\n", encoding="utf-8")

    result = runner.invoke(app, ["--home", home, "approve", job_id, "--text-file", str(letter)])
    assert result.exit_code == 2
    assert "required field(s) missing: clinic_date, dob, hospital_number" in result.output
    assert "Traceback" not in result.output

    fields = {**RIVERSIDE_REQUIRED, "cc": "Dr Who"}
    fields.pop("patient")  # already in the draft
    result = runner.invoke(
        app,
        [
            "--home",
            home,
            "approve",
            job_id,
            "--text-file",
            str(letter),
            "--reviewer",
            "cli@t",
            *field_args(fields),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{job_id}  archived" in result.output  # approved, rendered, signed, archived
    bundle = tmp_path / "bundle.json"
    result = runner.invoke(
        app, ["--home", home, "archive", "get", job_id, "--item", "transcript", "-o", str(bundle)]
    )
    assert result.exit_code == 0, result.output
    files = json.loads(bundle.read_text())["files"]
    approved = files["approved"]
    assert approved["text"] == letter.read_text(encoding="utf-8")
    assert approved["fields"] == {**RIVERSIDE_REQUIRED, "cc": "Dr Who"}
    assert approved["reviewer"] == "cli@t"
    assert files["draft"]["text"] == approved["text"]
    assert files["corrections"]["approved"] is True
    assert not (config.paths.work / "jobs" / job_id).exists()  # no plaintext left
    with open_store(config) as store:
        assert store.get(job_id).state == JobState.ARCHIVED
        actors = {e["actor"] for e in store.events(job_id) if e["action"] == "state"}
        assert "cli@t" in actors

    result = runner.invoke(app, ["--home", home, "approve", job_id])
    assert result.exit_code == 5 and "is archived, not review" in result.output


def test_approve_errors_are_one_line(config: Config) -> None:
    home = str(config.paths.home)
    job_id = make_job(config)
    cases = [
        (["approve", "20990101-000000"], 4, "no job"),
        (["approve", job_id, "--field", "patient"], 2, "expected name=value"),
        (["approve", job_id, "--field", "colour=red"], 2, "not in the riverside-clinic template"),
        (["approve", job_id, "--text-file", "/nonexistent"], 2, "cannot read --text-file"),
    ]
    for args, code, message in cases:
        result = runner.invoke(app, ["--home", home, *args])
        assert result.exit_code == code and message in result.output, (args, result.output)


def test_approve_as_a_subprocess_reads_stdin(config: Config) -> None:
    job_id = make_job(config)
    result = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), "--home", str(config.paths.home), "approve",
         job_id, "--text-file", "-", *field_args(RIVERSIDE_REQUIRED)],
        input="Approved from a pipe.", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{job_id}  archived"
    pdf = config.paths.home / "letter.pdf"
    runner.invoke(app, ["--home", str(config.paths.home), "archive", "get", job_id, "-o", str(pdf)])
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "Approved from a pipe." in text
