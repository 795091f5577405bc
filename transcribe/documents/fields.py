"""What a template asks for: its fields, which are required, which are optional.

A field is **optional** when the template itself says what to do without it:

* Jinja: used through the ``default`` filter (``{{ cc|default("") }}``) or tested
  in an ``{% if cc %}`` / ``x if cc else y`` condition;
* «…» and MERGEFIELD: the label ends with ``?`` («Copie à ?»,
  ``MERGEFIELD "Copie?"``), which normalisation turns into a ``default`` filter.

Every other field is **required**; a render without it fails before LibreOffice is
started. ``date`` is filled automatically (in the document's language) when the
caller gives none, so it is reported as optional. The body field (``body``,
«Texte»…, see :data:`~transcribe.documents.options.DEFAULT_BODY_FIELDS`) is required
and is reported separately too, since it receives the dictated text.
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
from docxtpl import DocxTemplate
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from transcribe.documents.options import DEFAULT_BODY_FIELDS
from transcribe.documents.placeholders import RENDERED_PART, field_key, normalise_docx
from transcribe.errors import ConfigError, RenderError

AUTOMATIC_FIELDS = frozenset({"date"})
TEMPLATE_SUFFIX = ".docx"


@dataclass(frozen=True)
class TemplateFields:
    """The fields of one template, as the CLI and the review loop need them."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    body_field: str | None
    problems: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.required + self.optional

    def as_json(self) -> dict[str, list[str]]:
        """The stable ``templates check --json`` shape."""
        return {"required": list(self.required), "optional": list(self.optional)}

    def missing(self, provided: Iterable[str]) -> tuple[str, ...]:
        """Required fields (other than the body) that ``provided`` lacks."""
        given = {field_key(name) for name in provided}
        return tuple(
            name
            for name in self.required
            if name != self.body_field and field_key(name) not in given
        )

    def unknown(self, provided: Iterable[str]) -> tuple[str, ...]:
        """Provided names this template never uses (typos, another template's)."""
        known = {field_key(name) for name in self.names}
        return tuple(sorted(name for name in provided if field_key(name) not in known))


def jinja_environment() -> SandboxedEnvironment:
    """Templates come from clients: sandbox them, escape values for XML, and fail
    loudly on a field nobody filled instead of printing an empty gap."""
    return SandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined)


def jinja_source(normalised_docx: bytes) -> str:
    """All rendered parts, patched the way docxtpl patches them before Jinja."""
    patcher = DocxTemplate(io.BytesIO(normalised_docx))
    with zipfile.ZipFile(io.BytesIO(normalised_docx)) as archive:
        parts = sorted(n for n in archive.namelist() if RENDERED_PART.match(n))
        return "\n".join(patcher.patch_xml(archive.read(n).decode("utf-8")) for n in parts)


def analyse_docx(
    normalised_docx: bytes, body_fields: tuple[str, ...] = DEFAULT_BODY_FIELDS
) -> TemplateFields:
    """Fields of a normalised DOCX; syntax errors become problems, not exceptions,
    so ``templates check`` can report every broken template in one run."""
    try:
        tree = jinja_environment().parse(jinja_source(normalised_docx))
    except jinja2.TemplateSyntaxError as exc:
        return TemplateFields((), (), None, (f"template syntax error: {exc.message}",))
    names = meta.find_undeclared_variables(tree)
    optional = (
        _optional_names(tree) | {n for n in names if field_key(n) in AUTOMATIC_FIELDS}
    ) & names
    body = next((n for n in sorted(names) if field_key(n) in body_fields), None)
    optional.discard(body)
    problems = () if body else (f"no body placeholder (one of: {', '.join(body_fields)})",)
    required = names - optional
    return TemplateFields(tuple(sorted(required)), tuple(sorted(optional)), body, problems)


def _optional_names(tree: nodes.Template) -> set[str]:
    optional: set[str] = set()
    for node in tree.find_all(nodes.Filter):
        if node.name in ("default", "d") and isinstance(node.node, nodes.Name):
            optional.add(node.node.name)
    for node in tree.find_all((nodes.If, nodes.CondExpr)):
        tested = [node.test, *node.test.find_all(nodes.Name)]  # find_all skips the node itself
        optional.update(name.name for name in tested if isinstance(name, nodes.Name))
    return optional


def template_fields(
    template: Path, body_fields: tuple[str, ...] = DEFAULT_BODY_FIELDS
) -> TemplateFields:
    """Fields of one DOCX template on disk.

    Analysed again only when the file's bytes change: the service asks
    for them with every draft a secretary opens, and parsing a letterhead takes far
    longer than the rest of the request."""
    try:
        data = template.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read template {template}: {exc.strerror}") from exc
    return _analysed(data, body_fields)


@functools.lru_cache(maxsize=64)
def _analysed(data: bytes, body_fields: tuple[str, ...]) -> TemplateFields:
    try:
        return analyse_docx(normalise_docx(data), body_fields)
    except RenderError as exc:
        return TemplateFields((), (), None, (exc.message,))


def list_templates(client_dir: Path) -> list[Path]:
    """The templates of one client, ignoring Word lock files (``~$x.docx``)."""
    return sorted(
        path
        for path in client_dir.glob(f"*{TEMPLATE_SUFFIX}")
        if path.is_file() and not path.name.startswith(("~$", "."))
    )


def check_templates(
    templates_dir: Path,
    client: str | None = None,
    *,
    body_fields: tuple[str, ...] = DEFAULT_BODY_FIELDS,
) -> dict[str, dict[str, TemplateFields]]:
    """``{client: {template name: TemplateFields}}`` for one client or all of them."""
    if not templates_dir.is_dir():
        raise ConfigError(f"templates folder not found: {templates_dir}")
    if client is not None:
        client_dir = templates_dir / client
        if not client_dir.is_dir():
            raise ConfigError(f"no templates for client {client!r} in {templates_dir}")
        clients = [client_dir]
    else:
        clients = sorted(
            p for p in templates_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    return {
        folder.name: {
            path.stem: template_fields(path, body_fields) for path in list_templates(folder)
        }
        for folder in clients
    }


def templates_json(
    report: Mapping[str, Mapping[str, TemplateFields]],
) -> dict[str, dict[str, dict[str, list[str]]]]:
    """The documented JSON shape: ``{client: {template: {"required", "optional"}}}``."""
    return {
        client: {name: fields.as_json() for name, fields in templates.items()}
        for client, templates in report.items()
    }
