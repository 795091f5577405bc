"""The secretary's review loop in a terminal (prompt_toolkit, full screen).

Keyboard only, fits 80x24, works over SSH. This module only draws a
:class:`~transcribe.review.session.DraftReview` (a job of the local workspace, or of a
server with ``review --server``) and maps keys to its methods; every edit is kept by
the session as it is made. Any error a key causes is shown
on the message line (a bug is logged, never drawn as a traceback), and the review
lock is released on leaving, on Ctrl-C, and when the terminal goes away (SIGHUP).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prompt_toolkit.application import Application, get_app, run_in_terminal
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.layout import ConditionalContainer, HSplit, Layout, VSplit, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.styles import Style

from ..errors import ConfigError, TranscribeError
from .audio import Listening, Player, detect_player
from .i18n import Messages
from .queue import QueueEntry, format_age, format_duration
from .session import MARKED_SOURCES, DraftReview, Workplace
from .settings import ACTIONS, ReviewSettings

log = logging.getLogger(__name__)

STYLE = Style.from_dict(
    {
        "header": "reverse",
        "urgent": "bold fg:ansired",
        "low": "fg:ansired bold",
        "doubt": "fg:ansiyellow bold",
        "unreliable": "bg:ansimagenta fg:ansiwhite",
        "seen": "underline fg:ansimagenta",
        "warning": "bold fg:ansimagenta",
        "lexicon": "underline fg:ansicyan",
        "learned": "underline fg:ansimagenta",
        "checked": "fg:ansigreen",
        "current": "reverse",
        "missing": "fg:ansired",
        "dim": "fg:ansibrightblack",
        "message": "bold",
        "keys": "fg:ansiblue",
        "selected": "reverse",
    }
)
KEY_NAMES = {
    "tab": "Tab",
    "s-tab": "S-Tab",
    "space": "Spc",
    " ": "Spc",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
    "enter": "Enter",
    "escape": "Esc",
    "c-c": "^C",
}
HINT_GROUPS = (
    ("next_doubtful", "prev_doubtful"),
    ("next_segment", "prev_segment"),
    ("play",),
    ("replay",),
    ("pause",),
    ("slower", "faster"),
    ("edit_word",),
    ("edit_segment",),
    ("edit_all",),
    ("field",),
    ("approve",),
    ("query",),
    ("save_leave",),
    ("help",),
)
IGNORED_KEYS = {
    Keys.CPRResponse,
    Keys.Vt100MouseEvent,
    Keys.WindowsMouseEvent,
    Keys.BracketedPaste,
    Keys.SIGINT,
    Keys.Ignore,
}
VERY_LOW = 0.35


def key_label(key: str) -> str:
    if key in KEY_NAMES:
        return KEY_NAMES[key]
    if len(key) > 1 and key[0] == "f" and key[1:].isdigit():
        return key.upper()
    if key.startswith("c-"):
        return "^" + key[2:].upper()
    return key


def wrap_offsets(text: str, width: int) -> list[tuple[int, int]]:
    """Lines of ``text`` as (start, end) offsets, broken at spaces to fit ``width``."""
    lines: list[tuple[int, int]] = []
    start = 0
    width = max(width, 10)
    for paragraph in text.split("\n"):
        end_of_par = start + len(paragraph)
        a = start
        while end_of_par - a > width:
            cut = text.rfind(" ", a, a + width + 1)
            if cut <= a:
                cut = a + width
                lines.append((a, cut))
                a = cut
            else:
                lines.append((a, cut))
                a = cut + 1
        lines.append((a, end_of_par))
        start = end_of_par + 1
    return lines


@dataclass
class Prompt:
    label: str
    on_accept: Callable[[str], None]


class ReviewApp:
    """The queue and the job view; one job open at a time."""

    def __init__(
        self,
        workplace: Workplace,
        *,
        settings: ReviewSettings,
        messages: Messages,
        job_id: str | None = None,
    ) -> None:
        self.workplace = workplace
        self.reviewer = workplace.reviewer
        self.settings = settings
        self.t = messages
        self.direct = job_id is not None
        self.session: DraftReview | None = None
        #: clips are fetched (over the network, for a server's job) and decoded in
        #: the background, one at a time, so a key press never waits for them
        self.sound = ThreadPoolExecutor(max_workers=1, thread_name_prefix="review-sound")
        self.listening: Listening | None = None
        self.entries: list[QueueEntry] = []
        self.selected = 0
        self.message = ""
        self.prompt: Prompt | None = None
        self.show_help = False
        self.player_warned = False
        self.errors: list[str] = []  # internal errors (bugs), for tests and the log
        player = settings.player if settings.player is not None else detect_player()
        self.player = Player(player)
        self.buffer = Buffer(multiline=False)
        self.app = self._build()
        if job_id is not None:
            self.open_job(job_id)  # errors go to the caller: one line, one exit code
        else:
            self.refresh_queue()

    # -- layout ----------------------------------------------------------------------

    def _build(self) -> Application[None]:
        in_job = Condition(lambda: self.session is not None and not self.show_help)
        prompting = Condition(lambda: self.prompt is not None)
        self.body = Window(
            FormattedTextControl(
                self._body, focusable=True, show_cursor=False, get_cursor_position=self._body_cursor
            ),
            wrap_lines=False,
        )
        self.prompt_window = Window(
            BufferControl(self.buffer), wrap_lines=True, height=Dimension(min=1, max=4)
        )
        layout = HSplit(
            [
                Window(FormattedTextControl(self._header), height=1, style="class:header"),
                ConditionalContainer(
                    Window(FormattedTextControl(self._fields), height=self._fields_height),
                    filter=in_job,
                ),
                ConditionalContainer(
                    Window(char="─", height=1, style="class:dim"),
                    filter=in_job,
                ),
                self.body,
                Window(
                    FormattedTextControl(self._message_line),
                    height=Dimension(min=1, max=2),
                    wrap_lines=True,
                ),
                ConditionalContainer(
                    VSplit(
                        [
                            Window(
                                FormattedTextControl(
                                    lambda: self.prompt.label if self.prompt else ""
                                ),
                                width=self._prompt_label_width,
                                style="class:message",
                            ),
                            self.prompt_window,
                        ]
                    ),
                    filter=prompting,
                ),
                Window(
                    FormattedTextControl(self._hints), height=2, wrap_lines=True, style="class:keys"
                ),
            ]
        )
        app: Application[None] = Application(
            layout=Layout(layout, focused_element=self.body),
            key_bindings=self._bindings(),
            style=STYLE,
            full_screen=True,
            mouse_support=False,
            refresh_interval=0.5,  # the saves' state and a clip's outcome change unasked
        )
        app.ttimeoutlen = 0.05
        return app

    def _prompt_label_width(self) -> Dimension:
        width = len(self.prompt.label) if self.prompt else 1
        return Dimension.exact(min(width, 40))

    def _width(self) -> int:
        try:
            return max(get_app().output.get_size().columns, 20)
        except Exception:
            return 80

    def _header(self) -> StyleAndTextTuples:
        if self.session is None:
            return [("", f" {self.t('queue_title')}  ({len(self.entries)})  {self.reviewer}")]
        job = self.session.job
        sync = self.session.sync_note()
        parts = [
            self.t("urgent") if job.priority == "urgent" else "",
            job.id,
            self.t(f"sync_{sync}") if sync else "",
            f"{self.t('doubtful')}: {len(self.session.doubtful_spans())}",
            f"{self.t('warnings')}: {len(self.session.draft.get('warnings', ()))}"
            if self.session.draft.get("warnings")
            else "",
            f"x{self.listening.speed:g}" if self.listening and self.listening.speed != 1.0 else "",
            job.client,
            job.author or "",
            job.document_type or "",
            format_duration(job.duration_s),
        ]
        return [("", (" " + "  ".join(p for p in parts if p))[: self._width()])]

    def _field_cells(self) -> list[StyleAndTextTuples]:
        assert self.session is not None
        cells = []
        for number, row in enumerate(self.session.field_rows(), start=1):
            mark = "*" if row.required else " "
            if row.value:
                value = [("", row.value)]
            elif row.automatic:
                value = [("class:dim", f"({self.t('automatic')})")]
            elif row.required:
                value = [("class:missing", f"<{self.t('missing')}>")]
            else:
                value = [("class:dim", "-")]
            cells.append([("", f"{number:>2}{mark}{row.name}: "), *value])
        return cells

    def _fields_height(self) -> Dimension:
        if self.session is None:
            return Dimension.exact(0)
        cells = len(self.session.field_rows())
        return Dimension.exact(min(max((cells + 1) // 2, 1), 5))

    def _fields(self) -> StyleAndTextTuples:
        if self.session is None:
            return []
        cells = self._field_cells()
        if not cells:
            return [("class:dim", " " + self.t("no_template"))]
        half = self._width() // 2
        rows = (len(cells) + 1) // 2
        out: StyleAndTextTuples = []
        for r in range(min(rows, 5)):
            for c, cell in enumerate(cells[r * 2 : r * 2 + 2]):
                out += _clip(cell, half - 1 if c == 0 else half)
                if c == 0:
                    used = sum(len(t) for _, t, *_ in _clip(cell, half - 1))
                    out.append(("", " " * (half - used)))
            out.append(("", "\n"))
        return out[:-1]

    def _body(self) -> StyleAndTextTuples:
        if self.show_help:
            return self._help()
        if self.session is None:
            return self._queue_view()
        return self._transcript()

    def _body_cursor(self) -> Point | None:
        if self.show_help:
            return Point(0, 0)
        if self.session is None:
            return Point(0, self.selected + 1)
        cursor = self.session.cursor
        for y, (a, b) in enumerate(wrap_offsets(self.session.text, self._width() - 1)):
            if cursor <= b:
                return Point(max(0, cursor - a), y)
        return Point(0, 0)

    def _char_styles(self) -> list[str]:
        assert self.session is not None
        session = self.session
        styles = [""] * len(session.text)
        for word in session.draft["words"]:
            span = word.get("span")
            if not span:
                continue
            if word.get("checked"):
                style = "class:checked"
            elif word.get("source") in MARKED_SOURCES:
                style = f"class:{word['source']}"
            elif float(word.get("probability", 1.0)) < min(VERY_LOW, session.settings.threshold):
                style = "class:low"
            elif float(word.get("probability", 1.0)) < session.settings.threshold:
                style = "class:doubt"
            else:
                continue
            for i in range(span[0], min(span[1], len(styles))):
                styles[i] = style
        for passage, (a, b) in session.unreliable_spans():
            for i in range(a, min(b, len(styles))):
                styles[i] = "class:seen" if passage["checked"] else "class:unreliable"
        a, b = session.current_range()
        for i in range(a, b):
            styles[i] = (styles[i] + " class:current").strip()
        return styles

    def _transcript(self) -> StyleAndTextTuples:
        assert self.session is not None
        text = self.session.text
        styles = self._char_styles()
        out: StyleAndTextTuples = []
        lines = wrap_offsets(text, self._width() - 1)
        for y, (a, b) in enumerate(lines):
            i = a
            while i < b:
                j = i
                while j < b and styles[j] == styles[i]:
                    j += 1
                out.append((styles[i], text[i:j]))
                i = j
            if self.session.cursor == b and (a, b) == self._cursor_line(lines):
                out.append(("class:current", " "))
            if y < len(lines) - 1:
                out.append(("", "\n"))
        return out

    def _cursor_line(self, lines: list[tuple[int, int]]) -> tuple[int, int] | None:
        assert self.session is not None
        a, b = self.session.current_range()
        if a != b:
            return None
        for line in lines:
            if self.session.cursor <= line[1]:
                return line
        return None

    def _queue_view(self) -> StyleAndTextTuples:
        if not self.entries:
            return [("", "\n " + self.t("queue_empty"))]
        out: StyleAndTextTuples = [("class:dim", queue_header(self.t) + "\n")]
        for index, entry in enumerate(self.entries):
            style = "class:selected" if index == self.selected else ""
            out.append((style, queue_line(entry, self._width() - 1, self.t) + "\n"))
        return out

    def _help(self) -> StyleAndTextTuples:
        french = self.t.french
        out: StyleAndTextTuples = []  # the title is on the message line: 80x24 fits all
        for action in ACTIONS:
            keys = ", ".join(key_label(k) for k in self.settings.keys.get(action.name, ()))
            text = action.help_fr if french else action.help_en
            out.append(("", f" {keys:<16} {text}\n"))
        out.append(("class:low", " rouge : très douteux" if french else " red: very doubtful"))
        out.append(("class:doubt", "  jaune : douteux" if french else "  yellow: doubtful"))
        out.append(("class:lexicon", "  lexique" if french else "  lexicon"))
        out.append(("class:learned", "  appris" if french else "  learned"))
        out.append(("class:checked", "  corrigé" if french else "  corrected"))
        return out

    def _message_line(self) -> StyleAndTextTuples:
        text = self.t("help_title") if self.show_help else self.message
        if not text and self.session is None and self.entries:
            text = self.entries[self.selected].job.id
        return [("class:message", " " + text)]

    def _hints(self) -> StyleAndTextTuples:
        if self.prompt is not None:
            return [("", " " + self.t("prompt_keys"))]
        if self.session is None:
            return [("", " " + self.t("queue_keys"))]
        french = self.t.french
        shorts = {a.name: a.short_fr if french else a.short_en for a in ACTIONS}
        parts = []
        for group in HINT_GROUPS:
            keys = [self.settings.keys.get(name, ()) for name in group]
            if not all(keys):
                continue
            label = "/".join(key_label(k[0]) for k in keys)
            parts.append(f"{label} {shorts[group[0]]}")
        return [("", " " + "  ".join(parts))]

    # -- key bindings --------------------------------------------------------------------

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()
        in_job = Condition(
            lambda: self.session is not None and not self.show_help and self.prompt is None
        )
        in_list = Condition(
            lambda: self.session is None and not self.show_help and self.prompt is None
        )
        prompting = Condition(lambda: self.prompt is not None)
        helping = Condition(lambda: self.show_help)
        handlers = self._action_handlers()
        for action, keys in self.settings.keys.items():
            for key in keys:
                try:
                    kb.add(key, filter=in_job)(self._wrap(handlers[action]))
                except ValueError:
                    raise ConfigError(
                        f"review-keys.toml: [keys] {action}: unknown key {key!r}"
                    ) from None
        for key, handler in (
            ("up", lambda: self._select(-1)),
            ("k", lambda: self._select(-1)),
            ("down", lambda: self._select(1)),
            ("j", lambda: self._select(1)),
            ("enter", self._open_selected),
            ("g", self.refresh_queue),
            ("q", self._quit),
            ("c-c", self._quit),
            ("?", self._toggle_help),
            ("f1", self._toggle_help),
        ):
            kb.add(key, filter=in_list)(self._wrap(handler))
        kb.add("enter", filter=prompting)(self._wrap(self._accept_prompt))
        kb.add("escape", filter=prompting, eager=True)(self._wrap(self._cancel_prompt))
        kb.add("c-c", filter=prompting)(self._wrap(self._cancel_prompt))
        kb.add(Keys.Any, filter=helping)(self._wrap(self._toggle_help))
        kb.add(Keys.Any, filter=in_job | in_list)(self._unknown_key)
        return kb

    def _wrap(self, handler: Callable[[], object]) -> Callable[[KeyPressEvent], None]:
        def run(event: KeyPressEvent) -> None:
            self.message = ""
            self._guard(handler)

        return run

    def _guard(self, handler: Callable[[], object]) -> None:
        """Errors become a message line; a bug is logged, the work is already saved."""
        try:
            handler()
        except TranscribeError as exc:
            self.message = self.t("error", error=str(exc))
        except Exception as exc:
            log.exception("review loop: internal error")
            self.errors.append(repr(exc))
            self.message = self.t("internal_error", error=type(exc).__name__)

    def _unknown_key(self, event: KeyPressEvent) -> None:
        key = event.key_sequence[0].key if event.key_sequence else ""
        if key in IGNORED_KEYS:
            return
        name = key.value if isinstance(key, Keys) else str(key)
        self._guard(lambda: setattr(self, "message", self.t("unknown_key", key=name)))

    def _action_handlers(self) -> Mapping[str, Callable[[], object]]:
        s = self._session
        return {
            "next_doubtful": lambda: self._moved(s().next_doubtful()),
            "prev_doubtful": lambda: self._moved(s().prev_doubtful()),
            "next_word": lambda: s().next_word(),
            "prev_word": lambda: s().prev_word(),
            "next_segment": lambda: s().next_segment(),
            "prev_segment": lambda: s().prev_segment(),
            "play": lambda: self._play(replay=False),
            "replay": lambda: self._play(replay=True),
            "pause": self._pause,
            "slower": lambda: self._speed(-1),
            "faster": lambda: self._speed(1),
            "edit_word": self._edit_word,
            "edit_segment": self._edit_segment,
            "edit_all": self._edit_all,
            "field": self._field,
            "approve": self._approve,
            "query": self._query,
            "save_leave": self._leave,
            "help": self._toggle_help,
        }

    def _session(self) -> DraftReview:
        assert self.session is not None
        return self.session

    # -- queue -------------------------------------------------------------------------

    def refresh_queue(self) -> None:
        self.entries = self.workplace.queue()
        self.selected = min(self.selected, max(len(self.entries) - 1, 0))

    def _select(self, step: int) -> None:
        if self.entries:
            self.selected = min(max(self.selected + step, 0), len(self.entries) - 1)

    def _open_selected(self) -> None:
        if self.entries:
            self.open_job(self.entries[self.selected].job.id)

    def open_job(self, job_id: str) -> None:
        session = self.workplace.open(job_id)
        self.session = session
        self.listening = Listening(self.player, session.scratch)
        if session.notice is not None:
            key, values = session.notice
            self.message = self.t(key, **values)
        else:
            self.message = self._warnings(session)

    def _warnings(self, session: DraftReview) -> str:
        """What the transcription stage warned about, shown when the job opens."""
        texts = [w["text"] for w in session.draft.get("warnings", ())]
        return f"{self.t('warning')}: " + " · ".join(texts) if texts else ""

    def close_job(self) -> None:
        """Stop the audio, save the position, release the lock."""
        self.player.stop()
        session, self.session = self.session, None
        self.listening = None
        if session is not None:
            session.close()
        if self.direct:
            self.app.exit()
        else:
            self.refresh_queue()

    def _quit(self) -> None:
        self.app.exit()

    def _leave(self) -> None:
        self.close_job()
        if not self.direct:
            self.message = self.t("saved")

    def _toggle_help(self) -> None:
        self.show_help = not self.show_help

    # -- job actions -----------------------------------------------------------------------

    def _moved(self, result: str) -> None:
        if result == "none":
            self.message = self.t("no_more_doubtful")
        elif result == "wrapped":
            self.message = self.t("wrapped")

    def _play(self, *, replay: bool) -> None:
        session = self._session()
        session.touch()
        if not self.player.available:
            if not self.player_warned:
                self.player_warned = True
                self.message = self.t("no_player")
            return
        listening = self.listening
        if listening is None:
            return
        start, end = session.audio_window(replay=replay)
        self.message = self.t("playing", start=start, end=end, speed=listening.speed)
        speed = listening.speed
        self.sound.submit(self._play_clip, session, listening, start, end, speed)

    def _play_clip(
        self, session: DraftReview, listening: Listening, start: float, end: float, speed: float
    ) -> None:
        """In the sound thread: fetch or decode the clip, play it if its job is still open."""
        try:
            samples = session.clip(start, end, speed)
            if session is not self.session:
                return
            if samples is None:
                self.message = self.t("no_audio")
            else:
                listening.play_samples(samples)
        except TranscribeError as exc:
            self.message = self.t("error", error=str(exc))
        except Exception as exc:
            log.exception("review loop: audio")
            self.errors.append(repr(exc))
            self.message = self.t("internal_error", error=type(exc).__name__)

    def _pause(self) -> None:
        self.player.stop()
        self.message = self.t("paused")

    def _speed(self, step: int) -> None:
        if self.listening is not None:
            self.message = self.t("speed", speed=self.listening.change_speed(step))

    def ask(self, label: str, initial: str, on_accept: Callable[[str], None]) -> None:
        self.prompt = Prompt(label, on_accept)
        self.buffer.set_document(
            self.buffer.document.__class__(initial, len(initial)), bypass_readonly=True
        )
        self.app.layout.focus(self.prompt_window)

    def _accept_prompt(self) -> None:
        prompt, self.prompt = self.prompt, None
        text = self.buffer.text
        self.app.layout.focus(self.body)
        if prompt is not None:
            prompt.on_accept(text)

    def _cancel_prompt(self) -> None:
        self.prompt = None
        self.app.layout.focus(self.body)
        self.message = self.t("cancelled")

    def _edit_word(self) -> None:
        session = self._session()
        a, b = session.current_range()
        current = session.text[a:b]

        def accept(value: str) -> None:
            if value != current:
                session.edit_word(value)
                self.message = self.t("saved")

        self.ask(self.t("edit_word"), current, accept)

    def _edit_segment(self) -> None:
        session = self._session()
        a, b = session.current_segment()
        current = session.text[a:b]

        def accept(value: str) -> None:
            if value != current:
                session.edit_segment(value)
                self.message = self.t("saved")

        self.ask(self.t("edit_segment"), current, accept)

    def _field(self) -> None:
        session = self._session()

        def chosen(answer: str) -> None:
            name = session.resolve_field(answer)
            current = session.fields.get(name, "")

            def accept(value: str) -> None:
                session.set_field(name, value)
                self.message = self.t("saved")

            self.ask(self.t("value_prompt", name=name), current, accept)

        self.ask(self.t("field_prompt"), "", self._guarded(chosen))

    def _guarded(self, accept: Callable[[str], None]) -> Callable[[str], None]:
        return lambda value: self._guard(lambda: accept(value))

    def _approve(self) -> None:
        session = self._session()
        missing = session.missing()
        if missing:
            self.message = self.t("fill_first", names=", ".join(missing))
            return
        unchecked = session.unchecked_passages()
        if unchecked:
            self.message = self.t("look_first", count=unchecked)
            return

        def accept(answer: str) -> None:
            if answer.strip().lower() not in ("y", "yes", "o", "oui"):
                self.message = self.t("cancelled")
                return
            job = session.approve()
            self.close_job()
            self.message = self.t("approved", job=job.id)

        self.ask(self.t("confirm_approve"), "", accept)

    def _query(self) -> None:
        session = self._session()

        def accept(question: str) -> None:
            if not question.strip():
                self.message = self.t("cancelled")
                return
            job = session.send_back(question)
            self.close_job()
            self.message = self.t("sent_back", job=job.id)

        self.ask(self.t("question_prompt"), "", accept)

    def _edit_all(self) -> None:
        session = self._session()
        session.touch()

        async def edit() -> None:
            try:
                result = await run_in_terminal(lambda: self._run_editor(session.text))
                if result is not None and session is self.session:
                    self._guard(lambda: session.replace_text(result) and None)
                    self.message = self.message or self.t("saved")
            except Exception as exc:  # never let a task print a traceback
                log.exception("review loop: editor")
                self.errors.append(repr(exc))
                self.message = self.t("internal_error", error=type(exc).__name__)
            self.app.invalidate()

        self.app.create_background_task(edit())

    def _run_editor(self, text: str) -> str | None:
        """Edit ``text`` in $VISUAL/$EDITOR via a private temp file, deleted after."""
        session = self._session()
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        command = shlex.split(editor) if editor else _default_editor()
        folder = session.scratch
        fd, name = tempfile.mkstemp(prefix=".edit-", suffix=".txt", dir=folder)
        path = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            result = subprocess.run([*command, str(path)], check=False)
            if result.returncode != 0:
                self.message = self.t("editor_failed", error=f"exit {result.returncode}")
                return None
            edited = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.message = self.t("editor_failed", error=str(exc))
            return None
        finally:
            path.unlink(missing_ok=True)
        if edited.endswith("\n") and not text.endswith("\n"):
            edited = edited[:-1]
        return edited

    # -- running -------------------------------------------------------------------------

    def hangup(self) -> None:
        """The terminal went away: release everything, then stop."""
        self.player.stop()
        session, self.session = self.session, None
        if session is not None:
            session.close()
        if self.app.is_running and self.app.future is not None and not self.app.future.done():
            self.app.exit()

    def run(self) -> None:
        def install() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(signum, self.hangup)

        try:
            self.app.run(pre_run=install)
        except OSError as exc:  # the terminal vanished mid-draw
            log.info("review loop: terminal lost: %s", exc)
        finally:
            self.player.stop()
            if self.session is not None:
                self.session.close()
            self.sound.shutdown(wait=False, cancel_futures=True)


def _default_editor() -> list[str]:
    for name in ("sensible-editor", "nano", "vi"):
        if shutil.which(name):
            return [name]
    raise ConfigError("no text editor found", hint="set $EDITOR")


def _clip(cell: StyleAndTextTuples, width: int) -> StyleAndTextTuples:
    out: StyleAndTextTuples = []
    left = width
    for style, text, *_ in cell:
        if left <= 0:
            break
        piece = text if len(text) <= left else text[: max(left - 1, 0)] + "…"
        out.append((style, piece))
        left -= len(piece)
    return out


def queue_line(entry: QueueEntry, width: int, t: Messages) -> str:
    """One row of the queue (no patient names: client, author, type, length, age)."""
    job = entry.job
    line = (
        f"{'!' if entry.urgent else ' '} {_fit(job.client, 16):<16} "
        f"{_fit(job.author or '-', 14):<14} "
        f"{_fit(job.document_type or '-', 13):<13} {format_duration(job.duration_s):>6} "
        f"{format_age(entry.age_s):>4} {entry.doubtful:>5}"
    )
    if entry.locked_by:
        line += "  " + t("locked_by", who=entry.locked_by)
    return line[:width]


def queue_header(t: Messages) -> str:
    client, author, kind, length, age, doubt = t("queue_columns").split("|")
    return f"  {client:<16} {author:<14} {kind:<13} {length:>6} {age:>4} {doubt:>5}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_review(
    workplace: Workplace,
    job_id: str | None = None,
    *,
    settings: ReviewSettings,
    messages: Messages | None = None,
    write: Callable[[str], None] = print,
) -> None:
    """The interactive loop: the queue, or one job directly (leaving it exits).

    Without a terminal (a pipe, a script) the queue is written through ``write``
    instead, one job a line, and opening a job is refused.
    """
    messages = messages or Messages.from_environment()
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        if job_id is not None:
            raise ConfigError(
                "the review loop needs an interactive terminal",
                hint="use `transcribe approve JOB --text-file F --field name=value`",
            )
        write(f"{'id':<16}{queue_header(messages)}")
        for entry in workplace.queue():
            write(f"{entry.job.id:<16}{queue_line(entry, 200, messages)}")
        return
    app = ReviewApp(workplace, settings=settings, messages=messages, job_id=job_id)
    app.run()
