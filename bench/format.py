"""Benchmark the dictation formatter on dictated/written pairs.

Usage: python bench/format.py [DATA_DIR]   (default ../shared/data/format-dev)

Reads ``fr.jsonl`` and ``en.jsonl`` (objects with ``raw`` and ``written``),
formats each ``raw``, and compares with ``written`` after folding every run of
whitespace (no-break spaces included) into one space. Prints the score per
language and a diff for each failure; exits 1 unless every pair matches, 2 when
the data cannot be read.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe.dictation import format_dictation

DEFAULT_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "format-dev"
_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """The comparison key: whitespace runs (U+00A0 included) become one space."""
    return _SPACES.sub(" ", text).strip()


def load_pairs(path: Path) -> list[dict[str, str]]:
    """The pairs of one file; a malformed line is a data error, not a failure."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record.get("raw"), str) or not isinstance(record.get("written"), str):
            raise ValueError(f"{path}:{number}: needs string fields 'raw' and 'written'")
        pairs.append(record)
    return pairs


def show_failure(raw: str, expected: str, got: str) -> None:
    """A readable diff, line by line, with the raw input for context."""
    print(f"  RAW:      {raw}")
    diff = difflib.unified_diff(
        fold(expected).split(" "), fold(got).split(" "), "expected", "got", lineterm="", n=2
    )
    print("  " + "\n  ".join(diff))
    print(f"  EXPECTED: {expected!r}\n  GOT:      {got!r}\n")


def score_language(path: Path, lang: str) -> tuple[int, int]:
    """Exact matches and total for one language file."""
    pairs = load_pairs(path)
    passed = 0
    for pair in pairs:
        got = format_dictation(pair["raw"], lang)
        if fold(got) == fold(pair["written"]):
            passed += 1
        else:
            show_failure(pair["raw"], pair["written"], got)
    return passed, len(pairs)


def main(argv: list[str]) -> int:
    data_dir = Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    total_ok = total = 0
    for lang in ("fr", "en"):
        path = data_dir / f"{lang}.jsonl"
        try:
            passed, count = score_language(path, lang)
        except (OSError, ValueError) as exc:
            print(f"error: cannot read {path}: {exc}", file=sys.stderr)
            return 2
        total_ok, total = total_ok + passed, total + count
        percent = 100.0 * passed / count if count else 100.0
        print(f"{lang}: {passed}/{count} exact ({percent:.1f}%)")
    return 0 if total_ok == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
