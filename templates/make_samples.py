"""Build the shipped sample letterheads (run: ``python templates/make_samples.py``).

Four invented practices, one per common kind of dictated letter, each written the
way real offices write templates, so the whole pipeline is exercised by samples:

* ``cabinet-martin/compte-rendu.docx``      French consultation report, Jinja tags
* ``cabinet-martin/courrier-confrere.docx`` French letter to a colleague, Word MERGEFIELDs
* ``maitre-dubois/lettre.docx``             French lawyer's letter, «guillemet» placeholders
* ``riverside-clinic/clinic-letter.docx``   English clinic letter, Jinja with ``{%p if %}``

All names, addresses and numbers are invented. The output is byte-for-byte
reproducible (fixed dates, fixed zip timestamps) so the committed files can be
checked against this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from docx import Document
from docx.document import Document as Doc
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor
from docx.text.paragraph import Paragraph

HERE = Path(__file__).resolve().parent
FIXED_TIME = dt.datetime(2025, 1, 1, 9, 0, 0)
ACCENT = RGBColor(0x1F, 0x3A, 0x5F)
GREY = RGBColor(0x59, 0x59, 0x59)


# ---------------------------------------------------------------- building blocks


def new_document(language: str, title: str, author: str) -> Doc:
    """A4, 2.2 cm margins, Arial 10.5 pt, and a "Letter Body" paragraph style."""
    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Cm(21), Cm(29.7)
    section.left_margin = section.right_margin = Cm(2.2)
    section.top_margin, section.bottom_margin = Cm(1.6), Cm(1.8)
    section.header_distance, section.footer_distance = Cm(0.9), Cm(0.9)
    normal = document.styles["Normal"]
    normal.font.name, normal.font.size = "Arial", Pt(10.5)
    normal.paragraph_format.space_after = Pt(0)
    _set_language(normal, language)
    body = document.styles.add_style("Letter Body", WD_STYLE_TYPE.PARAGRAPH)
    body.base_style = normal
    # Left, not justified: a justified line ending in a line break is stretched.
    body.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.LEFT
    body.paragraph_format.space_after = Pt(8)
    body.paragraph_format.line_spacing = 1.15
    props = document.core_properties
    props.title, props.author, props.language = title, author, language
    props.created = props.modified = props.last_printed = FIXED_TIME
    props.revision = 1
    return document


def _set_language(style: object, language: str) -> None:
    rpr = style.element.get_or_add_rPr()  # type: ignore[attr-defined]
    lang = OxmlElement("w:lang")
    lang.set(qn("w:val"), language)
    rpr.append(lang)


def add_runs(paragraph: Paragraph, *parts: str | tuple[str, str]) -> Paragraph:
    """Text pieces; a (text, "b"/"i"/"bi") tuple sets bold and/or italic."""
    for part in parts:
        text, flags = (part, "") if isinstance(part, str) else part
        run = paragraph.add_run(text)
        run.bold = "b" in flags or None
        run.italic = "i" in flags or None
    return paragraph


def add_field(paragraph: Paragraph, instruction: str, shown: str, *, bold: bool = False) -> None:
    """A Word complex field (begin / instrText / separate / result / end)."""

    def run_with(child: OxmlElement) -> None:
        run = paragraph.add_run()
        run.bold = bold or None
        run._r.append(child)

    begin = OxmlElement("w:fldChar")
    begin.set(qn("w:fldCharType"), "begin")
    run_with(begin)
    instr = OxmlElement("w:instrText")
    instr.set(qn("xml:space"), "preserve")
    instr.text = f" {instruction} "
    run_with(instr)
    separate = OxmlElement("w:fldChar")
    separate.set(qn("w:fldCharType"), "separate")
    run_with(separate)
    paragraph.add_run(shown).bold = bold or None
    end = OxmlElement("w:fldChar")
    end.set(qn("w:fldCharType"), "end")
    run_with(end)


def border_below(paragraph: Paragraph, color: str = "1F3A5F") -> None:
    ppr = paragraph._p.get_or_add_pPr()
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, value in (("val", "single"), ("sz", "8"), ("space", "4"), ("color", color)):
        bottom.set(qn(f"w:{key}"), value)
    borders.append(bottom)
    ppr.append(borders)


def letterhead(document: Doc, name: str, lines: Sequence[str]) -> None:
    """Practice name, qualifications and address in the header, ruled below."""
    header = document.sections[0].header
    first = header.paragraphs[0]
    run = first.add_run(name)
    run.bold, run.font.size, run.font.color.rgb = True, Pt(15), ACCENT
    for index, line in enumerate(lines):
        paragraph = header.add_paragraph()
        run = paragraph.add_run(line)
        run.font.size, run.font.color.rgb = Pt(8.5), GREY
        if index == len(lines) - 1:
            border_below(paragraph)


def footer(
    document: Doc,
    text_parts: Sequence[str | Callable[[Paragraph], None]],
    page_word: str,
    of_word: str,
) -> None:
    """A small centred confidentiality line and "Page X / Y"."""
    paragraph = document.sections[0].footer.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    for part in text_parts:
        if callable(part):
            part(paragraph)
        else:
            paragraph.add_run(part)
    paragraph.add_run(f" — {page_word} ")
    add_field(paragraph, "PAGE", "1")
    paragraph.add_run(f" {of_word} ")
    add_field(paragraph, "NUMPAGES", "1")
    for run in paragraph.runs:
        run.font.size, run.font.color.rgb = Pt(7.5), GREY


def spacer(document: Doc, points: int = 6) -> None:
    document.add_paragraph().paragraph_format.space_after = Pt(points)


def details_table(document: Doc, rows: Sequence[tuple[str, str]]) -> None:
    """Label/value table, labels shaded, values as given (placeholders)."""
    table = document.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for label, value in rows:
        cells = table.add_row().cells
        cells[0].width, cells[1].width = Cm(5), Cm(11.6)
        add_runs(cells[0].paragraphs[0], (label, "b"))
        shade = OxmlElement("w:shd")
        for key, val in (("val", "clear"), ("color", "auto"), ("fill", "E8EEF5")):
            shade.set(qn(f"w:{key}"), val)
        cells[0]._tc.get_or_add_tcPr().append(shade)
        cells[1].paragraphs[0].add_run(value)


def signature_block(document: Doc, lines: Sequence[str]) -> None:
    spacer(document, 12)
    for index, line in enumerate(lines):
        paragraph = document.add_paragraph()
        paragraph.paragraph_format.left_indent = Cm(10)
        add_runs(paragraph, (line, "b") if index == 0 else line)


def right_block(document: Doc) -> Paragraph:
    paragraph = document.add_paragraph()
    paragraph.paragraph_format.left_indent = Cm(9.5)
    return paragraph


def body_paragraph(document: Doc, fill: Callable[[Paragraph], None]) -> None:
    paragraph = document.add_paragraph(style="Letter Body")
    fill(paragraph)


# ---------------------------------------------------------------- the four samples

MARTIN_LINES = (
    "Dr Claire Martin — Cardiologue, ancienne cheffe de clinique",
    "14 rue des Tilleuls · 69006 Lyon · Tél. 04 72 00 00 00 · secretariat@cabinet-martin.example",
)


def compte_rendu() -> Doc:
    document = new_document("fr-FR", "Compte rendu de consultation", "Dr Claire Martin")
    letterhead(document, "Cabinet de Cardiologie Martin", MARTIN_LINES)
    add_runs(right_block(document), "Lyon, le {{ date }}")
    spacer(document, 10)
    title = add_runs(document.add_paragraph(), ("COMPTE RENDU DE CONSULTATION", "b"))
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    title.runs[0].font.size, title.runs[0].font.color.rgb = Pt(13), ACCENT
    spacer(document)
    details_table(
        document,
        [
            ("Patient", "{{ patient }}"),
            ("Date de naissance", "{{ date_naissance }}"),
            ("Médecin traitant", '{{ medecin_traitant|default("") }}'),
            ("Référence", "{{ reference }}"),
        ],
    )
    spacer(document, 10)
    body_paragraph(document, lambda p: add_runs(p, "{{ texte }}"))
    signature_block(document, ["Dr Claire Martin", "Cardiologue", "Signé électroniquement"])
    footer(document, ["Cabinet de Cardiologie Martin — Document médical confidentiel"], "Page", "/")
    return document


def courrier_confrere() -> Doc:
    document = new_document("fr-FR", "Courrier au confrère", "Dr Claire Martin")
    letterhead(document, "Cabinet de Cardiologie Martin", MARTIN_LINES)
    add_field(right_block(document), 'MERGEFIELD "Destinataire"', "«Destinataire»", bold=True)
    add_field(
        right_block(document),
        'MERGEFIELD "Adresse destinataire" \\* MERGEFORMAT',
        "«Adresse destinataire»",
    )
    spacer(document, 10)
    dated = right_block(document)
    dated.add_run("Lyon, le ")
    add_field(dated, "MERGEFIELD Date", "«Date»")
    spacer(document, 10)
    subject = add_runs(document.add_paragraph(), ("Objet : ", "b"))
    add_field(subject, "MERGEFIELD Objet", "«Objet»")
    patient = add_runs(document.add_paragraph(), ("Patient : ", "b"))
    add_field(patient, 'MERGEFIELD "Patient"', "«Patient»", bold=True)
    spacer(document, 10)
    add_runs(document.add_paragraph(), "Cher confrère,")
    spacer(document, 4)
    body_paragraph(document, lambda p: add_field(p, "MERGEFIELD Texte", "«Texte»"))
    add_runs(
        document.add_paragraph(style="Letter Body"),
        "Je vous prie de croire, cher confrère, à l’assurance de mes sentiments confraternels.",
    )
    signature_block(document, ["Dr Claire Martin", "Cardiologue"])
    spacer(document, 8)
    copy = add_runs(document.add_paragraph(), ("Copie : ", "i"))
    add_field(copy, 'MERGEFIELD "Copie?"', "«Copie?»")
    footer(document, ["Cabinet de Cardiologie Martin — Courrier médical confidentiel"], "Page", "/")
    return document


def lettre_avocat() -> Doc:
    document = new_document("fr-FR", "Lettre", "Maître Hélène Dubois")
    letterhead(
        document,
        "Maître Hélène Dubois",
        (
            "Avocate au Barreau de Bordeaux — Droit de la famille et droit du travail",
            "8 cours de l’Intendance · 33000 Bordeaux · Tél. 05 56 00 00 00"
            " · cabinet@dubois-avocat.example",
        ),
    )
    add_runs(right_block(document), ("«Destinataire»", "b"))
    add_runs(right_block(document), "«Adresse»")
    spacer(document, 10)
    add_runs(right_block(document), "Bordeaux, le «Date»")
    spacer(document, 10)
    add_runs(document.add_paragraph(), ("N/Réf. : ", "b"), "«Référence dossier»")
    add_runs(document.add_paragraph(), ("V/Réf. : ", "b"), "«Votre référence ?»")
    add_runs(document.add_paragraph(), ("Objet : ", "b"), ("«Objet»", "b"))
    spacer(document, 10)
    add_runs(document.add_paragraph(), "«Formule d’appel»,")
    spacer(document, 4)
    body_paragraph(document, lambda p: add_runs(p, "«Texte»"))
    add_runs(
        document.add_paragraph(style="Letter Body"),
        "Je vous prie d’agréer, «Formule d’appel», l’expression de mes salutations distinguées.",
    )
    signature_block(document, ["Hélène Dubois", "Avocate"])
    footer(
        document,
        ["Maître Hélène Dubois — Membre d’une association agréée — Dossier «Référence dossier»"],
        "Page",
        "/",
    )
    return document


def clinic_letter() -> Doc:
    document = new_document("en-GB", "Clinic letter", "Dr Samuel Okafor")
    letterhead(
        document,
        "Riverside Clinic",
        (
            "Department of General Medicine",
            "2 Riverside Walk · Exeter EX1 0AA · Tel. 01392 000000"
            " · letters@riverside-clinic.example",
        ),
    )
    add_runs(document.add_paragraph(), ("{{ recipient }}", "b"))
    add_runs(document.add_paragraph(), "{{ recipient_address }}")
    spacer(document, 10)
    add_runs(right_block(document), "{{ date }}")
    spacer(document, 8)
    details_table(
        document,
        [
            ("Patient", "{{ patient }}"),
            ("Date of birth", "{{ dob }}"),
            ("Hospital number", "{{ hospital_number }}"),
            ("Clinic date", "{{ clinic_date }}"),
        ],
    )
    spacer(document, 10)
    add_runs(document.add_paragraph(), "Dear {{ salutation }},")
    spacer(document, 4)
    body_paragraph(document, lambda p: add_runs(p, "{{ body }}"))
    add_runs(document.add_paragraph(), "Yours sincerely,")
    signature_block(document, ["Dr Samuel Okafor", "Consultant Physician"])
    spacer(document, 8)
    document.add_paragraph("{%p if cc %}")
    add_runs(document.add_paragraph(), ("cc: ", "i"), "{{ cc }}")
    document.add_paragraph("{%p endif %}")
    footer(document, ["Riverside Clinic — Confidential patient information"], "Page", "of")
    return document


SAMPLES: dict[str, Callable[[], Doc]] = {
    "cabinet-martin/compte-rendu.docx": compte_rendu,
    "cabinet-martin/courrier-confrere.docx": courrier_confrere,
    "maitre-dubois/lettre.docx": lettre_avocat,
    "riverside-clinic/clinic-letter.docx": clinic_letter,
}


def reproducible_bytes(document: Doc) -> bytes:
    """python-docx stamps the zip entries with the current time: fix it."""
    raw = io.BytesIO()
    document.save(raw)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in sorted(source.infolist(), key=lambda i: i.filename != "[Content_Types].xml"):
            fixed = zipfile.ZipInfo(info.filename, date_time=(2025, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def build(destination: Path) -> list[Path]:
    """Write every sample under ``destination`` (``templates/`` by default)."""
    written = []
    for relative, make in SAMPLES.items():
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(reproducible_bytes(make()))
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="destination folder")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
