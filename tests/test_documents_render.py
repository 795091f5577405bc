"""Approved text to signed PDF/A through the real LibreOffice, checked by pdftotext,
pdfsig and pyHanko. One warm LibreOffice is shared by the module."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import signal
import subprocess
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader

from transcribe.documents import (
    DocumentMetadata,
    OneShotConverter,
    RenderOptions,
    SigningOptions,
    WarmConverter,
    make_test_certificate,
    render_pdf,
    verify_signed_pdf,
)
from transcribe.documents.pdfmeta import JOB_ID_KEY, is_pdfa2b
from transcribe.errors import ExternalToolError, RenderError

pytestmark = pytest.mark.skipif(
    shutil.which("soffice") is None,
    reason="LibreOffice not installed (apt-get install libreoffice-writer-nogui poppler-utils)",
)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
PASS_ENV = "TRANSCRIBE_TEST_RENDER_PASSPHRASE"

APPROVED = (
    "Mme Hélène Lefèvre-Dupré, 67 ans, est revue ce jour (contrôle à 6 mois) pour une "
    "fibrillation atriale paroxystique ; elle décrit « quelques palpitations » à l'effort.\n"
    "Pas de douleur thoracique, pas de dyspnée (NYHA I), pas d'œdème.\n\n"
    "Examen : TA 132/78 mmHg, FC 68/min, auscultation normale. L’ECG montre un rythme "
    "sinusal régulier (PR 160 ms, QRS fins) ; l’échographie retrouve une FEVG à 60 %.\n\n"
    "Conclusion : pas de récidive documentée. On poursuit l'apixaban 5 mg × 2/j et le "
    "bisoprolol 2,5 mg (le matin) ; à revoir en décembre, ou avant si « symptômes "
    "nouveaux » (dyspnée, syncope…). Coût estimé : 25 € — « Noël » approche !"
)

FIELDS = {
    "patient": "Mme Hélène Lefèvre-Dupré",
    "date_naissance": "12/03/1958",
    "reference": "CR-2025-0042",
    "destinataire": "Dr Jean-Noël Lefèvre",
    "adresse_destinataire": "3 place Bellecour\n69002 Lyon",
    "objet": "Suivi cardiologique (FA)",
    "adresse": "5 rue Sainte-Catherine\n33000 Bordeaux",
    "formule_d_appel": "Madame",
    "reference_dossier": "D-2025/117",
    "recipient": "Dr Jane Smith",
    "recipient_address": "The Surgery, 1 High Street\nExeter EX4 1AA",
    "dob": "01/02/1960",
    "hospital_number": "RC-000123",
    "clinic_date": "3 March 2025",
    "salutation": "Dr Smith",
}

# (template, language, the template text just before and just after the body)
SAMPLES = [
    ("cabinet-martin/compte-rendu.docx", "fr-FR", "CR-2025-0042", "Dr Claire Martin"),
    ("cabinet-martin/courrier-confrere.docx", "fr-FR", "Cher confrère,", "Je vous prie de croire"),
    ("maitre-dubois/lettre.docx", "fr-FR", "Madame,", "Je vous prie d’agréer, Madame,"),
    ("riverside-clinic/clinic-letter.docx", "en-GB", "Dear Dr Smith,", "Yours sincerely,"),
]


def flat(text: str) -> str:
    """What is compared: NFKC (no-break spaces, ligatures) and single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def pdf_text(path: Path) -> str:
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True
    )
    return result.stdout


def body_between(text: str, before: str, after: str) -> str:
    """The body is what lies between the template's text around the placeholder."""
    page = flat(text)
    start = page.index(flat(before)) + len(flat(before))
    end = page.index(flat(after), start)
    return page[start:end].strip()


def assert_info_matches_xmp(data: bytes) -> None:
    """PDF/A: Info entries must equal their XMP counterparts, even after signing."""
    reader = PdfReader(io.BytesIO(data))
    xmp = reader.xmp_metadata
    info = reader.metadata
    assert xmp is not None and info is not None
    assert info.title == xmp.dc_title["x-default"]
    assert [info.author] == xmp.dc_creator
    assert info.producer == xmp.pdf_producer
    assert info.creator == xmp.xmp_creator_tool


def pdfsig(path: Path) -> str:
    result = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def warm() -> Iterator[WarmConverter | OneShotConverter]:
    """One LibreOffice for the module; one-shot if python3-uno is missing."""
    try:
        converter = WarmConverter(timeout_s=60)
        converter.start()
    except ExternalToolError as exc:
        if "uno" not in str(exc):
            raise
        yield OneShotConverter(timeout_s=120)
        return
    try:
        yield converter
    finally:
        converter.close()


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningOptions]:
    folder = tmp_path_factory.mktemp("render-keys")
    cert = make_test_certificate(folder / "client.p12", passphrase="s3cret")
    os.environ[PASS_ENV] = "s3cret"
    try:
        yield SigningOptions(
            pkcs12=cert.pkcs12,
            passphrase_env=PASS_ENV,
            trust_roots=(cert.root_certificate,),
            require_trusted=True,
        )
    finally:
        os.environ.pop(PASS_ENV, None)


def metadata(language: str = "fr-FR") -> DocumentMetadata:
    return DocumentMetadata(
        title="Compte rendu — Mme Lefèvre-Dupré",
        author="Dr Claire Martin",
        language=language,
        job_id="job-20250301-0042",
        date=dt.date(2025, 3, 1),
    )


@pytest.mark.parametrize(
    ("template", "language", "before", "after"), SAMPLES, ids=[s[0] for s in SAMPLES]
)
def test_sample_renders_to_signed_pdfa_with_exact_text(
    template: str, language: str, before: str, after: str, warm, signing, tmp_path: Path
) -> None:
    out = tmp_path / "signed.pdf"
    result = render_pdf(
        TEMPLATES / template,
        APPROVED,
        FIELDS,
        out,
        options=RenderOptions(),
        signing=signing,
        metadata=metadata(language),
        converter=warm,
    )
    assert result.signed and result.pades_level == "B-B" and result.pages == 1
    assert out.stat().st_mode & 0o777 == 0o600
    text = pdf_text(out)
    assert body_between(text, before, after) == flat(APPROVED)
    assert "{{" not in text and "«Texte»" not in text

    data = out.read_bytes()
    assert is_pdfa2b(data)
    assert_info_matches_xmp(data)
    info = PdfReader(io.BytesIO(data)).metadata
    assert info.title == "Compte rendu — Mme Lefèvre-Dupré" and info.author == "Dr Claire Martin"
    assert info[JOB_ID_KEY] == "job-20250301-0042"
    assert str(PdfReader(io.BytesIO(data)).trailer["/Root"]["/Lang"]) == language

    sig = pdfsig(out)
    assert "Signature is Valid" in sig and "Total document signed" in sig
    position = data.index(b"\n%", 0, 64) + 3  # binary comment, first signed range
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(data[:position] + bytes([data[position] ^ 1]) + data[position + 1 :])
    assert "Signature is Valid" not in pdfsig(tampered)
    assert not verify_signed_pdf(tampered, trust_roots=signing.trust_roots).intact


def test_split_placeholders_and_footer_with_one_shot_libreoffice(tmp_path: Path) -> None:
    document = docx.Document()
    paragraph = document.add_paragraph("Patient : ")
    for text, bold in (("«Nom du ", True), ("pat", False), ("ient»", False)):
        paragraph.add_run(text).bold = bold
    document.add_paragraph("{{ body }}")
    footer = document.sections[0].footer.paragraphs[0]
    footer.add_run("Dossier {{ dos")
    footer.add_run("sier }} — confidentiel").italic = True
    template = tmp_path / "split.docx"
    document.save(template)
    out = tmp_path / "split.pdf"
    result = render_pdf(
        template,
        APPROVED,
        {"Nom du patient": "M. Ødegaard", "dossier": "D-77"},
        out,
        options=RenderOptions(timeout_s=120),
        signing=None,
        metadata=metadata(),
    )
    text = flat(pdf_text(out))
    assert result.converter == "one-shot" and not result.signed
    assert "Patient : M. Ødegaard" in text and "Dossier D-77 — confidentiel" in text
    assert flat(APPROVED) in text


def fake_soffice(folder: Path, body: str) -> str:
    script = folder / "soffice"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def render_with(soffice: str, out: Path, *, timeout_s: float = 60) -> None:
    template = TEMPLATES / "cabinet-martin" / "compte-rendu.docx"
    render_pdf(
        template,
        APPROVED,
        FIELDS,
        out,
        options=RenderOptions(soffice=soffice, timeout_s=timeout_s),
        signing=None,
        metadata=metadata(),
    )


def test_missing_libreoffice_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    with pytest.raises(ExternalToolError, match="not found"):
        render_with(str(tmp_path / "no-such-soffice"), out)
    assert not out.exists()


def test_hung_libreoffice_is_stopped(tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    pid_file = tmp_path / "pid"
    soffice = fake_soffice(tmp_path, f"echo $$ > {pid_file}\nsleep 60 & wait")
    with pytest.raises(ExternalToolError, match="did not finish within 1 s"):
        render_with(soffice, out, timeout_s=1)
    assert not out.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_libreoffice_that_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    with pytest.raises(RenderError, match="produced no PDF"):
        render_with(fake_soffice(tmp_path, "exit 0"), out)
    assert not out.exists()


def test_failed_verification_leaves_no_output(warm, signing, tmp_path: Path) -> None:
    stranger = make_test_certificate(tmp_path / "other.p12", passphrase="x")
    strict = SigningOptions(
        pkcs12=signing.pkcs12,
        passphrase_env=PASS_ENV,
        trust_roots=(stranger.root_certificate,),
        require_trusted=True,
    )
    out = tmp_path / "final" / "signed.pdf"
    with pytest.raises(RenderError, match="failed verification: signer certificate is not trusted"):
        render_pdf(
            TEMPLATES / "maitre-dubois" / "lettre.docx",
            APPROVED,
            FIELDS,
            out,
            options=RenderOptions(),
            signing=strict,
            metadata=metadata(),
            converter=warm,
        )
    assert not out.exists()


def test_warm_converter_recovers_after_libreoffice_dies(warm, tmp_path: Path) -> None:
    if not isinstance(warm, WarmConverter):
        pytest.skip("python3-uno missing: warm converter unavailable")
    assert warm._process is not None
    os.killpg(warm._process.pid, signal.SIGKILL)
    warm._process.wait(timeout=10)
    out = tmp_path / "again.pdf"
    render_pdf(
        TEMPLATES / "cabinet-martin" / "compte-rendu.docx",
        APPROVED,
        FIELDS,
        out,
        options=RenderOptions(),
        signing=None,
        metadata=metadata(),
        converter=warm,
    )
    assert warm.alive() and flat(APPROVED) in flat(pdf_text(out))


def test_warm_libreoffice_that_never_answers_is_a_clear_error(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    soffice = fake_soffice(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60")
    converter = WarmConverter(soffice=soffice, startup_timeout_s=3)
    with pytest.raises(ExternalToolError, match="not ready after 3 s"):
        converter.start()
    assert not converter.alive()
    if pid_file.exists():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)
