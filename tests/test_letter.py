"""The letter stage and the template/format commands, with real LibreOffice and pdfsig."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from transcribe.config import Config, load_config
from transcribe.fsutil import atomic_write_json
from transcribe.stages.letter import letter_path, render_job, required_fields
from transcribe.stages.transcription import job_dir
from transcribe.store import JobState, new_job_id, open_store

runner = CliRunner()

TEXT = (
    "Cher confrère,\nJe vous remercie de m'avoir adressé Mme Lucie Bernard (fictive), "
    "âgée de 68 ans.\n\nConclusion : « insuffisance cardiaque » débutante."
)
FIELDS = {
    "patient": "Lucie Bernard (fictive)",
    "date_naissance": "01/02/1958",
    "reference": "CR-2026-001",
}


def approved_job(
    config: Config,
    client: str = "cabinet-martin",
    text: str = TEXT,
    fields: dict[str, str] | None = None,
) -> str:
    job_id = new_job_id()
    with open_store(config) as store:
        store.insert_job(
            id=job_id,
            client=client,
            state=JobState.APPROVED,
            source_name="d.wav",
            language="fr",
            document_type="compte rendu",
        )
        folder = job_dir(config, store.get(job_id))
    folder.mkdir(parents=True)
    atomic_write_json(folder / "approved.json", {"text": text, "fields": fields or FIELDS})
    return job_id


@pytest.mark.slow
def test_an_approved_job_becomes_a_signed_letter(config: Config) -> None:
    job_id = approved_job(config)
    with open_store(config) as store:
        job = render_job(config, store, job_id)
        assert job.state == JobState.RENDERED, job.reason
        assert render_job(config, store, job_id).state == JobState.RENDERED  # idempotent
    pdf = letter_path(config, job)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "insuffisance cardiaque" in text and "CR-2026-001" in text
    sig = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True).stdout
    assert "Signature Validation: Signature is Valid." in sig
    assert "Total document signed" in sig
    assert pdf.stat().st_mode & 0o077 == 0


def test_a_missing_field_fails_the_job_with_the_reason_and_no_pdf(config: Config) -> None:
    job_id = approved_job(config, fields={"patient": "X"})
    with open_store(config) as store:
        job = render_job(config, store, job_id)
    assert job.state == JobState.FAILED and "rendering:" in job.reason
    assert "date_naissance" in job.reason and "\n" not in job.reason
    assert not letter_path(config, job).exists()


def test_required_fields_exclude_the_body(config: Config) -> None:
    client = config.client("cabinet-martin")
    assert required_fields(config, client) == ("date_naissance", "patient", "reference")


def test_templates_check_reports_fields_and_problems(home: Path) -> None:
    result = runner.invoke(app, ["--home", str(home), "templates", "check", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"cabinet-martin", "maitre-dubois", "riverside-clinic"}
    assert "patient" in report["riverside-clinic"]["clinic-letter"]["required"]
    assert "cc" in report["riverside-clinic"]["clinic-letter"]["optional"]
    (home / "templates" / "maitre-dubois" / "lettre.docx").unlink()
    result = runner.invoke(app, ["--home", str(home), "templates", "check"])
    assert result.exit_code == 2
    assert "maitre-dubois: configured template lettre.docx is missing" in result.output


def test_format_reads_stdin_and_uses_client_settings(home: Path) -> None:
    dictated = "Conclusion deux points tension à cent quarante sur quatre-vingt-dix point"
    result = runner.invoke(app, ["format", "--lang", "fr"], input=dictated)
    assert result.exit_code == 0
    assert result.output.replace("\u00a0", " ").strip() == "Conclusion : tension à 140/90."
    config_file = home / "transcribe.toml"
    config_file.write_text(
        config_file.read_text() + "\n[clients.cabinet-martin.dictation]\ncommands = false\n"
    )
    load_config(home)
    result = runner.invoke(
        app,
        ["--home", str(home), "format", "--lang", "fr", "--client", "cabinet-martin"],
        input=dictated,
    )
    assert result.output.strip() == "Conclusion deux points tension à 140/90 point"


def test_a_failed_letter_is_retried_from_the_letter_stage(config: Config) -> None:
    job_id = approved_job(config, fields={"patient": "X"})
    with open_store(config) as store:
        assert render_job(config, store, job_id).state == JobState.FAILED
    result = runner.invoke(app, ["--home", str(config.paths.home), "retry", job_id])
    assert result.exit_code == 0 and "approved" in result.output
    result = runner.invoke(app, ["--home", str(config.paths.home), "retry", job_id])
    assert result.exit_code == 5 and "only failed jobs are retried" in result.output
