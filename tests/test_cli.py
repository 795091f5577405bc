"""The CLI contract, through Typer's CliRunner and as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from tests.conftest import CLIENT, PROJECT, set_config

runner = CliRunner()


def cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(PROJECT / "cli.py"), *args],
        text=True,
        capture_output=True,
        timeout=timeout,
        env=env,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_init_then_status_json_is_an_empty_list(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    result = runner.invoke(app, ["--home", str(home), "init", "--demo"])
    assert result.exit_code == 0, result.output
    for client in ("cabinet-martin", "maitre-dubois", "riverside-clinic"):
        assert (home / "inbox" / client).is_dir()
    for folder in ("inbox", "archive", "templates", "keys", "work", "quarantine"):
        assert (home / folder).stat().st_mode & 0o777 == 0o700
    result = runner.invoke(app, ["--home", str(home), "status", "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == []
    assert runner.invoke(app, ["--home", str(home), "init", "--demo"]).exit_code == 0


def test_home_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSCRIBE_HOME", str(tmp_path / "env-home"))
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert (tmp_path / "env-home" / "transcribe.toml").is_file()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["status"], 3, "is not a workspace"),
        (["watch", "--once"], 3, "is not a workspace"),
    ],
)
def test_errors_are_one_line_with_an_exit_code(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = cli("--home", str(tmp_path), *args, check=False)
    assert result.returncode == code
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unknown_job_and_bad_config_are_clear(home: Path) -> None:
    result = runner.invoke(app, ["--home", str(home), "show", "20990101-000000"])
    assert result.exit_code == 4 and "no job" in result.output
    config = home / "transcribe.toml"
    config.write_text(config.read_text().replace('device = "auto"', 'device = "tpu"'))
    result = runner.invoke(app, ["--home", str(home), "status"])
    assert result.exit_code == 2 and "[transcription] device = 'tpu'" in result.output


def test_doctor_reports_the_verified_model() -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert "SHA-256 verified" in checks["model"]["detail"]
    assert checks["device"]["detail"].startswith("cpu int8")
    assert runner.invoke(app, ["doctor"]).exit_code == 0


@pytest.mark.slow
def test_contract_inbox_to_review_and_duplicate(tmp_path: Path, clips: list[Path]) -> None:
    home = tmp_path / "h"
    cli("--home", str(home), "init", "--demo")
    set_config(home, stable_seconds=0.2)
    shutil.copyfile(clips[0], home / "inbox" / CLIENT / "dictation.wav")
    cli("--home", str(home), "watch", "--once")
    [job] = json.loads(cli("--home", str(home), "status", "--json").stdout)
    assert {k: job[k] for k in ("client", "state", "source", "reason")} == {
        "client": CLIENT,
        "state": "review",
        "source": "dictation.wav",
        "reason": None,
    }
    shown = json.loads(cli("--home", str(home), "show", job["id"], "--json").stdout)
    words = shown["words"]
    assert words and all(0 < w["probability"] <= 1 and w["end"] > w["start"] for w in words)
    assert all(shown["text"][slice(*w["span"])] for w in words if w["span"])
    raw = json.loads(Path(shown["transcript"]).read_text())
    assert [w["word"] for s in raw["segments"] for w in s["words"]] == [w["word"] for w in words]
    assert "patel" in cli("--home", str(home), "show", job["id"]).stdout.lower()
    assert not any((home / "inbox").rglob("*.wav"))
    shutil.copyfile(clips[0], home / "inbox" / CLIENT / "dictation-again.wav")
    cli("--home", str(home), "watch", "--once")
    jobs = json.loads(cli("--home", str(home), "status", "--json").stdout)
    again = next(j for j in jobs if j["source"] == "dictation-again.wav")
    assert again["state"] == "duplicate" and again["duplicate_of"] == job["id"]
    assert len(list((home / "work" / "jobs").glob("*/transcript.json"))) == 1


def _states(database: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(database, timeout=30) as db:
        return {
            row[0]: (row[1], row[2])
            for row in db.execute("SELECT source_name, state, attempts FROM jobs")
        }


@pytest.mark.slow
def test_a_watcher_killed_mid_transcription_resumes_without_loss_or_repeat(
    tmp_path: Path, clips: list[Path]
) -> None:
    home = tmp_path / "h"
    cli("--home", str(home), "init", "--demo")
    set_config(home, stable_seconds=0.2)
    for index, clip in enumerate(clips[:4]):
        shutil.copyfile(clip, home / "inbox" / CLIENT / f"d{index}.wav")
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT / "cli.py"), "--home", str(home), "watch", "--once"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = _states(home / "jobs.db") if (home / "jobs.db").exists() else {}
        if any(s == "transcribing" for s, _ in states.values()):
            time.sleep(0.5)  # the group of dictations is being decoded together
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted = [
        name for name, (s, _) in _states(home / "jobs.db").items() if s == "transcribing"
    ]
    assert interrupted, "the kill did not land during a transcription"
    cli("--home", str(home), "watch", "--once")
    final = _states(home / "jobs.db")
    assert sorted(final) == [f"d{i}.wav" for i in range(4)]
    assert {s for s, _ in final.values()} == {"review"}
    assert final[interrupted[0]][1] == 2  # claimed twice: killed once, then finished
    with sqlite3.connect(home / "jobs.db") as db:
        reviews = db.execute(
            "SELECT job_id, COUNT(*) FROM events WHERE to_state = 'review' GROUP BY job_id"
        ).fetchall()
    assert len(reviews) == 4 and all(count == 1 for _, count in reviews)
    assert len(list((home / "work" / "jobs").glob("*/transcript.json"))) == 4
    assert not any((home / "inbox").rglob("*.wav"))
