"""The two entry points: formatting a dictated text, or Whisper's timed words."""

from __future__ import annotations

from collections.abc import Sequence

from transcribe.dictation.detect import (
    Item,
    Lexicon,
    drop_whisper_marks,
    find_commands,
    lower_after_commands,
)
from transcribe.dictation.numbers import convert_numbers
from transcribe.dictation.options import DictationOptions, TimedWordLike, normalise_lang
from transcribe.dictation.render import render
from transcribe.dictation.tokens import Kind, Token, attach_timings, tokenize

_DEFAULT = DictationOptions()


def _numbers(items: list[Item], lang: str) -> list[Item]:
    """Run the number pass over each stretch of plain text between commands."""
    out: list[Item] = []
    run: list[Token] = []
    for item in [*items, None]:
        if isinstance(item, Token) and item.kind is not Kind.BREAK:
            run.append(item)
            continue
        out.extend(convert_numbers(run, lang))
        run = []
        if item is not None:
            out.append(item)
    return out


def format_dictation(
    text: str,
    lang: str,
    *,
    options: DictationOptions = _DEFAULT,
    words: Sequence[TimedWordLike] | None = None,
) -> str:
    """Turn dictated text (as Whisper prints it) into the written letter.

    ``lang`` is "fr" or "en" (regional forms such as "fr-FR" are accepted).
    ``words`` are Whisper's words with start/end seconds for the same text; when
    given, pauses around ambiguous command words ("point", "colon") weigh in.
    Raises :class:`~transcribe.errors.ConfigError` for an unsupported language.
    """
    code = normalise_lang(lang)
    tokens = tokenize(text)
    if words:
        tokens = attach_timings(tokens, words)
    items: list[Item] = find_commands(tokens, Lexicon.build(code, options))
    items = lower_after_commands(drop_whisper_marks(items))
    if options.numbers:
        items = _numbers(items, code)
    return render(items, code, options)


def format_words(
    words: Sequence[TimedWordLike],
    lang: str,
    *,
    options: DictationOptions = _DEFAULT,
) -> str:
    """Format a Whisper transcript from its words (faster-whisper ``Word`` objects
    or :class:`TimedWord`), so the pipeline gets pause evidence for free."""
    text = "".join(word.word for word in words).strip()
    return format_dictation(text, lang, options=options, words=words)
