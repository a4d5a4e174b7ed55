"""Fixtures of the alerts' tests: a real SMTP server and HTTP receiver, the pipeline config file, and monitors
in-process or as real processes (the helpers behind them are in alertlib.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alertlib import InProcessMonitor, Mailbox, MonitorProcess, Receiver


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write runtracker.toml: the channels given (name -> URL), and any more TOML after them."""

    def write(channels: dict[str, str], more: str = "", dashboard_url: str | None = "http://dash.example") -> Path:
        path = tmp_path / "runtracker.toml"
        lines = ["[alerts]"]
        if dashboard_url:
            lines.append(f'dashboard_url = "{dashboard_url}"')
        lines.append("[alerts.channels]")
        lines += [f'{name} = "{url}"' for name, url in channels.items()]
        path.write_text("\n".join(lines) + "\n" + more)
        return path

    return write


@pytest.fixture
def start_monitor() -> Iterator[Callable[..., InProcessMonitor]]:
    started: list[InProcessMonitor] = []

    def start(db_url: str, config: Path, clock: Callable[[], int] | None = None) -> InProcessMonitor:
        monitor = InProcessMonitor(db_url, config, clock)
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        if monitor.thread.is_alive():
            monitor.stop()


@pytest.fixture
def monitor_process() -> Iterator[Callable[..., MonitorProcess]]:
    started: list[MonitorProcess] = []

    def start(db_url: str, config: Path, *args: str, env: dict[str, str] | None = None) -> MonitorProcess:
        monitor = MonitorProcess(db_url, config, *args, env=env)
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        out, err = monitor.stop()
        # Shown by pytest only when the test failed: what the monitor said (a failure under load is hard to rerun).
        print(f"--- runtracker monitor (exit {monitor.proc.returncode}) ---\n{out}\n{err}")
