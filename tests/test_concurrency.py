"""Two watchers and a batch on one workspace: every dictation taken in and transcribed once."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_workspace

pytestmark = pytest.mark.slow


def test_two_watchers_and_a_batch_never_step_on_each_other(
    tmp_path: Path, clips: list[Path]
) -> None:
    home = tmp_path / "ws"
    cli = cli_workspace(home, clips)
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
    with sqlite3.connect(home / "jobs.db") as db:
        reviews = db.execute(
            "SELECT job_id, COUNT(*) FROM events WHERE to_state = 'review' GROUP BY job_id"
        ).fetchall()
    assert len(reviews) == len(clips) and {count for _, count in reviews} == {1}
    assert not any(p.is_file() for p in (home / "inbox").rglob("*"))
