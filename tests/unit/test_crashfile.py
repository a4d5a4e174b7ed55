"""The crash file (runtracker.core.crashfile): what a process writes as its last words the reaper reads back for
that run only, the latest words of a run count, and faulthandler's crashing thread comes first."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from runtracker.core import crashfile
from runtracker.core.liveness import Identity
from runtracker.settings import values

IDENTITY = Identity("worker-1", 4242, 1_700_000_000.5, None)
RUN = {"hostname": "worker-1", "pid": 4242, "process_started_at": 1_700_000_000.5}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A stand-in for a store whose crash directory is tmp_path ($RUNTRACKER_CRASH_DIR wins over the store)."""
    monkeypatch.setenv(values.CRASH_DIR_ENV, str(tmp_path))
    return SimpleNamespace(directory=None)


def _last_words(store: object, run_id: int, message: str, stack: str | None = None) -> None:
    crashfile.CrashFile().last_words(store, IDENTITY, run_id, OSError(f"{message}\nsecond line"),  # type: ignore[arg-type]
                                     f"uncaught_exception: ValueError: {message}", stack)


def test_last_words_written_by_a_process_are_read_back_for_its_run_only(store):
    """Two runs of one process leave last words: the reaper finds the file by the run's owner and reads each run's."""
    _last_words(store, 7, "boom", "Traceback (most recent call last):\nValueError: boom")
    _last_words(store, 8, "other")
    path = crashfile.find(store, RUN)  # type: ignore[arg-type]
    assert path is not None and Path(path).name == crashfile.crash_file_name("worker-1", 4242, 1_700_000_000.5)
    fault, words = crashfile.read(path, 7)
    assert fault is None
    assert words == ("uncaught_exception: ValueError: boom", "Traceback (most recent call last):\nValueError: boom")
    assert crashfile.read(path, 8)[1] == ("uncaught_exception: ValueError: other", "")
    assert crashfile.read(path, 9) == (None, None)


def test_the_latest_last_words_of_a_run_count(store):
    """A run whose end failed twice: the second words replace the first."""
    _last_words(store, 7, "first")
    _last_words(store, 7, "second")
    _, words = crashfile.read(crashfile.find(store, RUN), 7)  # type: ignore[arg-type]
    assert words is not None and words[0] == "uncaught_exception: ValueError: second"


def test_a_run_without_a_crash_file_has_nothing_to_read(store):
    """No file for the owner: find gives None and read gives nothing."""
    assert crashfile.find(store, RUN) is None  # type: ignore[arg-type]
    assert crashfile.read(None, 7) == (None, None)


def test_faulthandler_output_is_read_with_the_crashing_thread_first(store, tmp_path):
    """faulthandler lists threads in any order: the reader puts the current thread right after the header."""
    path = tmp_path / crashfile.crash_file_name("worker-1", 4242, 1_700_000_000.5)
    path.write_text("Fatal Python error: Segmentation fault\n\nThread 0x1 (most recent call first):\n  a\n\n"
                    "Current thread 0x2 (most recent call first):\n  b\n")
    fault, words = crashfile.read(str(path), 7)
    assert fault is not None and words is None
    assert fault.split("\n\n")[1].startswith("Current thread 0x2")
    assert crashfile.fatal_error(fault) == "Fatal Python error: Segmentation fault"
