"""Claim-to-start latency and per-job queue overhead of platform mode's work queue,
against the embedded mode, with 1,000 and 10,000 short jobs queued (issue 13).

Platform mode only pays if its queue costs little next to a transcription and does
not slow down as work piles up: a backlog of 10,000 dictations (a month of a large
office, or a day of workers being down) must start each job as fast as a backlog of
1,000. So, for each size N, on a fresh store each time:

- **queue**: N jobs go in the way intake commits them: ``insert_job`` with
  ``inbox_path`` set, then the ``update`` that clears it, which ends the intake and,
  in platform mode, defers the transcription task in the same transaction
  (:mod:`transcribe.queue`). The time that commit returns is when the job became
  claimable.
- **drain**: *embedded*, the SQLite store (``[store] url`` empty) claimed as ``watch``
  claims it (:func:`~transcribe.stages.transcription.transcribe_pending`); *platform*,
  the PostgreSQL store and a real ``transcribe worker`` in this process
  (:func:`~transcribe.runners.worker.run_worker`: two Procrastinate workers,
  LISTEN/NOTIFY, heartbeats, one connection to the store per task,
  ``begin_attempt`` fencing), on the CPU queues. Both with one slot (one job body at
  a time), and the stage body swapped for a no-op: no Whisper; each job is committed
  to ``review`` with the run's fence (:func:`~transcribe.stages.transcription.commit`),
  as :func:`~transcribe.stages.transcription.save_results` does, minus the files.
  The worker is stopped with SIGTERM, as an operator stops it, once all N have run.

Measured:

- **claim-to-start**, per job: from the moment a free worker could have taken it
  (its commit, or the end of the previous job body if later) to the start of its
  body: the fetch (or listing and claim), the hand-over to a thread, the store
  connection, ``begin_attempt``. Counted from the commit alone, it would mostly be
  the wait behind the jobs ahead of it, which grows with N by definition.
- **per-job overhead**: the drain's wall time (start of the worker, or of
  ``transcribe_pending``, to the end of the last body) over N, no-op commits included.
- **enqueue**: the two intake commits (and the deferral), per job.

The PostgreSQL server is the tests' throwaway cluster (:mod:`tests.pgserver`,
``fsync`` off), stopped at the end, on an error or Ctrl-C too; the SQLite store syncs
every commit (``synchronous=FULL``), as it always does.

    .venv/bin/python bench/platform_queue.py [--sizes 1000,10000] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402
from unittest import mock  # noqa: E402

from bench.service import percentile  # noqa: E402
from tests.conftest import set_config, use_store  # noqa: E402
from tests.pgserver import PgServer, server_binaries  # noqa: E402
from transcribe.config import Config  # noqa: E402
from transcribe.queue import default_queues  # noqa: E402
from transcribe.runners.worker import WorkerOptions, run_worker  # noqa: E402
from transcribe.stages import transcription  # noqa: E402
from transcribe.store import Job, JobState, JobStore, new_job_id, open_store, worker_id  # noqa: E402
from transcribe.workspace import init_workspace, load_config  # noqa: E402

CLIENT = "bench-clinic"
MODES = ("embedded", "platform")
QUICK_SIZES = (100, 1000)


class NoEngine:
    """Stands in for the Whisper engine, which the no-op body never calls."""

    device = SimpleNamespace(device="none", compute_type="no-op (bench)")

    def load(self) -> NoEngine:
        return self


@dataclass
class Timeline:
    """When each job became claimable, and each run of the stage body: start, end and
    the jobs it was given (a group of up to 8 in embedded mode, one in platform)."""

    expected: int
    claimable: dict[str, float] = field(default_factory=dict)
    runs: list[tuple[float, float, list[str]]] = field(default_factory=list)
    ran: int = 0  # jobs the body was given, counted as it goes (no pass over runs)
    on_done: Callable[[], None] = lambda: None
    lock: threading.Lock = field(default_factory=threading.Lock)


def commit_review(store: JobStore, job: Job) -> Job:
    """The commit of :func:`~transcribe.stages.transcription.save_results`, no files."""
    return transcription.commit(
        store, job, JobState.REVIEW, expect=JobState.TRANSCRIBING, claimed_by=None, claimed_at=None
    )


def noop_stage(timeline: Timeline) -> Callable[..., list[Job]]:
    """A stand-in for :func:`~transcribe.stages.transcription.transcribe_group`: each
    claimed job commits ``review`` under its run's fence, and nothing else happens."""

    def body(config: Config, store: JobStore, engine: Any, jobs: Sequence[Job]) -> list[Job]:
        started = time.perf_counter()
        done = [commit_review(store, job) for job in jobs]
        with timeline.lock:
            timeline.runs.append((started, time.perf_counter(), [job.id for job in jobs]))
            timeline.ran += len(jobs)
            if timeline.ran >= timeline.expected:
                timeline.on_done()
        return done

    return body


def unused_job_id(taken: dict[str, float]) -> str:
    """A job id as intake draws it, drawn again if already taken: a day's ids share
    their date and differ by 24 random bits, so 10,000 in one day collide more often
    than not (intake itself does not draw again; see bench/README.md)."""
    while (job_id := new_job_id()) in taken:
        pass
    return job_id


def queue_jobs(config: Config, timeline: Timeline) -> float:
    """Commit ``timeline.expected`` jobs as intake does; returns the seconds it took."""
    started = time.perf_counter()
    with open_store(config, actor="bench intake") as store:
        for n in range(timeline.expected):
            job_id = unused_job_id(timeline.claimable)
            store.insert_job(
                id=job_id, client=CLIENT, source_name=f"d{n}.wav", content_hash=job_id,
                inbox_path=f"inbox/{CLIENT}/d{n}.wav", audio_path=f"work/jobs/{job_id}/a.wav",
                duration_s=5.0, claimed_by=worker_id(), claimed_at=time.time(),
            )  # fmt: skip
            store.update(job_id, inbox_path=None, claimed_by=None, claimed_at=None)
            timeline.claimable[job_id] = time.perf_counter()
    return time.perf_counter() - started


def drain_embedded(config: Config, timeline: Timeline) -> None:
    """What ``watch --once`` does once the inbox is taken in."""
    with open_store(config, actor="watcher") as store:
        transcription.transcribe_pending(config, store, NoEngine())  # type: ignore[arg-type]


def drain_platform(config: Config, timeline: Timeline) -> None:
    """``transcribe worker`` on the CPU queues, stopped as SIGTERM stops it."""
    timeline.on_done = lambda: os.kill(os.getpid(), signal.SIGTERM)
    options = WorkerOptions(queues=default_queues(on_gpu=False), concurrency=1)
    run_worker(config, options, NoEngine)  # type: ignore[arg-type]


DRAINS = {"embedded": drain_embedded, "platform": drain_platform}


@dataclass(frozen=True)
class Result:
    mode: str
    queued: int
    claim_to_start_s: list[float]
    drain_s: float
    enqueue_s: float

    @property
    def overhead_ms(self) -> float:
        return self.drain_s / self.queued * 1000

    @property
    def enqueue_ms(self) -> float:
        return self.enqueue_s / self.queued * 1000


def claim_to_start(timeline: Timeline, drain_started: float) -> list[float]:
    """Per job: its body's start, less when a free worker could first have taken it
    (the first job: from the drain's start, so a worker's start-up counts once)."""
    latencies = []
    previous_end = drain_started
    for started, ended, jobs in sorted(timeline.runs):
        latencies += [started - max(timeline.claimable[j], previous_end) for j in jobs]
        previous_end = ended
    return latencies


def measure(mode: str, config: Config, size: int) -> Result:
    """Queue ``size`` jobs, then drain them with the no-op body; every job runs once."""
    timeline = Timeline(expected=size)
    with mock.patch.object(transcription, "transcribe_group", noop_stage(timeline)):
        enqueue_s = queue_jobs(config, timeline)
        started = time.perf_counter()
        DRAINS[mode](config, timeline)
    ran = [j for _, _, jobs in timeline.runs for j in jobs]
    if sorted(ran) != sorted(timeline.claimable):
        raise RuntimeError(f"{mode}: {len(ran)} job bodies ran for {size} jobs queued")
    drain_s = max(ended for _, ended, _ in timeline.runs) - started
    return Result(mode, size, claim_to_start(timeline, started), drain_s, enqueue_s)


def workspace(folder: Path, store_url: str) -> Config:
    """A fresh workspace; on a server's store (``store_url``), in platform mode."""
    home = folder / "home"
    init_workspace(home)
    if not store_url:
        return load_config(home)
    use_store(home, store_url)
    return set_config(home, enabled="true")


@contextmanager
def postgres() -> Iterator[PgServer]:
    """The tests' throwaway server, stopped (and its folder removed) whatever happens."""
    binaries = server_binaries()
    if binaries is None:
        raise SystemExit("no PostgreSQL server binaries: run `make setup`")
    server = PgServer(binaries).start()
    try:
        yield server
    finally:
        server.stop()


def run_all(sizes: Sequence[int], root: Path, server: PgServer) -> list[Result]:
    results = []
    for size in sizes:
        for mode in MODES:
            url = server.url(server.create_database()) if mode == "platform" else ""
            config = workspace(Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root)), url)
            result = measure(mode, config, size)
            print(
                f"  {mode} {size}: drained in {result.drain_s:.1f} s", file=sys.stderr, flush=True
            )
            results.append(result)
    return results


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.2f}"


def table(results: list[Result]) -> str:
    embedded = {r.queued: r for r in results if r.mode == "embedded"}
    lines = [
        "| mode | queued | claim-to-start p50 ms | p95 ms | per-job overhead ms "
        "| enqueue ms/job | overhead platform/embedded |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        base = embedded.get(r.queued)
        ratio = f"{r.overhead_ms / base.overhead_ms:.2f}" if base and r.mode != "embedded" else ""
        lines.append(
            f"| {r.mode} | {r.queued:,} | {ms(r.claim_to_start_s, 50)} | "
            f"{ms(r.claim_to_start_s, 95)} | {r.overhead_ms:.2f} | {r.enqueue_ms:.2f} | {ratio} |"
        )
    return "\n".join(lines)


def summary(results: list[Result]) -> str:
    """One line: how each mode's overhead and p95 grew from the smallest size to the
    largest, and the platform/embedded ratio at the largest."""
    small, large = min(r.queued for r in results), max(r.queued for r in results)
    pick = {(r.mode, r.queued): r for r in results}
    parts = []
    for mode in MODES:
        a, b = pick[(mode, small)], pick[(mode, large)]
        parts.append(
            f"{mode} overhead {a.overhead_ms:.2f} -> {b.overhead_ms:.2f} ms/job "
            f"(x{b.overhead_ms / a.overhead_ms:.2f}), p95 claim-to-start "
            f"x{percentile(b.claim_to_start_s, 95) / percentile(a.claim_to_start_s, 95):.2f}"
        )
    ratio = pick[("platform", large)].overhead_ms / pick[("embedded", large)].overhead_ms
    return (
        f"from {small:,} to {large:,} queued: {'; '.join(parts)}; "
        f"platform/embedded at {large:,}: x{ratio:.2f}"
    )


def sizes_of(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part) for part in text.split(",") if part.strip())
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes are positive whole numbers, e.g. 1000,10000")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=sizes_of, default=(1000, 10000), help="jobs queued")
    parser.add_argument(
        "--quick", action="store_true", help=f"sizes {','.join(map(str, QUICK_SIZES))}"
    )
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else args.sizes
    root = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    try:
        with postgres() as server:
            results = run_all(sizes, root, server)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"no-op stage body, one slot; {os.cpu_count()} CPU cores")
    print(table(results))
    print()
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
