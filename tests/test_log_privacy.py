"""Logs carry job ids, never patient names (issue 13): real intake, quarantine and
letter rendering, with every log record captured at DEBUG.

Senders name files after patients, sidecars and letters hold their names: none of it
may reach a log line, which is collected, kept and read by people who need no
patient's name to run the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from tests.conftest import CLIENT
from tests.test_intake import drop
from tests.test_letter import approved_job
from transcribe.config import Config
from transcribe.stages.intake import take_in
from transcribe.stages.letter import render_job
from transcribe.store import JobState, open_store

PATIENT = "Jeanne Dupontel"  # invented; stands for the patients senders name files after
PARTS = ("jeanne", "dupontel")


def leaks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured line (message, and traceback if any) naming the patient, any case."""
    lines = [caplog.handler.format(record) for record in caplog.records]
    return [line for line in lines if any(part in line.lower() for part in PARTS)]


def logged(caplog: pytest.LogCaptureFixture, job_id: str) -> bool:
    """A line an operator reads (INFO and up) names the job: a DEBUG path does not count."""
    return any(
        job_id in record.getMessage() for record in caplog.records if record.levelno >= logging.INFO
    )


def test_intake_and_quarantine_log_job_ids_not_the_patient(
    config: Config, clips: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = drop(config, clips[0], "dupontel-jeanne-irm.wav")
    good.with_name(good.name + ".json").write_text(
        json.dumps({"author": "Dr Test", "patient": PATIENT}), encoding="utf-8"
    )
    noise = config.paths.inbox / CLIENT / "Dupontel-Jeanne-scanner.wav"
    noise.write_bytes(os.urandom(4000))
    echo = drop(config, clips[1], "DUPONTEL_JEANNE_echo.mp3")
    echo.with_name(echo.name + ".json").write_text(
        json.dumps({"priority": PATIENT}),
        encoding="utf-8",  # the name in the wrong key
    )
    (config.paths.inbox / "dupontel-jeanne").mkdir()  # a patient's folder, not a client's
    stray = drop(config, clips[2], "irm.wav", "dupontel-jeanne")
    with open_store(config) as store:
        results = [take_in(path, config, store) for path in (good, noise, echo, stray)]
    assert [r.outcome for r in results] == ["accepted", *["quarantined"] * 3]
    assert PATIENT in results[2].job.reason  # the job keeps the reason whole...
    assert not leaks(caplog)  # ...the log names no one
    assert all(logged(caplog, r.job.id) for r in results)


@pytest.mark.slow
def test_rendering_a_letter_logs_the_job_id_not_the_patient(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fields = {"patient": PATIENT, "date_naissance": "01/02/1958", "reference": "CR-2026-001"}
    job_id = approved_job(
        config, text=f"Je vous adresse Mme {PATIENT}, vue ce jour.", fields=fields
    )
    with open_store(config) as store:
        job = render_job(config, store, job_id)
    assert job.state == JobState.RENDERED, job.reason
    assert not leaks(caplog)
    assert logged(caplog, job_id)
