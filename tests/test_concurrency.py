"""Two watchers and a batch on one workspace: every dictation taken in and transcribed once."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Backend, cli_workspace
from transcribe.config import load_config
from transcribe.store import open_store
from transcribe.store.audit import verify_audit

pytestmark = [pytest.mark.slow, pytest.mark.both_backends]


def test_two_watchers_and_a_batch_never_step_on_each_other(
    tmp_path: Path, clips: list[Path], backend: Backend
) -> None:
    home = tmp_path / "ws"
    cli = cli_workspace(home, clips, backend.url)
    shutil.copyfile(clips[0], home / "inbox" / "cabinet-martin" / "copy.wav")
    workers = [
        subprocess.Popen([*cli, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in (["watch", "--once"], ["batch"], ["watch", "--once"])
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        assert "Traceback" not in err
    jobs = json.loads(
        subprocess.run(
            [*cli, "status", "--json"], check=True, capture_output=True, text=True
        ).stdout
    )
    states = sorted(j["state"] for j in jobs)
    assert states == ["duplicate"] + ["review"] * len(clips)
    with open_store(load_config(home)) as store:
        reviews = Counter(e["job_id"] for e in store.events() if e["to_state"] == "review")
        assert verify_audit(store).ok
    assert len(reviews) == len(clips) and set(reviews.values()) == {1}
    assert not any(p.is_file() for p in (home / "inbox").rglob("*"))
