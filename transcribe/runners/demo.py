"""Sample dictations for ``make demo``: English spoken by espeak-ng, French recorded.

The English samples are invented text spoken by espeak-ng; every name and fact in them
is invented. They use dictation conventions ("comma", "new paragraph") on purpose:
they show what the post-processing stage has to handle. espeak-ng's French is too
robotic for Whisper (base heard less than a third of its words right), so the French
sample is a real recording: the preamble of the Universal Declaration of Human Rights
read by a LibriVox volunteer (public domain; ``samples/README.md`` says where it comes
from), dictated to the legal client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ExternalToolError, WorkspaceError
from ..fsutil import atomic_copy, sha256_file
from ..progress import Reporter
from ..store import JobState, open_store

#: Real recordings shipped with the project (a source checkout; see its README).
SAMPLES_DIR = Path(__file__).resolve().parents[2] / "samples"


@dataclass(frozen=True)
class Sample:
    """One demo dictation: text for espeak-ng, or a recording from ``samples/``."""

    client: str
    name: str
    sidecar: dict[str, str]
    text: str = ""
    voice: str = ""
    rate: int = 0
    recording: str = ""
    credit: str = ""


SAMPLES = (
    Sample(
        client="riverside-clinic",
        name="cardiology-letter.wav",
        voice="en-gb",
        rate=150,
        text=(
            "Dear Doctor Patel comma new paragraph thank you for referring Mr Jonathan Reed "
            "comma aged sixty four comma who presents with exertional breathlessness period "
            "the echocardiogram shows a left ventricular ejection fraction of fifty percent "
            "period I have started bisoprolol two point five milligrams once daily period "
            "new paragraph yours sincerely"
        ),
        sidecar={
            "author": "Dr Amelia Hart",
            "patient": "Jonathan Reed (invented)",
            "document_type": "clinic letter",
            "priority": "urgent",
            "language": "en",
        },
    ),
    Sample(
        client="riverside-clinic",
        name="discharge-summary.wav",
        voice="en-us",
        rate=145,
        text=(
            "Discharge summary period the patient was admitted with community acquired "
            "pneumonia and treated with amoxicillin for seven days period she is now "
            "afebrile and mobilising independently period please review her in the clinic "
            "in six weeks period"
        ),
        sidecar={"author": "Dr Amelia Hart", "document_type": "discharge summary"},
    ),
    Sample(
        client="maitre-dubois",
        name="preambule-dudh.mp3",
        recording="udhr_preamble_fr.mp3",
        credit="LibriVox recording, public domain; text: OHCHR (ohchr.org)",
        sidecar={
            "author": "Maître Paul Dubois",
            "document_type": "note",
            "language": "fr",
        },
    ),
)


def synthesise(sample: Sample, folder: Path) -> Path:
    """Speak one sample into ``folder`` with espeak-ng."""
    if shutil.which("espeak-ng") is None:
        raise ExternalToolError("espeak-ng is not installed", hint="run `make setup`")
    target = folder / sample.name
    subprocess.run(
        ["espeak-ng", "-v", sample.voice, "-s", str(sample.rate), "-w", str(target), sample.text],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def sample_audio(sample: Sample, folder: Path) -> Path:
    """The sample's audio: its shipped recording, else espeak-ng's speech in ``folder``."""
    if not sample.recording:
        return synthesise(sample, folder)
    path = SAMPLES_DIR / sample.recording
    if not path.is_file():
        raise WorkspaceError(
            f"demo recording {path} is missing",
            hint="run the demo from a source checkout (`make demo`)",
        )
    return path


def drop_samples(config: Config) -> list[Path]:
    """Put each sample (and its sidecar) in its client's inbox, unless already taken in."""
    dropped = []
    with tempfile.TemporaryDirectory() as tmp, open_store(config) as store:
        for sample in SAMPLES:
            audio = sample_audio(sample, Path(tmp))
            if store.find_by_hash(sha256_file(audio)) is not None:
                continue
            target = config.paths.inbox / sample.client / sample.name
            sidecar = target.with_name(target.name + ".json")
            sidecar.write_text(json.dumps(sample.sidecar, ensure_ascii=False), encoding="utf-8")
            atomic_copy(audio, target)  # appears complete, as a well-behaved sender would
            dropped.append(target)
    return dropped


# The secretary's part for one sample, so the demo shows a signed, archived letter.
APPROVED_SAMPLE = "cardiology-letter.wav"
APPROVED_FIELDS = {
    "recipient": "Dr Priya Patel (invented)",
    "recipient_address": "Invented Surgery, 1 Example Road",
    "salutation": "Dr Patel",
    "dob": "01/02/1962",
    "hospital_number": "DEMO-0001",
    "clinic_date": "23 November 2026",
}


@dataclass
class DemoResult:
    dropped: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    previews: dict[str, str] = field(default_factory=dict)
    archived: list[Path] = field(default_factory=list)
    credits: dict[str, str] = field(default_factory=dict)  # job id -> recording's source


def letter_body(text: str) -> str:
    """What a secretary keeps of a dictated letter: the letterhead already has the
    salutation and the closing, so the dictated ones go."""
    kept = [p for p in text.split("\n\n") if not p.strip().startswith(("Dear ", "Yours "))]
    return "\n\n".join(kept).strip()


def approve_sample(config: Config) -> list[Path]:
    """Approve one sample as a secretary would, then render, sign and archive it."""
    from ..draft import load_draft
    from ..review import approve_job
    from ..stages.letter import finish_approved
    from ..stages.transcription import draft_path

    with open_store(config, actor="demo") as store:
        waiting = [j for j in store.jobs(JobState.REVIEW) if j.source_name == APPROVED_SAMPLE]
        for job in waiting:
            text = letter_body(load_draft(draft_path(config, job))["text"])
            approve_job(config, job.id, text=text, fields=APPROVED_FIELDS, reviewer="demo")
            finish_approved(config, store, job.id)
        return sorted(config.paths.archive.rglob("*.pdf.age"))


def run_demo(config: Config, reporter: Reporter, engine_factory: Callable[[], Any]) -> DemoResult:
    """Drop the samples, take them in and transcribe them, file one signed letter."""
    from ..status import list_jobs, load_job_draft
    from .watcher import watch

    result = DemoResult(dropped=len(drop_samples(config)))
    watch(config, once=True, reporter=reporter, engine_factory=engine_factory)
    result.archived = approve_sample(config)
    result.jobs = list_jobs(config)
    result.previews = {
        row["id"]: load_job_draft(config, row["id"])["text"]
        for row in result.jobs
        if row["state"] == "review"
    }
    credits = {sample.name: sample.credit for sample in SAMPLES if sample.credit}
    result.credits = {
        row["id"]: credits[row["source"]] for row in result.jobs if row["source"] in credits
    }
    return result
