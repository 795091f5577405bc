"""Shared fixtures: a fresh demo workspace, real speech clips, one loaded model."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import audiogen
from transcribe.asr.engine import WhisperEngine
from transcribe.config import Config, load_config
from transcribe.workspace import init_workspace

PROJECT = Path(__file__).resolve().parent.parent
CLIENT = "riverside-clinic"


def set_config(home: Path, **values: float | str) -> Config:
    """Rewrite values in a workspace config (tests want short delays); each key must
    appear exactly once in the file, as ``init`` writes it. Booleans as "true"/"false"."""
    path = home / "transcribe.toml"
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, key
    path.write_text(text, encoding="utf-8")
    return load_config(home)


def cli_workspace(home: Path, clips: list[Path]) -> list[str]:
    """A demo workspace made by the real CLI, each clip dropped as ``d<N>.wav``; returns
    the command prefix (``python cli.py --home HOME``) for subprocess tests."""
    cli = [sys.executable, str(PROJECT / "cli.py"), "--home", str(home)]
    subprocess.run([*cli, "init", "--demo"], check=True, capture_output=True)
    set_config(home, stable_seconds=0.2, second_pass="false")
    for index, clip in enumerate(clips):
        shutil.copyfile(clip, home / "inbox" / CLIENT / f"d{index}.wav")
    return cli


@pytest.fixture
def home(tmp_path: Path) -> Path:
    init_workspace(tmp_path / "home", demo=True)
    # One decoding per file: the second pass doubles transcription time and is tested
    # where it matters (test_vocabulary_retrieve, test_batch, bench/asr.py).
    set_config(tmp_path / "home", stable_seconds=0.3, second_pass="false")
    return tmp_path / "home"


@pytest.fixture
def config(home: Path) -> Config:
    return load_config(home)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One English clip per sentence, different content (so different hashes)."""
    if not audiogen.have_espeak():
        pytest.fail("espeak-ng is missing: run `make setup`")
    folder = tmp_path_factory.mktemp("speech")
    for index, sentence in enumerate(audiogen.SENTENCES):
        audiogen.speak(sentence, folder / f"clip{index}.wav")
    return folder


@pytest.fixture(scope="session")
def clips(speech_dir: Path) -> list[Path]:
    return sorted(speech_dir.glob("clip*.wav"))


@pytest.fixture(scope="session")
def engine_factory() -> Iterator[object]:
    """A model loaded once for the whole session (loading costs seconds)."""
    engines: dict[str, WhisperEngine] = {}

    def factory(config: Config) -> WhisperEngine:
        if "engine" not in engines:
            engines["engine"] = WhisperEngine(config.transcription)
        return engines["engine"]

    yield factory
