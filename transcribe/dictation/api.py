"""The two entry points: formatting a dictated text, or Whisper's timed words."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from transcribe.dictation.detect import (
    Item,
    Lexicon,
    drop_whisper_marks,
    find_commands,
    lower_after_commands,
)
from transcribe.dictation.french import french_notations
from transcribe.dictation.numbers import convert_numbers
from transcribe.dictation.options import DictationOptions, TimedWordLike, normalise_lang
from transcribe.dictation.render import render
from transcribe.dictation.tokens import Kind, Token, attach_timings, tokenize

_DEFAULT = DictationOptions()


def _each_run(items: list[Item], rewrite: Callable[[list[Token]], list[Token]]) -> list[Item]:
    """Rewrite each stretch of plain text between commands (numbers, notations):
    a command is a boundary no number or reference runs across."""
    out: list[Item] = []
    run: list[Token] = []
    for item in [*items, None]:
        if isinstance(item, Token) and item.kind is not Kind.BREAK:
            run.append(item)
            continue
        out.extend(rewrite(run) if run else [])
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
        small_words = code == "fr" and options.french_small_numbers == "words"
        items = _each_run(items, lambda run: convert_numbers(run, code, small_words=small_words))
    if code == "fr":
        items = _each_run(items, lambda run: french_notations(run, options))
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
