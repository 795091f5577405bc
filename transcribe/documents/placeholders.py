"""Turn the three ways offices write placeholders into one: docxtpl's Jinja tags.

Real letterheads come with ``{{ patient }}`` (docxtpl), Word ``MERGEFIELD`` fields
(mail merge), or «Nom du patient» typed with French guillemets. Rather than fill
three syntaxes, every DOCX part is rewritten once so that MERGEFIELDs and «…» become
``{{ nom_du_patient }}`` in a single run that keeps the formatting of the run where
the placeholder started; docxtpl then renders one syntax everywhere (body, tables,
text boxes, headers, footers, footnotes). Word splits typed text across runs at will
(spell-check marks, revision ids, a bold letter), so matching works on the text of a
whole paragraph and the runs are spliced afterwards.

Optional fields: a trailing ``?`` in a «…» label or a MERGEFIELD name («Copie à ?»,
``MERGEFIELD "Copie?"``) becomes ``{{ copie_a|default("") }}``, which the field
analysis reads as optional, like any Jinja ``default`` filter or ``{% if %}`` test.
"""

from __future__ import annotations

import copy
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable

from lxml import etree

from transcribe.errors import RenderError

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
W = f"{{{W_NS}}}"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"

#: Parts docxtpl renders; endnotes and comments are not rendered by docxtpl.
RENDERED_PART = re.compile(r"^word/(document|header\d*|footer\d*|footnotes)\.xml$")

_SPACES = "\u00a0\u202f\u2009 \t"
GUILLEMET = re.compile(r"«[" + _SPACES + r"]*([^«»{}%<>\n]{1,80}?)[" + _SPACES + r"]*»")
MERGEFIELD = re.compile(r'^\s*MERGEFIELD\s+(?:"([^"]+)"|(\S+))', re.IGNORECASE)

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)


def field_key(label: str) -> str:
    """The canonical field name: «Nom du patient» and ``NomDuPatient``-ish labels
    must meet the keys a secretary types (``nom_du_patient``), whatever the accents,
    case or spacing."""
    text = unicodedata.normalize("NFKD", label.strip().rstrip("?").strip())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    key = re.sub(r"[^0-9a-z]+", "_", text).strip("_")
    if not key:
        raise RenderError(f"placeholder {label!r} has no usable name")
    return f"f_{key}" if key[0].isdigit() else key


def jinja_tag(label: str) -> str:
    """The Jinja tag for a «…» or MERGEFIELD label; a trailing ``?`` means optional."""
    key = field_key(label)
    if label.strip().endswith("?"):
        return f'{{{{ {key}|default("") }}}}'
    return f"{{{{ {key} }}}}"


def normalise_docx(data: bytes) -> bytes:
    """Rewrite every rendered part of a DOCX so only Jinja placeholders remain."""
    try:
        source = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise RenderError("template is not a DOCX (zip) file") from exc
    out = io.BytesIO()
    with source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            payload = source.read(info)
            if RENDERED_PART.match(info.filename):
                payload = normalise_part(payload)
            target.writestr(info, payload)
    return out.getvalue()


def normalise_part(xml: bytes) -> bytes:
    """Convert MERGEFIELDs first (their «Nom» result text would otherwise be taken
    for a guillemet placeholder), then «…» labels, paragraph by paragraph."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise RenderError(f"template part is not valid XML: {exc}") from exc
    _convert_simple_fields(root)
    for paragraph in list(root.iter(f"{W}p")):
        _convert_complex_fields(paragraph)
        replace_in_paragraph(paragraph, GUILLEMET, lambda m: jinja_tag(m.group(1)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def own_text_nodes(paragraph: etree._Element) -> list[etree._Element]:
    """The ``w:t`` of this paragraph, not those of a text box anchored in it."""
    return [
        node
        for node in paragraph.iter(f"{W}t")
        if next(node.iterancestors(f"{W}p"), None) is paragraph
    ]


def replace_in_paragraph(
    paragraph: etree._Element,
    pattern: re.Pattern[str],
    make: Callable[[re.Match[str]], str],
) -> int:
    """Replace matches of ``pattern`` in the paragraph's text, even across runs.

    The replacement goes into the run where the match starts (so its bold/italic
    stay); the rest of the match is cut out of the following runs. Matches are
    handled right to left so earlier offsets stay valid.
    """
    nodes = own_text_nodes(paragraph)
    text = "".join(node.text or "" for node in nodes)
    matches = list(pattern.finditer(text))
    for match in reversed(matches):
        _splice(nodes, match.start(), match.end(), make(match))
    return len(matches)


def _splice(nodes: list[etree._Element], start: int, end: int, replacement: str) -> None:
    offset = 0
    first = True
    for node in nodes:
        text = node.text or ""
        lo, hi = offset, offset + len(text)
        offset = hi
        if hi <= start or lo >= end:
            continue
        head = text[: max(start - lo, 0)] if first else ""
        tail = text[end - lo :] if end < hi else ""
        node.text = head + (replacement if first else "") + tail
        node.set(XML_SPACE, "preserve")
        first = False


def _convert_simple_fields(root: etree._Element) -> None:
    """``<w:fldSimple w:instr="MERGEFIELD x">`` becomes one formatted run."""
    for simple in list(root.iter(f"{W}fldSimple")):
        match = MERGEFIELD.match(simple.get(f"{W}instr", ""))
        if not match:
            continue
        label = match.group(1) or match.group(2)
        template_run = simple.find(f"{W}r")
        simple.addprevious(_make_run(template_run, jinja_tag(label)))
        simple.getparent().remove(simple)


def _convert_complex_fields(paragraph: etree._Element) -> None:
    """``fldChar begin / instrText MERGEFIELD / separate / result / end`` runs
    become one run; nested or unterminated fields are left alone."""
    runs = [child for child in paragraph if child.tag == f"{W}r"]
    index = 0
    while index < len(runs):
        if _fld_char(runs[index]) != "begin":
            index += 1
            continue
        span = _field_span(runs, index)
        if span is None:
            index += 1
            continue
        end, instr, result = span
        match = MERGEFIELD.match(instr)
        if match:
            label = match.group(1) or match.group(2)
            template_run = next((r for r in result if r.find(f"{W}t") is not None), None)
            runs[index].addprevious(_make_run(template_run, jinja_tag(label)))
            for run in runs[index : end + 1]:
                paragraph.remove(run)
        index = end + 1


def _field_span(
    runs: list[etree._Element], begin: int
) -> tuple[int, str, list[etree._Element]] | None:
    instr: list[str] = []
    result: list[etree._Element] = []
    in_result = False
    for position in range(begin + 1, len(runs)):
        kind = _fld_char(runs[position])
        if kind == "begin":
            return None
        if kind == "end":
            return position, "".join(instr), result
        if kind == "separate":
            in_result = True
        elif in_result:
            result.append(runs[position])
        else:
            instr.extend(node.text or "" for node in runs[position].iter(f"{W}instrText"))
    return None


def _fld_char(run: etree._Element) -> str | None:
    char = run.find(f"{W}fldChar")
    return None if char is None else char.get(f"{W}fldCharType")


def _make_run(template_run: etree._Element | None, text: str) -> etree._Element:
    run = etree.Element(f"{W}r")
    if template_run is not None:
        properties = template_run.find(f"{W}rPr")
        if properties is not None:
            run.append(copy.deepcopy(properties))
    node = etree.SubElement(run, f"{W}t")
    node.text = text
    node.set(XML_SPACE, "preserve")
    return run


def part_texts(data: bytes) -> Iterable[tuple[str, str]]:
    """(part name, plain text) of each rendered part, for diagnostics and tests."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if RENDERED_PART.match(name):
                root = etree.fromstring(archive.read(name), _PARSER)
                lines = (
                    "".join(t.text or "" for t in own_text_nodes(p)) for p in root.iter(f"{W}p")
                )
                yield name, "\n".join(lines)
