"""Fit the most useful vocabulary terms into Whisper's initial prompt.

Whisper conditions on at most 223 prompt tokens (half its 448-token text
context, minus one) and faster-whisper keeps the *last* 223 when a prompt is
longer, so an over-long prompt silently loses its lead-in and its best-ranked
terms. The builder therefore counts tokens exactly (Whisper's own tokenizer,
from the model folder's ``tokenizer.json``) and stops below a budget with a
margin. Without the tokenizer it uses a deliberately pessimistic estimate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcribe.errors import ConfigError, ModelError
from transcribe.vocabulary.terms import Term, Vocabulary

TokenCounter = Callable[[str], int]

WHISPER_MAX_PROMPT_TOKENS = 223
# Margin for tokenizer differences between model conversions and for the space
# faster-whisper prepends; also leaves room for a few hotword tokens.
DEFAULT_BUDGET_TOKENS = 200
_ESTIMATE_SAFETY = 1.2
_CHUNK = re.compile(r"\w+|[^\w\s]")
_HARD_CHUNK = re.compile(r"\d|[A-Z].*[A-Z]")

# Short, natural lead-ins: Whisper imitates the prompt's style, so a punctuated
# sentence nudges it toward punctuated, correctly spelled output.
_LEAD_INS = {
    ("medical", "fr"): "Compte rendu médical. Vocabulaire :",
    ("legal", "fr"): "Courrier juridique. Vocabulaire :",
    ("general", "fr"): "Dictée. Vocabulaire :",
    ("medical", "en"): "Medical report. Vocabulary:",
    ("legal", "en"): "Legal letter. Vocabulary:",
    ("general", "en"): "Dictation. Vocabulary:",
}


@dataclass(frozen=True)
class PromptPlan:
    """The prompt to pass as ``initial_prompt`` and exactly what went into it.

    Saved in transcript.json so a reviewer (or a benchmark) can tell which terms
    biased a transcription and whether the token count was exact or estimated.
    """

    text: str
    lead_in: str
    terms: tuple[Term, ...]
    token_count: int
    budget_tokens: int
    counter: str
    skipped: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record of the plan."""
        return {
            "text": self.text,
            "lead_in": self.lead_in,
            "terms": [{"text": t.text, "source": str(t.source)} for t in self.terms],
            "token_count": self.token_count,
            "budget_tokens": self.budget_tokens,
            "counter": self.counter,
            "skipped": self.skipped,
        }


def estimate_tokens(text: str) -> int:
    """Pessimistic token count for when Whisper's tokenizer is not available.

    Roughly one token per two UTF-8 bytes of each word, one more for words with
    digits or several capitals (abbreviations split badly), plus 20 %: on the
    shipped lexicons it over-counts by about 1.9x, which is the price of never
    overflowing the prompt.
    """
    total = 0
    for chunk in _CHUNK.findall(text):
        total += math.ceil(len(chunk.encode("utf-8")) / 2)
        total += 1 if _HARD_CHUNK.search(chunk) else 0
    return math.ceil(total * _ESTIMATE_SAFETY)


estimate_tokens.counter_name = "estimate"  # type: ignore[attr-defined]


@dataclass(frozen=True)
class WhisperTokenCounter:
    """Counts tokens with the model's own ``tokenizer.json`` (no special tokens)."""

    tokenizer: Any
    counter_name: str = "whisper-tokenizer"

    @classmethod
    def from_file(cls, path: Path) -> WhisperTokenCounter:
        """Load the tokenizer; a broken file is a model problem, not a silent fallback."""
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelError(
                "the 'tokenizers' package is not installed", hint="pip install tokenizers"
            ) from exc
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ModelError(f"cannot load Whisper tokenizer {path}: {exc}") from exc

    def __call__(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


def token_counter_for_model(model_dir: Path | None) -> TokenCounter:
    """The exact counter when the model folder has ``tokenizer.json``, else the estimate.

    A model given by name (not yet downloaded) has no folder: the estimate keeps
    the prompt safe. A folder with a corrupt tokenizer still raises ModelError.
    """
    if model_dir is not None and (model_dir / "tokenizer.json").is_file():
        try:
            import tokenizers  # noqa: F401
        except ImportError:
            return estimate_tokens
        return WhisperTokenCounter.from_file(model_dir / "tokenizer.json")
    return estimate_tokens


def lead_in_for(domain: str, lang: str) -> str:
    """The lead-in sentence for a domain and language (English if unknown)."""
    return _LEAD_INS.get((domain, lang)) or _LEAD_INS.get((domain, "en"), "Vocabulary:")


def assemble_prompt(lead_in: str, terms: list[Term]) -> str:
    """Lead-in, then the terms as a comma-separated, full-stopped list."""
    if not terms:
        return ""
    return f"{lead_in} {', '.join(term.text for term in terms)}."


def _counter_name(count_tokens: TokenCounter) -> str:
    return str(getattr(count_tokens, "counter_name", "custom"))


def _check_budget(budget_tokens: int) -> None:
    if not 1 <= budget_tokens <= WHISPER_MAX_PROMPT_TOKENS:
        raise ConfigError(
            f"prompt budget must be 1-{WHISPER_MAX_PROMPT_TOKENS} tokens, got {budget_tokens}",
            hint=f"Whisper keeps only the last {WHISPER_MAX_PROMPT_TOKENS} prompt tokens",
        )


def build_initial_prompt(
    vocabulary: Vocabulary,
    lang: str,
    *,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    count_tokens: TokenCounter | None = None,
    max_terms: int | None = None,
) -> PromptPlan:
    """Fit a lead-in and as many terms as possible, in rank order, under the budget.

    Terms are taken in the vocabulary's rank order (author, learned, client,
    domain); a term that does not fit is skipped and shorter later ones still get
    a chance, so one long phrase never crowds out the rest. The whole prompt is
    re-counted after each addition because BPE counts are not additive. The
    count includes the leading space faster-whisper adds before encoding.
    """
    _check_budget(budget_tokens)
    count = count_tokens or estimate_tokens
    lead_in = lead_in_for(vocabulary.domain, lang)
    chosen: list[Term] = []
    used = 0
    skipped = 0
    for term in vocabulary:
        if max_terms is not None and len(chosen) >= max_terms:
            break
        tokens = count(" " + assemble_prompt(lead_in, [*chosen, term]))
        if tokens <= budget_tokens:
            chosen.append(term)
            used = tokens
        else:
            skipped += 1
    return PromptPlan(
        text=assemble_prompt(lead_in, chosen),
        lead_in=lead_in,
        terms=tuple(chosen),
        token_count=used,
        budget_tokens=budget_tokens,
        counter=_counter_name(count),
        skipped=skipped,
    )
