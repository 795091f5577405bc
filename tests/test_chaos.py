"""The crash-anywhere harness (bench/chaos.py) and the recovery sweep it relies on.

Three depths: the harness run for real as a subprocess (a few rounds, real model,
LibreOffice and age), its invariant checks against planted faults (so a clean report
means something), and the temporary-file sweep against writers killed for real.
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import CLIENT, PROJECT
from transcribe.config import Config
from transcribe.fsutil import TMP_PREFIX, temp_prefix
from transcribe.stages.intake import sweep_temp_files
from transcribe.store import claim_is_stale, open_store

COUNTS_LINE = re.compile(
    r"^rounds=3 kills=\d+ lost=0 duplicated=0 claimed_twice=0 stuck=0 plaintext=0 "
    r"integrity=0 audit=0$"
)

WRITER = """
import sys, time
from pathlib import Path
from transcribe.fsutil import atomic_output
with atomic_output(Path(sys.argv[1])) as staged:
    staged.file.write(b"half a letter")
    staged.file.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def load_chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chaos", PROJECT / "bench" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_three_rounds_of_kills_leave_every_count_at_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "bench" / "chaos.py"),
            "--rounds",
            "3",
            "--seed",
            "4",
            "--workspace",
            str(tmp_path / "chaos"),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len([line for line in lines if line.startswith("round ")]) == 3, result.stdout
    assert COUNTS_LINE.match(lines[-1]), lines[-1]


@pytest.fixture
def chaos_bench(tmp_path: Path) -> tuple[ModuleType, object, Config]:
    chaos = load_chaos()
    bench = chaos.Bench(tmp_path / "chaos", random.Random(0))
    chaos.make_workspace(bench)
    return chaos, bench, bench.config()


def counts(chaos: ModuleType, bench: object, config: Config) -> dict[str, int]:
    problems, _ = chaos.check(bench, config, with_cli=False)
    found = dict.fromkeys(chaos.COUNTS, 0)
    for count, _, _ in problems:
        found[count] += 1
    return found


def test_the_checks_see_planted_faults_and_nothing_on_a_clean_workspace(
    chaos_bench: tuple[ModuleType, object, Config],
) -> None:
    chaos, bench, config = chaos_bench
    assert counts(chaos, bench, config) == dict.fromkeys(chaos.COUNTS, 0)

    inbox = config.paths.inbox / CLIENT / "never-taken.wav"
    inbox.write_bytes(b"RIFF")
    gone = chaos.Dropped(1, chaos.CLIENTS[0], "Ysolde Test", inbox.with_name("x.wav"), "0" * 64)
    bench.dropped.append(gone)
    (config.paths.work / f"{TMP_PREFIX}12345-left").write_bytes(b"half")
    (bench.tmp / "lo-oneshot-x").mkdir()
    with open_store(config) as store:
        store.insert_job(
            id="20260101-abcdef", client=CLIENT, source_name="a.wav", content_hash="1" * 64
        )
        store.claim("20260101-abcdef")
        store.db.execute("UPDATE jobs SET state = 'received' WHERE id = '20260101-abcdef'")
    found = counts(chaos, bench, config)
    assert found["lost"] == 1  # dropped, and neither in the inbox nor held by a job
    assert found["stuck"] == 2  # the file left in the inbox, the job not at rest
    assert found["plaintext"] == 2  # the .tmp- file and the LibreOffice scratch
    assert found["audit"] == 1  # the job's state is not where its audit trail ends


def test_the_sweep_removes_what_a_killed_writer_left_and_spares_a_live_one(
    config: Config,
) -> None:
    folder = config.paths.work / "jobs" / "20260101-abcdef"
    folder.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder / f"{name}.json")],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("killed", "alive")
    ]
    for writer in writers:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
    killed, alive = writers
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    old = time.time() - 7200
    [live_tmp] = [p for p in folder.iterdir() if p.name.startswith(f"{TMP_PREFIX}{alive.pid}.")]
    os.utime(live_tmp, (old, old))  # old, but its writer lives: kept
    legacy_old = folder / f"{TMP_PREFIX}legacy-old"
    legacy_new = folder / f"{TMP_PREFIX}legacy-new"
    for path in (legacy_old, legacy_new):
        path.write_bytes(b"x")
    os.utime(legacy_old, (old, old))
    try:
        removed = sweep_temp_files(config)
        left = sorted(p.name for p in folder.iterdir())
    finally:
        alive.kill()
        alive.wait()
    assert len(removed) == 2 and legacy_old in removed
    assert left == sorted([live_tmp.name, legacy_new.name])
    assert temp_prefix().startswith(f"{TMP_PREFIX}{os.getpid()}.")
    shutil.rmtree(folder)


def test_a_claim_held_by_a_dead_but_unreaped_worker_is_stale() -> None:
    """A killed worker whose parent has not reaped it yet (a zombie) still answers
    kill(pid, 0); its claim must be freed all the same, not after claim_timeout_s."""
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the worker did not exit"
        time.sleep(0.05)
    try:
        claim = f"{socket.gethostname()}:{worker.pid}"
        assert claim_is_stale(claim, time.time(), timeout_s=3600)
        assert not claim_is_stale(f"{socket.gethostname()}:{os.getppid()}", time.time(), 3600)
    finally:
        worker.wait()


def children_named(word: str) -> list[int]:
    """Our own child processes whose command line holds ``word``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and word.encode() in command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_ctrl_c_while_the_warm_libreoffice_starts_leaves_no_server_running(
    config: Config,
) -> None:
    """The watcher turns SIGTERM into Ctrl-C; arriving while unoserver boots, it must
    not leave that server (in a session of its own) running for ever."""
    from transcribe.stages.letter import _converter_for

    main = threading.get_ident()

    def interrupt_once_the_server_runs() -> None:
        deadline = time.monotonic() + 60
        while not children_named("unoserver") and time.monotonic() < deadline:
            time.sleep(0.02)
        signal.pthread_kill(main, signal.SIGINT)

    watcher = threading.Thread(target=interrupt_once_the_server_runs)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt), _converter_for(config, 3):
            time.sleep(60)  # only reached if the server was up before the interrupt
    finally:
        watcher.join()
        left = children_named("unoserver")
        for pid in left:
            os.killpg(pid, signal.SIGKILL)
    assert left == []
