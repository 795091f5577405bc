"""Shipped lexicons and the loader for client and author lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcribe.errors import ConfigError
from transcribe.vocabulary import (
    Term,
    TermSource,
    load_vocabulary,
    parse_lexicon,
    shipped_lexicon,
)

SHIPPED = [("medical", "fr"), ("medical", "en"), ("legal", "fr"), ("legal", "en")]


@pytest.mark.parametrize(("domain", "lang"), SHIPPED)
def test_shipped_lexicon_has_several_hundred_unique_terms(domain: str, lang: str) -> None:
    entries = shipped_lexicon(domain, lang)
    unique = {" ".join(e.text.casefold().split()) for e in entries}
    assert len(unique) >= 300
    assert len(unique) == len(entries), "a shipped lexicon lists a term twice"
    assert all(1 <= e.weight <= 5 and e.category for e in entries)


@pytest.mark.parametrize(
    ("domain", "lang", "expected"),
    [
        ("medical", "fr", {"bisoprolol", "apixaban", "furosémide", "metformine", "FEVG", "IRM"}),
        ("medical", "en", {"bisoprolol", "apixaban", "furosemide", "HbA1c", "ECG"}),
        ("legal", "fr", {"assignation", "référé", "bail commercial", "prud'hommes", "notaire"}),
        ("legal", "en", {"claimant", "without prejudice", "letter before action", "probate"}),
    ],
)
def test_shipped_lexicon_contains_core_terms(domain: str, lang: str, expected: set[str]) -> None:
    assert expected <= {e.text for e in shipped_lexicon(domain, lang)}


def test_general_domain_has_no_shipped_terms() -> None:
    assert len(load_vocabulary("general", "fr")) == 0


def test_parse_format_sections_weights_and_comments() -> None:
    entries = parse_lexicon("# comment\n\n[drugs]\nbisoprolol | 3\n  apixaban  \n[other]\nx  y\n")
    assert [(e.text, e.weight, e.category) for e in entries] == [
        ("bisoprolol", 3, "drugs"),
        ("apixaban", 1, "drugs"),
        ("x y", 1, "other"),
    ]


@pytest.mark.parametrize("bad", ["term | heavy", "term | 9", " | 2"])
def test_parse_rejects_bad_lines_with_location(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"client\.txt:2"):
        parse_lexicon(f"ok\n{bad}\n", origin="client.txt")


def test_unknown_domain_or_language_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="domain"):
        load_vocabulary("dental", "fr")
    with pytest.raises(ConfigError, match="language"):
        load_vocabulary("medical", "de")


def test_inline_and_file_lists_rank_author_learned_client_domain(tmp_path: Path) -> None:
    (tmp_path / "client.txt").write_text("Clinique du Parc\nbisoprolol\n", encoding="utf-8")
    vocab = load_vocabulary(
        "medical",
        "fr",
        client_terms="client.txt",
        author_terms=["Dr Lefèvre"],
        learned_terms=["Pr Benhamou"],
        base_dir=tmp_path,
    )
    assert vocab.texts()[:4] == ["Dr Lefèvre", "Pr Benhamou", "Clinique du Parc", "bisoprolol"]
    assert vocab.terms[3] == Term("bisoprolol", TermSource.CLIENT)
    assert "bisoprolol" not in [t.text for t in vocab.from_source(TermSource.DOMAIN)]


def test_domain_terms_are_ranked_by_weight() -> None:
    weights = [t.weight for t in load_vocabulary("legal", "en")]
    assert weights == sorted(weights, reverse=True)


def test_missing_client_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_vocabulary("legal", "fr", client_terms=tmp_path / "absent.txt")


def test_non_utf8_client_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("fémur\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_vocabulary("medical", "fr", author_terms=path)
