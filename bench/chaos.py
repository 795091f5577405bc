"""Crash-anywhere kill harness: SIGKILL the pipeline at random points, restart, check.

    .venv/bin/python bench/chaos.py --rounds 200 [--seed 1] [--keep] [--workspace DIR]

One demo workspace (``cli.py init --demo``; stability delay 1 s, beam size 1, no
vocabulary prompt, both clients English, so rounds stay short). Each round:

1. drops 1-2 new dictations into ``inbox/<client>/`` (espeak-ng speech, 3-4 s, for
   riverside-clinic or maitre-dubois). Each says its own number, so every
   file has its own SHA-256; some come with a sidecar naming an invented patient, some
   are named after that patient, some are written slowly in chunks while the stage
   runs (a slow upload);
2. sometimes plays the secretary: approves jobs waiting in review through the library
   (as the review loop does), so that the next stage renders, signs and archives them
   (three or more at once take the warm LibreOffice path);
3. starts one stage as a real process: ``watch`` (the service), ``watch --once``,
   ``batch``, ``approve JOB`` (approve, render with LibreOffice, sign, archive),
   ``watch`` and ``batch`` together (claims under contention), or ``approve JOB`` while
   ``watch`` runs (both want to finish the freshly approved letter);
4. after a random delay between 0 and 1.1x the stage's typical duration (the longest
   of its recent uninterrupted runs), SIGKILLs every process of the stage: LibreOffice
   and unoserver included, although they run in sessions of their own (the harness is
   a child subreaper, so orphans stay in its tree and are frozen with SIGSTOP before
   the kill). One round in five nothing is killed: the commands run to their end and
   a watcher, which has none, gets SIGTERM (the service's graceful stop);
5. restarts: ``watch --once``, whose start-up recovery frees dead claims, finishes
   half-done intakes, sweeps temporary files, finishes approved and rendered letters
   and interrupted clean-ups, then takes in and transcribes what waits;
6. checks the invariants below and prints one line (and one line per new problem).

Invariants after every recovery (a problem is counted once, however many rounds see it):

lost           a dropped dictation (by SHA-256) that is neither in the inbox nor held by
               exactly one live job with intact audio: its audio file with that hash in
               the work folder or, once archived, an indexed audio item with that
               plaintext hash whose ``.age`` file is there with the indexed size.
duplicated     more than one live job for one content; any ``duplicate`` job (every
               dropped file is unique, so one means a file taken in twice); a job that
               went transcribing -> review more often than it was retried; an ``.age``
               file the archive index does not know (a stray second copy).
claimed_twice  a job claimed for transcription while its audit trail says it is claimed.
stuck          a job left received, transcribing, approved or rendered, an intake not
               finished (``inbox_path`` set), a claim not released, a file left in the
               inbox, a dropped dictation ending failed, quarantined or in query, a job
               with content nobody dropped, a recovery run that failed, or a process of
               the pipeline still running once its command returned.
plaintext      any file or folder named ``.tmp-*`` (``fsutil.TMP_PREFIX``) in the
               workspace; anything left in the private TMPDIR the stages run with
               (LibreOffice scratch folders, profiles and converted PDFs); a ``render-*``
               scratch folder; a ``.pdf``, ``.docx`` or ``.odt`` outside ``templates/``;
               the work folder or audio of an archived job; a work folder no job owns;
               the invented patient name or the file name of an archived dictation in
               any workspace file that is not ``*.age`` (``jobs.db`` and its WAL too).
integrity      ``PRAGMA integrity_check`` is not ``ok`` on ``jobs.db`` or on any other
               SQLite file in the workspace.
audit          the audit chain does not verify (``verify_audit`` every round, the real
               ``cli.py audit verify`` every 25 rounds and at the end), or a job's state
               changes do not follow one another (a from_state that is not the previous
               to_state).

The last line holds the counts: ``rounds=N kills=K lost=0 duplicated=0 claimed_twice=0
stuck=0 plaintext=0 integrity=0 audit=0``; the exit status is 1 when one is not zero.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.audiogen import speak  # noqa: E402
from transcribe.config import Config, load_config  # noqa: E402
from transcribe.fsutil import TMP_PREFIX, sha256_file  # noqa: E402
from transcribe.store import ArchiveEntry, Job, JobState, JobStore, open_store  # noqa: E402
from transcribe.store.audit import verify_audit  # noqa: E402

COUNTS = ("lost", "duplicated", "claimed_twice", "stuck", "plaintext", "integrity", "audit")
STAGES = ("watch", "once", "batch", "approve", "pair", "busy")
STAGE_WEIGHTS = (0.25, 0.12, 0.13, 0.25, 0.1, 0.15)
FIRST_GUESS_S = {"once": 12.0, "batch": 12.0, "approve": 10.0}
RECOVERY_TIMEOUT_S = 600.0
REVIEWER = "secretary@chaos"
SQLITE_MAGIC = b"SQLite format 3\x00"
SYLLABLES = ("bra", "dul", "fen", "gor", "hal", "kiv", "lom", "mer", "nox", "pil", "quo", "rav")
PR_SET_CHILD_SUBREAPER = 36
THIRD_PARTY_TMP = frozenset({".ses"})  # onnxruntime's session id (Silero VAD), no data


@dataclass(frozen=True)
class Client:
    """A demo client the harness dictates for: voice, words, and letter fields."""

    id: str
    voice: str
    opening: str
    sentences: tuple[str, ...]
    fields: dict[str, str]
    name_field: str  # the approval field that carries the invented name


CLIENTS = (
    Client(
        "riverside-clinic",
        "en-us",
        "Clinic letter number {n}.",
        (
            "The patient is well and the tablets help.",
            "Blood pressure is normal today.",
            "Please review in six weeks.",
            "The scan showed nothing new.",
        ),
        {
            "recipient": "Dr Vale",
            "recipient_address": "1 Invented Road",
            "dob": "1950",
            "hospital_number": "H1",
            "clinic_date": "today",
            "salutation": "Dr Vale",
        },
        "patient",
    ),
    Client(
        "maitre-dubois",
        "en-gb",
        "File note number {n}.",
        (
            "The contract was signed by both parties.",
            "We wait for the other side to reply.",
            "The hearing is set for next month.",
        ),
        {
            "adresse": "1 rue Imaginaire",
            "destinataire": "Maître Roux",
            "formule_d_appel": "Cher confrère",
            "objet": "Dossier",
        },
        "reference_dossier",
    ),
)


@dataclass
class Dropped:
    """One dictation the harness dropped: where, what bytes, which invented name."""

    number: int
    client: Client
    name: str
    path: Path
    sha256: str


@dataclass
class Tally:
    """Distinct problems per count, and how the rounds went."""

    rounds: int = 0
    kills: int = 0
    seen: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in COUNTS})

    def add(self, count: str, key: str) -> bool:
        """True the first time this problem is seen."""
        if key in self.seen[count]:
            return False
        self.seen[count].add(key)
        return True

    def line(self) -> str:
        counts = " ".join(f"{c}={len(self.seen[c])}" for c in COUNTS)
        return f"rounds={self.rounds} kills={self.kills} {counts}"

    def clean(self) -> bool:
        return not any(self.seen.values())


# ----------------------------------------------------------------- the workspace


@dataclass
class Bench:
    """The harness's world: workspace, private TMPDIR, clips, what was dropped."""

    root: Path
    rng: random.Random
    dropped: list[Dropped] = field(default_factory=list)
    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def home(self) -> Path:
        return self.root / "ws"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, str(PROJECT / "cli.py"), "--home", str(self.home), *args]

    def env(self) -> dict[str, str]:
        """Stages write their temporary files where the harness can look for leftovers."""
        return {**os.environ, "TMPDIR": str(self.tmp), "PYTHONUNBUFFERED": "1"}

    def config(self) -> Config:
        return load_config(self.home)


def make_workspace(bench: Bench) -> None:
    """``init --demo``, then settings that keep rounds short."""
    bench.tmp.mkdir(parents=True, exist_ok=True)
    (bench.root / "clips").mkdir(exist_ok=True)
    subprocess.run(bench.cli("init", "--demo"), check=True, capture_output=True)
    path = bench.home / "transcribe.toml"
    text = path.read_text(encoding="utf-8")
    settings = (
        ("stable_seconds", "1.0"),
        ("scan_interval_s", "3"),
        ("beam_size", "1"),
        ("bias", '"none"'),
    )
    for key, value in settings:
        text, found = re.subn(rf"(?m)^{key} = \S+", f"{key} = {value}", text)
        assert found == 1, key
    # English speech for both clients: Whisper base decodes espeak-ng's French poorly,
    # and a poor decode falls back to slow sampling passes.
    text, found = re.subn(
        r'(\[clients\.maitre-dubois\]\n[^[]*?)language = "fr"', r'\1language = "en"', text
    )
    assert found == 1, "maitre-dubois language"
    path.write_text(text, encoding="utf-8")


def invented_name(number: int) -> str:
    """A made-up name, unique per dictation and never a prefix of another one."""
    a, b, c = number // 144 % 12, number // 12 % 12, number % 12
    surname = (SYLLABLES[a] + SYLLABLES[b] + SYLLABLES[c]).capitalize()
    return f"Ysolde {surname}"


def drop(bench: Bench) -> tuple[Dropped, threading.Thread | None]:
    """Speak a new dictation and drop it; a slow upload is returned as a running thread."""
    number = len(bench.dropped) + 1
    client = bench.rng.choice(CLIENTS)
    name = invented_name(number)
    words = [client.opening.format(n=number), bench.rng.choice(client.sentences)]
    clip = speak(" ".join(words), bench.root / "clips" / f"{number}.wav", voice=client.voice)
    stem = name.split()[1] + "-" + name.split()[0] if bench.rng.random() < 0.3 else f"d{number}"
    target = bench.home / "inbox" / client.id / f"{stem}.wav"
    if bench.rng.random() < 0.4:
        sidecar = f'{{"patient": "{name}", "author": "Dr Hart"}}'
        target.with_name(target.name + ".json").write_text(sidecar, encoding="utf-8")
    entry = Dropped(number, client, name, target, sha256_file(clip))
    bench.dropped.append(entry)
    if bench.rng.random() < 0.3:
        writer = threading.Thread(target=slow_write, args=(clip, target, bench.rng.random()))
        writer.start()
        return entry, writer
    shutil.copyfile(clip, target)
    return entry, None


def slow_write(clip: Path, target: Path, seed: float) -> None:
    """A slow upload: chunks appended with pauses well under the stability delay."""
    data = clip.read_bytes()
    pieces = 4 + int(seed * 6)
    size = len(data) // pieces + 1
    for start in range(0, len(data), size):
        with open(target, "ab") as handle:
            handle.write(data[start : start + size])
        time.sleep(0.05 + 0.15 * seed)


# ----------------------------------------------------------------- processes


def become_subreaper() -> None:
    """Orphans of the stages (LibreOffice, unoserver) are re-parented to the harness,
    so a kill can find them all."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def descendants(root: int) -> set[int]:
    """Every live process below ``root``, from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            children[int(fields[1])].append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:120]
    return "?"


def kill_everything() -> list[str]:
    """Freeze every descendant (SIGSTOP until no new one appears), then SIGKILL them all;
    returns their command lines."""
    stopped: dict[int, str] = {}
    while True:
        found = descendants(os.getpid()) - set(stopped)
        if not found:
            break
        for pid in found:
            stopped[pid] = command_line(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return list(stopped.values())


def reap_orphans() -> None:
    """Collect exited orphans (after every Popen of the round has been waited for)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


# ----------------------------------------------------------------- a round


Problem = tuple[str, str, str]  # (count, key that identifies it across rounds, message)
Launch = tuple[float, list[str]]  # (seconds after the previous start, command line)


@dataclass
class Outcome:
    stage: str
    how: str  # killed | finished | terminated
    at_s: float
    typical_s: float
    problems: list[Problem] = field(default_factory=list)


class Running:
    """One stage process, with the last lines of its stderr (a full pipe would block it)."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.name = command[command.index("--home") + 2]
        self.service = self.name == "watch" and "--once" not in command
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.tail: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail = [*self.tail[-4:], line.rstrip()]

    def wait(self) -> int:
        code = self.proc.wait()
        self.reader.join()
        return code

    def failure(self) -> Problem | None:
        """A non-zero exit of a command left to finish; a watcher stopped with SIGTERM
        exits 130 (Ctrl-C), or -15 when the signal came before its handler was set."""
        accepted = (0, 130, -signal.SIGTERM) if self.service else (0,)
        if self.proc.returncode in accepted:
            return None
        last = self.tail[-1] if self.tail else "?"
        return (
            "stuck",
            f"{self.name}-{last}",
            f"{self.name} exited {self.proc.returncode}: {last}",
        )


def typical(bench: Bench, stage: str) -> float:
    """The longest of the stage's recent complete runs (a first guess before any)."""
    key = {"watch": "once", "pair": "once", "busy": "approve"}.get(stage, stage)
    recent = bench.durations[key][-8:]
    return max(recent) if recent else FIRST_GUESS_S[key]


def stage_commands(bench: Bench, stage: str, store: JobStore) -> tuple[str, list[Launch]]:
    """The command lines of this round's stage, each with its delay after the one before.
    ``approve`` and ``busy`` (approve while the watcher runs) need a job in review."""
    review = store.jobs(JobState.REVIEW)
    if stage in ("approve", "busy") and not review:
        stage = "watch"
    watch, batch = (0.0, bench.cli("watch")), (0.0, bench.cli("batch"))
    if stage in ("approve", "busy"):
        job = bench.rng.choice(review)
        args = ("approve", job.id, "--reviewer", REVIEWER, *field_args(bench, job))
        approve = (bench.rng.uniform(0.0, 3.0) if stage == "busy" else 0.0, bench.cli(*args))
        return stage, [watch, approve] if stage == "busy" else [approve]
    named = {"watch": [watch], "once": [(0.0, bench.cli("watch", "--once"))], "batch": [batch]}
    return stage, named.get(stage, [watch, batch])


def dropped_by_hash(bench: Bench) -> dict[str, Dropped]:
    return {d.sha256: d for d in bench.dropped}


def approval_fields(bench: Bench, job: Job) -> dict[str, str]:
    """The client's required letter fields, with the dictation's invented name."""
    source = dropped_by_hash(bench).get(job.content_hash or "")
    client = next(c for c in CLIENTS if c.id == job.client)
    name = source.name if source else "Ysolde Unknown"
    return {**client.fields, client.name_field: name}


def field_args(bench: Bench, job: Job) -> list[str]:
    return [a for k, v in approval_fields(bench, job).items() for a in ("--field", f"{k}={v}")]


def secretary(bench: Bench, config: Config) -> int:
    """Approve some of the review queue through the library, as the review loop does."""
    from transcribe.review import approve_job

    with open_store(config, actor="chaos") as store:
        review = store.jobs(JobState.REVIEW)
    if len(review) < 2 or bench.rng.random() < 0.4:
        return 0
    chosen = bench.rng.sample(review, min(len(review) - 1, bench.rng.choice((1, 1, 2, 3))))
    for job in chosen:
        approve_job(config, job.id, fields=approval_fields(bench, job), reviewer=REVIEWER)
    return len(chosen)


def run_stage(bench: Bench, stage: str, launches: list[Launch]) -> Outcome:
    """Start the stage; SIGKILL it at a random point, or (one round in five) let it run
    to its end: a watcher, which has none, gets SIGTERM then (at that random point when
    it runs alone, once the commands beside it have ended otherwise)."""
    limit = typical(bench, stage)
    killing = bench.rng.random() < 0.8
    delay = bench.rng.uniform(0.0, 1.1 * limit)
    started = time.monotonic()
    running = []
    for after, command in launches:
        time.sleep(after)
        running.append(Running(command, bench.env()))
    alone = all(r.service for r in running)
    if killing or alone:
        wait_for(running, started + delay, services_too=True)
    else:
        wait_for(running, started + RECOVERY_TIMEOUT_S, services_too=False)
    outcome = Outcome(stage, "finished", time.monotonic() - started, limit)
    if any(r.proc.poll() is None for r in running):
        outcome.how = "killed" if killing else "terminated"
        outcome.problems += stop(running, killing)
    for run in running:
        run.wait()
    reap_orphans()
    if outcome.how != "killed":
        outcome.problems += [p for p in (r.failure() for r in running) if p is not None]
    if outcome.how == "finished" and not outcome.problems and stage in FIRST_GUESS_S:
        bench.durations[stage].append(outcome.at_s)
    return outcome


def wait_for(running: list[Running], deadline: float, *, services_too: bool) -> None:
    """Until the deadline, or until every process (but watchers, unless
    ``services_too``) has exited."""
    while time.monotonic() < deadline:
        if not [r for r in running if r.proc.poll() is None and (services_too or not r.service)]:
            return
        time.sleep(0.02)


def stop(running: list[Running], killing: bool) -> list[Problem]:
    """SIGKILL the whole tree, or SIGTERM the stage (the watcher takes it as Ctrl-C):
    then whatever it leaves running is a problem."""
    if killing:
        kill_everything()
        return []
    problems: list[Problem] = []
    for run in running:
        with contextlib.suppress(ProcessLookupError):
            run.proc.terminate()
    for run in running:
        try:
            run.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            problems.append(("stuck", f"sigterm-{run.name}", f"{run.name} ignored SIGTERM"))
    return problems + orphans("after SIGTERM")


def orphans(when: str) -> list[Problem]:
    """Processes of the pipeline still running when none should: killed, and reported."""
    return [("stuck", f"orphan-{cmd}", f"left running {when}: {cmd}") for cmd in kill_everything()]


def recover(bench: Bench) -> list[Problem]:
    """The restart: ``watch --once`` (recovery sweep, then intake and transcription)."""
    result = subprocess.run(
        bench.cli("watch", "--once"),
        env=bench.env(),
        capture_output=True,
        text=True,
        timeout=RECOVERY_TIMEOUT_S,
    )
    problems = orphans("by watch --once")
    reap_orphans()
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        message = f"watch --once exited {result.returncode}: {last}"
        problems.append(("stuck", f"recovery-{last}", message))
    return problems


# ----------------------------------------------------------------- the invariants


@dataclass(frozen=True)
class Snapshot:
    """What the job store says after recovery, read once per round."""

    jobs: list[Job]
    events: list[dict[str, Any]]
    items: dict[tuple[str, str], ArchiveEntry]


def snapshot(config: Config) -> tuple[Snapshot, list[Problem]]:
    with open_store(config, actor="chaos") as store:
        rows = store.archive_entries()
        snap = Snapshot(store.jobs(), store.events(), {(r.job_id, r.kind): r for r in rows})
        report = verify_audit(store)
    problems = [] if report.ok else [("audit", report.problem or "?", str(report.problem))]
    return snap, problems


def check_dictations(bench: Bench, config: Config, snap: Snapshot) -> list[Problem]:
    """lost and duplicated, from the dictations' side."""
    by_hash: dict[str, list[Job]] = defaultdict(list)
    for job in snap.jobs:
        by_hash[job.content_hash or ""].append(job)
    problems: list[Problem] = []
    for entry in bench.dropped:
        jobs = by_hash.get(entry.sha256, [])
        held = [j for j in jobs if j.state not in (JobState.DUPLICATE, JobState.QUARANTINED)]
        tag = f"dictation {entry.number} ({entry.path.name})"
        for job in jobs:
            if job.state == JobState.DUPLICATE:
                problems.append(("duplicated", f"dup-{job.id}", f"{tag} taken in twice: {job.id}"))
        if len(held) > 1:
            ids = ",".join(j.id for j in held)
            problems.append(("duplicated", f"held-{entry.number}", f"{tag} held by {ids}"))
        if held and not audio_intact(config, held[0], snap):
            problems.append(("lost", f"audio-{entry.number}", f"{tag}: audio of {held[0].id} gone"))
        if not held and not in_inbox(entry) and not jobs:
            problems.append(("lost", f"gone-{entry.number}", f"{tag} is nowhere"))
    return problems


def in_inbox(entry: Dropped) -> bool:
    return entry.path.is_file() and sha256_file(entry.path) == entry.sha256


def audio_intact(config: Config, job: Job, snap: Snapshot) -> bool:
    """The dictation's bytes are still held: in the work folder, or encrypted and indexed."""
    if job.state == JobState.ARCHIVED:
        item = snap.items.get((job.id, "audio"))
        if item is None or item.sha256 != job.content_hash:
            return False
        sealed = config.paths.archive / item.path
        return sealed.is_file() and sealed.stat().st_size == item.age_size
    audio = config.paths.home / (job.audio_path or "")
    return audio.is_file() and sha256_file(audio) == job.content_hash


def check_jobs(bench: Bench, config: Config, snap: Snapshot) -> list[Problem]:
    """stuck: every job must have come to rest once recovery has run."""
    known = {d.sha256 for d in bench.dropped}
    resting = {JobState.REVIEW, JobState.ARCHIVED, JobState.DUPLICATE}
    problems: list[Problem] = []
    for job in snap.jobs:
        what = None
        if job.state not in resting:
            what = f"is {job.state}" + (f" ({job.reason})" if job.reason else "")
        elif job.inbox_path or job.claimed_by:
            what = f"intake or claim not finished ({job.inbox_path}, {job.claimed_by})"
        elif job.content_hash not in known:
            what = "holds content nobody dropped"
        if what:
            problems.append(("stuck", f"job-{job.id}-{job.state}", f"job {job.id} {what}"))
    for path in sorted(p for p in config.paths.inbox.rglob("*") if not p.is_dir()):
        rel = path.relative_to(config.paths.home)
        problems.append(("stuck", f"inbox-{rel}", f"{rel} left in the inbox"))
    return problems


def check_trails(snap: Snapshot) -> list[Problem]:
    """claimed_twice, review reached twice, and state changes that skip a step."""
    trails: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in snap.events:
        if row["job_id"] and row["to_state"]:
            trails[row["job_id"]].append(row)
    problems: list[Problem] = []
    for job_id, rows in trails.items():
        state, reviews, retries = None, 0, 0
        for row in rows:
            if state is not None and row["from_state"] != state:
                message = f"job {job_id}: #{row['seq']} leaves {row['from_state']}, not {state}"
                problems.append(("audit", f"trail-{row['seq']}", message))
            if row["to_state"] == JobState.TRANSCRIBING and state == JobState.TRANSCRIBING:
                message = f"job {job_id} claimed again at #{row['seq']} while claimed"
                problems.append(("claimed_twice", f"claim-{row['seq']}", message))
            reviews += (row["from_state"], row["to_state"]) == ("transcribing", "review")
            retries += row["detail"] == "retry"
            state = row["to_state"]
        if reviews > 1 + retries:
            message = f"job {job_id} transcribed into review {reviews} times"
            problems.append(("duplicated", f"review-{job_id}-{reviews}", message))
    return problems


def check_archive_files(config: Config, snap: Snapshot) -> list[Problem]:
    """Every encrypted file is indexed, every indexed file is there, whole."""
    indexed = {row.path: row for row in snap.items.values()}
    problems: list[Problem] = []
    for path in sorted(config.paths.archive.rglob("*.age")):
        rel = path.relative_to(config.paths.archive).as_posix()
        if rel not in indexed:
            problems.append(("duplicated", f"age-{rel}", f"archive/{rel} is not in the index"))
    for rel, row in indexed.items():
        path = config.paths.archive / rel
        if not path.is_file() or path.stat().st_size != row.age_size:
            problems.append(("lost", f"item-{rel}", f"archive/{rel} missing or truncated"))
    return problems


def check_leftovers(bench: Bench, config: Config, snap: Snapshot) -> list[Problem]:
    """plaintext: temporary files, scratch folders, letters and folders that should be gone."""
    problems: list[Problem] = []
    templates = config.paths.templates
    for path in sorted(config.paths.home.rglob("*")):
        rel = path.relative_to(config.paths.home)
        stray = path.name.startswith(TMP_PREFIX) or (
            path.is_dir() and path.name.startswith("render-")
        )
        letter = path.suffix.lower() in (".pdf", ".docx", ".odt") and templates not in path.parents
        if stray or letter:
            problems.append(("plaintext", f"file-{rel}", f"{rel} left behind"))
    for path in sorted(bench.tmp.iterdir()):
        if path.name in THIRD_PARTY_TMP:
            continue
        problems.append(("plaintext", f"tmp-{path.name}", f"TMPDIR/{path.name} left behind"))
    return problems + check_work_folders(config, snap)


def check_work_folders(config: Config, snap: Snapshot) -> list[Problem]:
    """Only jobs not yet archived keep a work folder; archived ones keep no audio."""
    jobs = {job.id: job for job in snap.jobs}
    problems: list[Problem] = []
    folders = config.paths.work / "jobs"
    for folder in sorted(folders.iterdir()) if folders.is_dir() else []:
        job = jobs.get(folder.name)
        if job is None or job.state == JobState.ARCHIVED:
            owner = "no job" if job is None else "an archived job"
            message = f"work/jobs/{folder.name} of {owner} left behind"
            problems.append(("plaintext", f"folder-{folder.name}", message))
    for job in snap.jobs:
        audio = config.paths.home / job.audio_path if job.audio_path else None
        if job.state == JobState.ARCHIVED and audio is not None and audio.exists():
            problems.append(("plaintext", f"audio-{job.id}", f"{job.audio_path} left in clear"))
    return problems


def check_names(bench: Bench, config: Config, snap: Snapshot) -> list[Problem]:
    """No archived dictation's invented patient name is readable anywhere in clear."""
    by_hash = dropped_by_hash(bench)
    needles = {
        by_hash[job.content_hash].name.split()[1].lower().encode(): job.id
        for job in snap.jobs
        if job.state == JobState.ARCHIVED and job.content_hash in by_hash
    }
    if not needles:
        return []
    problems: list[Problem] = []
    for path in clear_files(bench, config):
        data = path.read_bytes().lower()
        for needle, job_id in needles.items():
            if needle in data:
                message = f"{path.name} holds the name of archived job {job_id}"
                problems.append(("plaintext", f"name-{job_id}-{path.name}", message))
    return problems


def clear_files(bench: Bench, config: Config) -> Iterator[Path]:
    """Files that are not encrypted: the workspace (templates aside) and the TMPDIR."""
    for root in (config.paths.home, bench.tmp):
        for path in root.rglob("*"):
            if path.suffix == ".age" or config.paths.templates in path.parents:
                continue
            if path.is_file() and not path.is_symlink():
                yield path


def check_integrity(config: Config) -> list[Problem]:
    """``PRAGMA integrity_check`` on every SQLite file of the workspace."""
    problems: list[Problem] = []
    for path in sorted(config.paths.home.rglob("*")):
        if path.suffix == ".age" or not path.is_file() or path.name.endswith(("-wal", "-shm")):
            continue
        with open(path, "rb") as handle:
            if handle.read(16) != SQLITE_MAGIC:
                continue
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.Error as exc:
            verdict = str(exc)
        finally:
            db.close()
        if verdict != "ok":
            problems.append(("integrity", f"{path.name}-{verdict}", f"{path.name}: {verdict}"))
    return problems


def check_audit_cli(bench: Bench) -> list[Problem]:
    """The real ``cli.py audit verify``, now and then (it costs a process start)."""
    result = subprocess.run(bench.cli("audit", "verify"), capture_output=True, text=True)
    if result.returncode == 0:
        return []
    line = (result.stderr.strip().splitlines() or ["?"])[-1]
    return [("audit", f"cli-{line}", f"audit verify exited {result.returncode}: {line}")]


def check(bench: Bench, config: Config, with_cli: bool) -> tuple[list[Problem], Snapshot]:
    snap, problems = snapshot(config)
    problems += check_dictations(bench, config, snap)
    problems += check_jobs(bench, config, snap)
    problems += check_trails(snap)
    problems += check_archive_files(config, snap)
    problems += check_leftovers(bench, config, snap)
    problems += check_names(bench, config, snap)
    problems += check_integrity(config)
    if with_cli:
        problems += check_audit_cli(bench)
    return problems, snap


# ----------------------------------------------------------------- main


def play_round(bench: Bench, number: int, tally: Tally, last: bool) -> None:
    """Drop, maybe approve, run a stage and kill it, recover, check, print one line."""
    config = bench.config()
    drops = bench.rng.choice((1, 1, 2))
    writers = [w for w in (drop(bench)[1] for _ in range(drops)) if w is not None]
    approved = secretary(bench, config)
    with open_store(config, actor="chaos") as store:
        stage, launches = stage_commands(bench, bench.rng.choices(STAGES, STAGE_WEIGHTS)[0], store)
    outcome = run_stage(bench, stage, launches)
    for writer in writers:
        writer.join()
    started = time.monotonic()
    problems = outcome.problems + recover(bench)
    recovered = time.monotonic()
    found, snap = check(bench, config, with_cli=last or number % 25 == 0)
    checked = time.monotonic()
    tally.rounds += 1
    tally.kills += outcome.how == "killed"
    new = [p for p in problems + found if tally.add(p[0], p[1])]
    states = Counter(str(job.state) for job in snap.jobs)
    summary = " ".join(f"{s}={n}" for s, n in sorted(states.items()))
    print(
        f"round {number:>3}  {stage:<7} {outcome.how:<10} at {outcome.at_s:5.2f} s "
        f"of ~{outcome.typical_s:4.1f} s  +{drops} dropped, {approved} approved, "
        f"recovery {recovered - started:4.1f} s, checks {checked - recovered:3.1f} s  "
        f"{summary}  {'ok' if not new else f'{len(new)} new problem(s)'}"
    )
    for count, _, message in new:
        print(f"    ! {count}: {message}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    parser.add_argument(
        "--workspace", type=Path, default=None, help="build it here (kept); must not exist"
    )
    return parser.parse_args()


@contextlib.contextmanager
def bench_root(args: argparse.Namespace) -> Iterator[Path]:
    """The harness folder: given (and kept), or temporary (kept only with --keep)."""
    if args.workspace is not None:
        args.workspace.mkdir(parents=True)
        yield args.workspace.resolve()
        return
    root = Path(tempfile.mkdtemp(prefix="chaos-"))
    try:
        yield root
    finally:
        if args.keep:
            print(f"workspace kept: {root / 'ws'}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    args = parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    become_subreaper()
    with bench_root(args) as root:
        bench = Bench(root, random.Random(seed))
        make_workspace(bench)
        print(f"chaos: {args.rounds} round(s), seed {seed}, workspace {bench.home}")
        tally = Tally()
        for number in range(1, args.rounds + 1):
            play_round(bench, number, tally, last=number == args.rounds)
        print(tally.line())
    return 0 if tally.clean() else 1


if __name__ == "__main__":
    sys.exit(main())
