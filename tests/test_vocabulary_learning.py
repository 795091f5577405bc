"""Learning from secretaries' corrections: counted, scoped, applied, removable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from transcribe.errors import StoreError
from transcribe.vocabulary import (
    CorrectionPair,
    LearningOptions,
    LearningStore,
    diff_corrections,
    load_vocabulary,
)

DRAFT = "Patiente sous bisoprolol, suivie par le docteur Ben Amou pour une FA."
FIXED = "Patiente sous bisoprolol, suivie par le docteur Benhamou pour une FA."


def words(text: str, probability: float = 0.99) -> list[dict[str, Any]]:
    return [
        {"word": f" {t}", "start": float(i), "end": i + 0.9, "probability": probability}
        for i, t in enumerate(text.split())
    ]


def joined(result_words: list[dict[str, Any]]) -> str:
    return "".join(w["word"] for w in result_words).strip()


def test_diff_finds_word_aligned_replacements() -> None:
    assert diff_corrections(DRAFT, FIXED) == [CorrectionPair("Ben Amou", "Benhamou")]


def test_diff_accepts_whisper_words() -> None:
    assert diff_corrections(words(DRAFT), FIXED) == [CorrectionPair("Ben Amou", "Benhamou")]


@pytest.mark.parametrize(
    ("draft", "fixed"),
    [
        ("prendre 5 mg le soir", "prendre 10 mg le soir"),  # doses are never learnt
        ("il est venu de la ville", "il est venu du ville"),  # grammar, common words
        ("Docteur martin.", "docteur Martin"),  # case and punctuation only
        ("une deux trois quatre cinq", "six sept huit neuf dix onze"),  # too long / common
    ],
)
def test_diff_ignores_what_must_not_be_learnt(draft: str, fixed: str) -> None:
    assert diff_corrections(draft, fixed) == []


def test_rule_applies_only_after_min_count(tmp_path: Path) -> None:
    store = LearningStore(tmp_path / "learned.json")
    store.record("clinic", "dr-a", DRAFT, FIXED)
    assert joined(store.apply(words(DRAFT), "clinic", "dr-a").words) == DRAFT
    assert store.learned_terms("clinic", "dr-a") == []

    store.record("clinic", "dr-a", DRAFT, FIXED)
    result = store.apply(words(DRAFT), "clinic", "dr-a")
    assert joined(result.words) == FIXED
    fixed = next(w for w in result.words if w.get("source") == "learned")
    assert fixed["original"] == " Ben Amou"
    assert fixed["count"] == 2
    assert fixed["probability"] == 0.99  # confident words too: the secretaries decided
    assert store.learned_terms("clinic", "dr-a") == ["Benhamou"]


def test_rules_are_scoped_to_client_and_author(tmp_path: Path) -> None:
    store = LearningStore(tmp_path / "learned.json")
    for _ in range(2):
        store.record("clinic", "dr-a", DRAFT, FIXED)
    assert joined(store.apply(words(DRAFT), "other-clinic", "dr-a").words) == DRAFT
    assert joined(store.apply(words(DRAFT), "clinic", "dr-b").words) == DRAFT
    assert joined(store.apply(words(DRAFT), "clinic", None).words) == DRAFT


def test_sharing_across_authors_sums_counts(tmp_path: Path) -> None:
    options = LearningOptions(share_across_authors=True)
    store = LearningStore(tmp_path / "learned.json", options=options)
    store.record("clinic", "dr-a", DRAFT, FIXED)
    store.record("clinic", "dr-b", DRAFT, FIXED)
    assert joined(store.apply(words(DRAFT), "clinic", "dr-c").words) == FIXED
    assert joined(store.apply(words(DRAFT), "other", "dr-a").words) == DRAFT


def test_entries_can_be_listed_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "learned.json"
    store = LearningStore(path)
    for _ in range(3):
        store.record("clinic", "dr-a", DRAFT, FIXED)
    store.add("clinic", "dr-b", [CorrectionPair("apixabane", "apixaban")])
    listed = store.entries("clinic")
    assert [(e.author, e.wrong, e.right, e.count) for e in listed] == [
        ("dr-a", "Ben Amou", "Benhamou", 3),
        ("dr-b", "apixabane", "apixaban", 1),
    ]
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == 1
    assert store.remove("clinic", "ben amou") == 1
    assert store.entries("clinic", "dr-a") == []
    assert joined(store.apply(words(DRAFT), "clinic", "dr-a").words) == DRAFT
    assert store.remove("clinic", "nothing") == 0


def test_learned_terms_feed_the_vocabulary(tmp_path: Path) -> None:
    store = LearningStore(tmp_path / "learned.json")
    store.add("clinic", "dr-a", [CorrectionPair("Ben Amou", "Benhamou")] * 2)
    vocab = load_vocabulary("medical", "fr", learned_terms=store.learned_terms("clinic", "dr-a"))
    assert vocab.texts()[0] == "Benhamou"


def test_learned_rule_does_not_cross_punctuation(tmp_path: Path) -> None:
    store = LearningStore(tmp_path / "learned.json")
    store.add("c", "a", [CorrectionPair("Ben Amou", "Benhamou")] * 2)
    assert store.apply(words("Ben, Amou"), "c", "a").replacements == ()


def test_corrupt_store_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "learned.json"
    path.write_text("{broken", encoding="utf-8")
    with pytest.raises(StoreError):
        LearningStore(path).entries()


def test_corrections_of_personal_values_are_never_learnt(tmp_path: Path) -> None:
    store = LearningStore(tmp_path / "learned.json")
    draft = "Madame Dupond a pris du bisoprolole ce matin."
    fixed = "Madame Dupont a pris du bisoprolol ce matin."
    pairs = store.record("c", "a", draft, fixed, lang="fr", exclude=["Lucie Dupont"])
    assert [(p.wrong, p.right) for p in pairs] == [("bisoprolole", "bisoprolol")]
    assert "Dupont" not in (tmp_path / "learned.json").read_text()
