"""Fill a client's DOCX template with the approved text and the letter's fields.

The dictated body is not pasted into the XML: it is passed to docxtpl as a value
(escaped, never evaluated as Jinja, so a dictated ``{{`` stays text). Paragraph
breaks become docxtpl's ``\\a`` marker, which docxtpl turns into new paragraphs that
copy the placeholder paragraph's properties and the placeholder run's formatting;
single new lines become line breaks. That keeps the template's style, bold and
italic without hand-written paragraph XML.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2
from docxtpl import DocxTemplate
from lxml import etree

from transcribe.documents.fields import TemplateFields, analyse_docx, jinja_environment
from transcribe.documents.options import DocumentMetadata, RenderOptions
from transcribe.documents.placeholders import W, field_key, normalise_docx
from transcribe.errors import RenderError

# XML 1.0 forbids most C0 controls; \a and \f mean paragraph/page to docxtpl.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_LINES = re.compile(r"\n[ \t\u00a0]*\n\s*")

_MONTHS = {
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "en": "January February March April May June July August September October November December",
}


@dataclass(frozen=True)
class FilledDocument:
    """The filled DOCX and what went into it."""

    docx: bytes
    fields: TemplateFields
    unknown_fields: tuple[str, ...]


def clean_value(value: str) -> str:
    """One line-ending convention and no characters Word XML cannot hold."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def body_value(text: str) -> str:
    """``\\n\\n`` (or more) separates paragraphs, ``\\n`` breaks a line."""
    paragraphs = [p.strip("\n") for p in _BLANK_LINES.split(clean_value(text).strip())]
    kept = ["\n".join(line.rstrip() for line in p.split("\n")) for p in paragraphs if p.strip()]
    if not kept:
        raise RenderError("the approved text is empty")
    return "\a".join(kept)


def format_date(day: dt.date, language: str) -> str:
    """A letter date as a secretary writes it: ``1er mars 2025`` / ``1 March 2025``."""
    lang = language.split("-")[0].lower()
    months = _MONTHS.get(lang, _MONTHS["en"]).split()
    number = "1er" if lang == "fr" and day.day == 1 else str(day.day)
    return f"{number} {months[day.month - 1]} {day.year}"


def build_context(
    fields_found: TemplateFields,
    text: str,
    values: Mapping[str, str],
    metadata: DocumentMetadata,
) -> dict[str, str]:
    """Map the caller's keys onto the template's names, whatever their spelling."""
    by_key = {field_key(name): clean_value(str(value)) for name, value in values.items()}
    context: dict[str, str] = {}
    for name in fields_found.names:
        if name in values:
            context[name] = clean_value(str(values[name]))
        elif field_key(name) in by_key:
            context[name] = by_key[field_key(name)]
        elif field_key(name) == "date":
            context[name] = format_date(metadata.date or dt.date.today(), metadata.language)
        elif name in fields_found.optional:
            context[name] = ""
    if fields_found.body_field is not None:
        context[fields_found.body_field] = body_value(text)
    return context


def fill_template(
    template: bytes,
    text: str,
    values: Mapping[str, str],
    *,
    metadata: DocumentMetadata,
    options: RenderOptions,
) -> FilledDocument:
    """Normalise placeholders, check fields, render with docxtpl, set properties."""
    normalised = normalise_docx(template)
    found = analyse_docx(normalised, options.body_fields)
    if found.problems:
        raise RenderError(f"template cannot be filled: {'; '.join(found.problems)}")
    missing = found.missing(values)
    if missing:
        raise RenderError(f"missing required field(s): {', '.join(missing)}")
    document = DocxTemplate(io.BytesIO(normalised))
    try:
        document.render(build_context(found, text, values, metadata), jinja_environment())
    except jinja2.TemplateError as exc:
        raise RenderError(f"template rendering failed: {exc}") from exc
    _set_properties(document, metadata)
    buffer = io.BytesIO()
    document.save(buffer)
    return FilledDocument(buffer.getvalue(), found, found.unknown(values))


def _set_properties(document: DocxTemplate, metadata: DocumentMetadata) -> None:
    """LibreOffice copies these into both the PDF Info dictionary and its XMP
    packet, which PDF/A requires to agree; setting them here keeps them agreeing."""
    props = document.docx.core_properties
    props.title = metadata.title
    props.author = metadata.author
    props.subject = metadata.subject or ""
    props.keywords = ", ".join(metadata.keywords)
    props.language = metadata.language
    props.identifier = metadata.job_id or ""
    props.comments = f"job {metadata.job_id}" if metadata.job_id else ""
    _set_default_language(document, metadata.language)


def _set_default_language(document: DocxTemplate, language: str) -> None:
    """The default run language becomes the PDF's ``/Lang``."""
    styles = document.docx.styles.element
    defaults = styles.find(f"{W}docDefaults")
    if defaults is None:
        defaults = etree.SubElement(styles, f"{W}docDefaults")
        styles.insert(0, defaults)
    run_default = defaults.find(f"{W}rPrDefault")
    if run_default is None:
        run_default = etree.SubElement(defaults, f"{W}rPrDefault")
    run_props = run_default.find(f"{W}rPr")
    if run_props is None:
        run_props = etree.SubElement(run_default, f"{W}rPr")
    lang = run_props.find(f"{W}lang")
    if lang is None:
        lang = etree.SubElement(run_props, f"{W}lang")
    lang.set(f"{W}val", language)
