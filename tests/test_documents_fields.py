"""Templates: placeholder styles, split runs, headers/footers/tables/text boxes,
body paragraphs, required/optional fields and ``templates check`` (no LibreOffice)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import json
import zipfile
from pathlib import Path

import docx
import pytest
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import qn
from lxml import etree

from transcribe.documents import (
    DocumentMetadata,
    RenderOptions,
    check_templates,
    field_key,
    template_fields,
    templates_json,
)
from transcribe.documents.fields import analyse_docx
from transcribe.documents.fill import body_value, fill_template, format_date
from transcribe.documents.placeholders import W, normalise_docx, part_texts
from transcribe.errors import ConfigError, RenderError

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
META = DocumentMetadata(title="Essai", author="Dr Test", date=dt.date(2025, 3, 1))
OPTIONS = RenderOptions()


def to_bytes(document: docx.document.Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def fill(data: bytes, text: str = "Corps.", **values: str) -> bytes:
    return fill_template(data, text, values, metadata=META, options=OPTIONS).docx


def texts(data: bytes) -> dict[str, str]:
    return dict(part_texts(data))


def xml_of(data: bytes, part: str = "word/document.xml") -> etree._Element:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return etree.fromstring(archive.read(part))


def add_split(paragraph, pieces: list[tuple[str, str]]) -> None:
    for text, flags in pieces:
        run = paragraph.add_run(text)
        run.bold = "b" in flags or None
        run.italic = "i" in flags or None


def add_complex_mergefield(paragraph, instr_pieces: list[str], shown: str) -> None:
    def run_with(child) -> None:
        paragraph.add_run()._r.append(child)

    begin = OxmlElement("w:fldChar")
    begin.set(qn("w:fldCharType"), "begin")
    run_with(begin)
    for piece in instr_pieces:
        instr = OxmlElement("w:instrText")
        instr.text = piece
        run_with(instr)
    sep = OxmlElement("w:fldChar")
    sep.set(qn("w:fldCharType"), "separate")
    run_with(sep)
    paragraph.add_run(shown).bold = True
    end = OxmlElement("w:fldChar")
    end.set(qn("w:fldCharType"), "end")
    run_with(end)


SPLIT_STYLES = {
    "jinja": [("{{ pat", "b"), ("ie", "i"), ("nt }}", "")],
    "guillemets": [("«Nom du ", "b"), ("pat", "i"), ("ient»", "")],
}


@pytest.mark.parametrize("style", sorted(SPLIT_STYLES))
def test_placeholder_split_across_three_runs_fills_and_keeps_first_run_format(style: str) -> None:
    document = docx.Document()
    add_split(document.add_paragraph("Patient : "), SPLIT_STYLES[style])
    document.add_paragraph("{{ body }}")
    value = "Mme Zoé Ďurand"
    filled = fill(to_bytes(document), patient=value, nom_du_patient=value)
    assert texts(filled)["word/document.xml"].splitlines()[0] == f"Patient : {value}"
    run = next(r for r in xml_of(filled).iter(f"{W}r") if value in "".join(r.itertext()))
    assert run.find(f"{W}rPr/{W}b") is not None, "bold of the placeholder's first run is kept"


def test_mergefield_with_instruction_split_across_three_runs() -> None:
    document = docx.Document()
    paragraph = document.add_paragraph("Destinataire : ")
    add_complex_mergefield(
        paragraph, [" MERGE", 'FIELD "Nom du ', 'médecin" \\* MERGEFORMAT '], "«Nom du médecin»"
    )
    document.add_paragraph("{{ texte }}")
    filled = fill(to_bytes(document), nom_du_medecin="Dr Lefèvre")
    assert texts(filled)["word/document.xml"].splitlines()[0] == "Destinataire : Dr Lefèvre"
    assert b"MERGEFIELD" not in zipfile.ZipFile(io.BytesIO(filled)).read("word/document.xml")


def test_simple_mergefield_is_converted() -> None:
    document = docx.Document()
    paragraph = document.add_paragraph("Ville : ")
    simple = parse_xml(
        f'<w:fldSimple xmlns:w="{W[1:-1]}" w:instr=" MERGEFIELD Ville "><w:r><w:rPr><w:i/></w:rPr>'
        "<w:t>«Ville»</w:t></w:r></w:fldSimple>"
    )
    paragraph._p.append(simple)
    document.add_paragraph("«Texte»")
    filled = fill(to_bytes(document), ville="Saint-Étienne")
    assert "Ville : Saint-Étienne" in texts(filled)["word/document.xml"]


def test_placeholders_in_header_footer_table_and_text_box() -> None:
    document = docx.Document()
    section = document.sections[0]
    add_split(section.header.paragraphs[0], [("Réf. «Réf", ""), ("érence", "b"), (" dossier»", "")])
    add_split(
        section.footer.paragraphs[0],
        [("Patient : {{ pati", ""), ("ent }}", "b"), (" — confidentiel", "")],
    )
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "Né(e) le"
    table.cell(0, 1).text = "{{ date_naissance }}"
    anchor = document.add_paragraph("Avant la boîte ")
    anchor._p.append(
        parse_xml(
            f'<w:r xmlns:w="{W[1:-1]}" xmlns:v="urn:schemas-microsoft-com:vml"><w:pict>'
            '<v:shape style="width:120pt;height:40pt"><v:textbox><w:txbxContent>'
            "<w:p><w:r><w:t>Ville : «Vil</w:t></w:r><w:r><w:t>le»</w:t></w:r></w:p>"
            "</w:txbxContent></v:textbox></v:shape></w:pict></w:r>"
        )
    )
    document.add_paragraph("{{ body }}")
    filled = fill(
        to_bytes(document),
        reference_dossier="D-2025/117",
        patient="M. Ölund",
        date_naissance="01/02/1960",
        ville="Nîmes",
    )
    parts = texts(filled)
    assert "Réf. D-2025/117" in next(v for k, v in parts.items() if "header" in k)
    assert "Patient : M. Ölund — confidentiel" in next(v for k, v in parts.items() if "footer" in k)
    body = parts["word/document.xml"]
    assert "01/02/1960" in body and "Ville : Nîmes" in body
    assert "Avant la boîte" in body and "«" not in body and "{{" not in body


def test_body_becomes_paragraphs_in_placeholder_style_with_line_breaks() -> None:
    document = docx.Document()
    paragraph = document.add_paragraph(style="Quote")
    add_split(paragraph, [("{{ bo", "i"), ("dy }}", "")])
    document.add_paragraph("Fin de lettre.")
    text = "Premier paragraphe,\nligne deux.\n\n\nDeuxième « paragraphe » (fin).\r\n\r\nTroisième."
    filled = fill(to_bytes(document), text)
    paragraphs = [p for p in xml_of(filled).iter(f"{W}p") if "".join(p.itertext()).strip()]
    bodies = paragraphs[:3]
    assert ["".join(p.itertext()) for p in bodies] == [
        "Premier paragraphe,ligne deux.",
        "Deuxième « paragraphe » (fin).",
        "Troisième.",
    ]
    for p in bodies:
        assert p.find(f"{W}pPr/{W}pStyle").get(f"{W}val") == "Quote"
        assert all(r.find(f"{W}rPr/{W}i") is not None for r in p.iter(f"{W}r"))
    assert len(list(bodies[0].iter(f"{W}br"))) == 1
    assert "".join(paragraphs[3].itertext()) == "Fin de lettre."


def test_dictated_text_and_values_are_data_not_template_code() -> None:
    document = docx.Document()
    document.add_paragraph("{{ patient }}")
    document.add_paragraph("{{ body }}")
    filled = fill(to_bytes(document), "Dose {{ 7*7 }} <b>&amp; {% if x %}", patient="A & B <C>")
    body = texts(filled)["word/document.xml"]
    assert "A & B <C>" in body and "Dose {{ 7*7 }} <b>&amp; {% if x %}" in body


def test_missing_required_field_fails_before_rendering() -> None:
    document = docx.Document()
    document.add_paragraph("{{ patient }} {{ reference }}")
    document.add_paragraph("«Texte»")
    with pytest.raises(RenderError, match=r"missing required field.*reference"):
        fill(to_bytes(document), patient="X")


def test_template_without_body_placeholder_is_rejected() -> None:
    document = docx.Document()
    document.add_paragraph("{{ patient }}")
    with pytest.raises(RenderError, match="no body placeholder"):
        fill(to_bytes(document), patient="X")


def test_optional_markers_in_every_style() -> None:
    document = docx.Document()
    document.add_paragraph('{{ cc|default("") }} «Copie à ?» {{ date }}')
    document.add_paragraph("{% if service %}Service {{ service }}{% endif %} {{ patient }}")
    add_complex_mergefield(document.add_paragraph(), [' MERGEFIELD "Pièces jointes?" '], "«PJ»")
    document.add_paragraph("{{ body }}")
    fields = analyse_docx(normalise_docx(to_bytes(document)))
    assert fields.required == ("body", "patient")
    assert fields.optional == ("cc", "copie_a", "date", "pieces_jointes", "service")
    assert fields.body_field == "body"
    filled = fill(to_bytes(document), patient="P")
    first = texts(filled)["word/document.xml"].splitlines()[0]
    assert first.strip() == "1er mars 2025"


def test_missing_and_unknown_are_reported_by_spelling_insensitive_keys() -> None:
    fields = template_fields(TEMPLATES / "maitre-dubois" / "lettre.docx")
    given = {"Destinataire": "x", "Référence dossier": "y", "Priorité": "z"}
    assert "destinataire" not in fields.missing(given)
    assert "reference_dossier" not in fields.missing(given)
    assert "objet" in fields.missing(given)
    assert "texte" not in fields.missing(given), "the body comes from the approved text"
    assert fields.unknown(given) == ("Priorité",)


def test_field_key_and_dates() -> None:
    assert field_key("Nom du patient") == "nom_du_patient"
    assert field_key(" Référence  dossier ? ") == "reference_dossier"
    assert field_key("Formule d’appel") == "formule_d_appel"
    assert field_key("2e adresse") == "f_2e_adresse"
    assert format_date(dt.date(2025, 8, 14), "fr-FR") == "14 août 2025"
    assert format_date(dt.date(2025, 8, 1), "en-GB") == "1 August 2025"
    with pytest.raises(RenderError):
        body_value(" \n\n \n")


def test_check_templates_on_shipped_samples() -> None:
    report = check_templates(TEMPLATES)
    assert set(report) == {"cabinet-martin", "maitre-dubois", "riverside-clinic"}
    assert set(report["cabinet-martin"]) == {"compte-rendu", "courrier-confrere"}
    shape = json.loads(json.dumps(templates_json(report)))
    for templates in shape.values():
        for fields in templates.values():
            assert set(fields) == {"required", "optional"}
            assert "date" in fields["optional"]
    for templates in report.values():
        for fields in templates.values():
            assert fields.problems == () and fields.body_field in fields.required
    assert report["riverside-clinic"]["clinic-letter"].optional == ("cc", "date")
    assert "votre_reference" in report["maitre-dubois"]["lettre"].optional
    assert "copie" in report["cabinet-martin"]["courrier-confrere"].optional
    assert list(check_templates(TEMPLATES, "maitre-dubois")) == ["maitre-dubois"]


def test_samples_use_each_placeholder_style() -> None:
    def raw(path: str) -> str:
        with zipfile.ZipFile(TEMPLATES / path) as archive:
            return "".join(
                archive.read(n).decode() for n in archive.namelist() if n.startswith("word/")
            )

    assert "{{ texte }}" in raw("cabinet-martin/compte-rendu.docx")
    assert "MERGEFIELD" in raw("cabinet-martin/courrier-confrere.docx")
    lettre = raw("maitre-dubois/lettre.docx")
    assert "«Texte»" in lettre and "{{" not in lettre
    assert "{%p if cc %}" in raw("riverside-clinic/clinic-letter.docx")


def test_check_templates_errors_and_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        check_templates(tmp_path / "absent")
    (tmp_path / "client").mkdir()
    with pytest.raises(ConfigError, match="no templates for client"):
        check_templates(tmp_path, "other")
    document = docx.Document()
    document.add_paragraph("{{ patient ")
    document.save(tmp_path / "client" / "broken.docx")
    (tmp_path / "client" / "~$broken.docx").write_bytes(b"lock")
    (tmp_path / "client" / "not-a-docx.docx").write_bytes(b"plain text")
    report = check_templates(tmp_path)["client"]
    assert set(report) == {"broken", "not-a-docx"}
    assert "syntax error" in report["broken"].problems[0]
    assert "not a DOCX" in report["not-a-docx"].problems[0]


def test_committed_samples_match_the_script(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_samples", TEMPLATES / "make_samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in module.build(tmp_path):
        relative = path.relative_to(tmp_path)
        assert path.read_bytes() == (TEMPLATES / relative).read_bytes(), f"regenerate {relative}"


def test_literal_guillemets_can_be_written_in_a_template() -> None:
    document = docx.Document()
    document.add_paragraph('Mention {{ "«" }}urgent{{ "»" }} : {{ patient }}')
    document.add_paragraph("{{ body }}")
    assert analyse_docx(normalise_docx(to_bytes(document))).required == ("body", "patient")
    filled = fill(to_bytes(document), patient="X")
    assert texts(filled)["word/document.xml"].startswith("Mention «urgent» : X")
