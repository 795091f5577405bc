"""Load on one `transcribe serve`: secretaries reviewing and authors uploading at once.

Loopback only, bounded in time. A fresh demo workspace (embedded SQLite store, the
default, or ``--postgres``: a throwaway PostgreSQL cluster as the tests start one)
gets ``--secretaries`` secretary accounts and ``--authors`` author accounts of the
Riverside Clinic, and enough jobs in review for every secretary to work all
along (hand-made drafts over a 12 s WAV, no Whisper: the load is on the service).
Then, for ``--seconds``:

- each secretary takes a job of their own (no two secretaries contend for one), takes
  its lease, reads the draft, fetches two audio windows, saves ``--saves`` corrections
  one at a time (the last with the letter's fields), approves, and takes the next
  (the job in hand is finished after the time is up, so a run lasts a little longer);
- each author uploads a new dictation (3 s of noise, its own content, so intake's
  decoding child runs each time) and waits.

Between two requests every simulated person thinks for ``--think`` seconds (drawn
uniformly between half and one and a half times it): people type, they do not hammer.
The server is the real command in its own process; the simulated people share one
asyncio loop (httpx), so the load generator stays light on a small machine.

Counted at the end, from the server's own files:

- **errors**: any answer that is not 2xx, any failed request;
- **lost saves**: for every job touched, saves the server acknowledged that its draft
  does not hold (its revision below the count acknowledged, or its text not the one
  the client built by applying the same edits with :func:`transcribe.draft.apply_edit`).

Exit status 1 when either is not zero.

    .venv/bin/python bench/service.py [--seconds 60] [--secretaries 30] [--authors 10]
        [--postgres]     # the job store on a throwaway PostgreSQL server instead
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import wave
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from tests.conftest import use_store  # noqa: E402
from tests.pgserver import PgServer, server_binaries  # noqa: E402
from tests.test_review_session import RIVERSIDE_REQUIRED  # noqa: E402
from transcribe.draft import TOKEN, apply_edit, load_draft, new_draft, save_draft  # noqa: E402
from transcribe.service.accounts import add_account  # noqa: E402
from transcribe.stages.transcription import draft_path, job_dir  # noqa: E402
from transcribe.store import JobState, new_job_id, open_store  # noqa: E402
from transcribe.workspace import init_workspace, load_config  # noqa: E402

CLIENT = "riverside-clinic"
PASSWORD = "bench password for a throwaway workspace"
FIELDS = RIVERSIDE_REQUIRED  # what the Riverside Clinic's letter requires
TEXT = (
    "Dear Doctor Patl, thank you for seeing this patient. She has palpitations and "
    "mild breathlessness on exertion. Her blood pressure is one hundred and forty over "
    "ninety. I have started bisoprolol and would be grateful for an echocardiography."
)
REPLACEMENTS = ("Patel", "tachycardia", "dyspnoea", "apixaban", "review", "ninety-five")
KINDS = ("lease", "draft", "audio", "save", "approve", "upload")


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    expected: dict[str, str] = field(default_factory=dict)
    approved: int = 0
    uploads: int = 0

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(f"{kind}: {what}")


def words(text: str) -> list[dict[str, Any]]:
    """Whisper-like words for a hand-made draft (half a second each)."""
    found = [m.group() for m in TOKEN.finditer(text)]
    return [
        {"word": f" {w}", "start": i * 0.4, "end": i * 0.4 + 0.3,
         "probability": 0.5 if i % 7 == 2 else 0.95, "segment": 0}
        for i, w in enumerate(found)
    ]  # fmt: skip


def wav(seconds: float, seed: int) -> bytes:
    samples = np.random.default_rng(seed).normal(0, 3000, int(seconds * 16000))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.clip(-32000, 32000).astype("<i2").tobytes())
    return buffer.getvalue()


def prepare(
    home: Path, secretaries: int, authors: int, jobs_each: int, store_url: str
) -> dict[str, list[str]]:
    """The workspace, its accounts, and each secretary's own jobs in review."""
    init_workspace(home, demo=True)
    use_store(home, store_url)
    config = load_config(home)
    audio = wav(12.0, seed=0)
    plan: dict[str, list[str]] = {}
    with open_store(config, actor="bench") as store:
        for i in range(secretaries):
            name = f"sec{i:02d}"
            add_account(config, store, name, role="secretary", clients=[CLIENT], password=PASSWORD)
            plan[name] = []
        for i in range(authors):
            add_account(
                config, store, f"author{i:02d}", role="author", clients=[CLIENT],
                author=f"Dr Author {i:02d}", password=PASSWORD,
            )  # fmt: skip
        for name in plan:
            for _ in range(jobs_each):
                job_id = new_job_id()
                job = store.insert_job(
                    id=job_id, client=CLIENT, state=str(JobState.REVIEW), source_name="d.wav",
                    priority="normal", author="Dr Hart", document_type="clinic letter",
                    duration_s=12.0, created_at=time.time(),
                )  # fmt: skip
                folder = job_dir(config, job)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "audio.wav").write_bytes(audio)
                store.update(job_id, audio_path=str((folder / "audio.wav").relative_to(home)))
                draft = new_draft(job_id, "en", TEXT, words(TEXT), {}, postprocessing={})
                save_draft(draft_path(config, job), draft)
                plan[name].append(job_id)
    return plan


class Person:
    """One simulated account on one HTTP connection pool."""

    def __init__(self, http: httpx.AsyncClient, name: str, tally: Tally, think_s: float) -> None:
        self.http, self.name, self.tally, self.think_s = http, name, tally, think_s
        self.token = ""

    async def login(self) -> None:
        answer = await self.http.post("/login", json={"name": self.name, "password": PASSWORD})
        answer.raise_for_status()
        self.token = answer.json()["token"]

    async def think(self) -> None:
        await asyncio.sleep(random.uniform(0.5, 1.5) * self.think_s)

    async def send(self, kind: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        started = time.perf_counter()
        try:
            answer = await self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            self.tally.error(kind, f"{type(exc).__name__}: {exc}")
            return None
        self.tally.latencies[kind].append(time.perf_counter() - started)
        if not answer.is_success:
            self.tally.error(kind, f"HTTP {answer.status_code} {answer.text[:160]}")
            return None
        return answer


async def secretary(person: Person, jobs: list[str], saves: int, until: float) -> None:
    tally = person.tally
    for job_id in jobs:
        if time.monotonic() >= until:
            return
        lease = await person.send("lease", "POST", f"/jobs/{job_id}/lease", json={})
        if lease is None:
            continue
        token = lease.json()["lease"]
        await person.think()
        draft_answer = await person.send("draft", "GET", f"/jobs/{job_id}/draft")
        if draft_answer is None:
            continue
        draft = draft_answer.json()
        local = {k: draft[k] for k in ("text", "words", "unreliable")}
        revision = draft["revision"]
        for start in (1.0, 6.0):
            await person.think()
            params = {"start": start, "end": start + 3.5, "speed": 1}
            await person.send("audio", "GET", f"/jobs/{job_id}/audio", params=params)
        for n in range(saves):
            await person.think()
            spans = [(m.start(), m.end()) for m in TOKEN.finditer(local["text"])]
            a, b = random.choice(spans)
            replacement = random.choice(REPLACEMENTS)
            local = apply_edit(local, a, b, replacement)
            body: dict[str, Any] = {
                "revision": revision,
                "edits": [{"start": a, "end": b, "replacement": replacement, "kind": "word"}],
                "cursor": a,
            }
            if n == saves - 1:
                body["fields"] = FIELDS
            saved = await person.send(
                "save", "PUT", f"/jobs/{job_id}/draft", json=body, headers={"X-Review-Lease": token}
            )
            if saved is None:
                break
            revision = saved.json()["revision"]
            tally.acked[job_id] += 1
            tally.expected[job_id] = local["text"]
        else:
            await person.think()
            done = await person.send(
                "approve", "POST", f"/jobs/{job_id}/approve", json={"revision": revision},
                headers={"X-Review-Lease": token},
            )  # fmt: skip
            tally.approved += done is not None
            continue
        return  # a refused save: stop this person, the count says why


async def author(person: Person, seed: int, until: float) -> None:
    n = 0
    while time.monotonic() < until:
        n += 1
        headers = {
            "Content-Type": "audio/wav",
            "X-Dictation-Name": f"dictation-{seed}-{n}.wav",
            "X-Dictation-Client": CLIENT,
        }
        answer = await person.send(
            "upload", "POST", "/dictations", content=wav(3.0, seed * 100_000 + n), headers=headers
        )
        if answer is not None:
            person.tally.uploads += 1
        await person.think()
        await person.think()


def lost_saves(home: Path, tally: Tally) -> int:
    """Acknowledged saves the server's files do not hold."""
    config = load_config(home)
    lost = 0
    with open_store(config) as store:
        for job_id, acked in tally.acked.items():
            job = store.get(job_id)
            draft = load_draft(draft_path(config, job))
            held = int(draft.get("revision") or 0)
            approved = job_dir(config, job) / "approved.json"
            text = json.loads(approved.read_text())["text"] if approved.is_file() else draft["text"]
            lost += max(0, acked - held) + (text != tally.expected[job_id])
    return lost


def serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, str(PROJECT / "cli.py"), "--home", str(home), "serve", "--port",
             str(port)],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def run(args: argparse.Namespace, home: Path, plan: dict[str, list[str]], url: str) -> Tally:
    tally = Tally()
    trust = ssl.create_default_context(cafile=str(home / "keys" / "demo-ca.pem"))
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    clients = []
    people: list[tuple[Person, Any]] = []
    for name in [*plan, *(f"author{i:02d}" for i in range(args.authors))]:
        http = httpx.AsyncClient(base_url=url + "/api/v1", verify=trust, timeout=60, limits=limits)
        clients.append(http)
        person = Person(http, name, tally, args.think)
        await person.login()
        people.append((person, plan.get(name)))
    until = time.monotonic() + args.seconds
    tasks = [
        secretary(person, jobs, args.saves, until)
        if jobs is not None
        else author(person, index, until)
        for index, (person, jobs) in enumerate(people)
    ]
    await asyncio.gather(*tasks)
    for http in clients:
        await http.aclose()
    return tally


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def report(tally: Tally, lost: int, seconds: float) -> str:
    lines = [
        "| request | count | errors | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        values = tally.latencies.get(kind, [])
        lines.append(
            f"| {kind} | {len(values)} | {tally.errors.get(kind, 0)} | "
            f"{percentile(values, 50):.0f} | {percentile(values, 95):.0f} | "
            f"{max(values, default=float('nan')) * 1000:.0f} |"
        )
    errors = sum(tally.errors.values())
    saves = sum(tally.acked.values())
    lines.append("")
    lines.append(
        f"{seconds:.0f} s: {saves} saves acknowledged, {tally.approved} jobs approved, "
        f"{tally.uploads} dictations uploaded; errors={errors} lost_saves={lost}"
    )
    lines += [f"  first errors: {e}" for e in tally.first_errors]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--secretaries", type=int, default=30)
    parser.add_argument("--authors", type=int, default=10)
    parser.add_argument("--saves", type=int, default=4, help="corrections saved per job")
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds between requests")
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    parser.add_argument("--postgres", action="store_true", help="a PostgreSQL job store")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-service-"))
    home = folder / "home"
    per_job_s = (args.saves + 5) * args.think
    jobs_each = int(args.seconds / per_job_s) + 3
    postgres = None
    store_url = ""
    if args.postgres:
        binaries = server_binaries()
        if binaries is None:
            print("no PostgreSQL server binaries: run `make setup`", file=sys.stderr)
            return 2
        postgres = PgServer(binaries).start()
        store_url = postgres.url(postgres.create_database())
    try:
        plan = prepare(home, args.secretaries, args.authors, jobs_each, store_url)
        return measure(args, folder, home, plan)
    finally:
        if postgres is not None:
            postgres.stop()


def measure(args: argparse.Namespace, folder: Path, home: Path, plan: dict[str, list[str]]) -> int:
    port = free_port()
    server = serve(home, port, folder / "server.log")
    url = f"https://127.0.0.1:{port}"
    try:
        trust = ssl.create_default_context(cafile=str(home / "keys" / "demo-ca.pem"))
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/api/v1/openapi.json", verify=trust).is_success:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print((folder / "server.log").read_text(), file=sys.stderr)
                return 2
            time.sleep(0.2)
        started = time.monotonic()
        tally = asyncio.run(run(args, home, plan, url))
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    lost = lost_saves(home, tally)
    print(
        f"{args.secretaries} secretaries, {args.authors} authors, think {args.think:g} s, "
        f"{args.saves} saves a job; one server on 127.0.0.1, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'} store"
    )
    print(report(tally, lost, elapsed))
    if args.keep:
        print(f"workspace kept in {home}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if lost or sum(tally.errors.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
