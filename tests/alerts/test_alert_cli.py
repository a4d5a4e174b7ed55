"""`runtracker alert test` and the monitor's start: test messages through real servers, a config file that cannot be
used refused before anything runs, and a monitor without the alerts extra that still reaps."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from alertlib import Receiver
from click.testing import CliRunner

from helpers import Db, app_env, run_app, wait_until
from runtracker.cli import cli


def test_alert_test_sends_a_test_message_through_each_channel(mailbox, receiver, write_config):
    """Every channel gets a test message; the command says so per channel and exits 0."""
    config = write_config({"mail": mailbox.url(), "hook": receiver.url()})
    result = CliRunner().invoke(cli, ["alert", "test", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["mail: sent", "hook: sent"]
    (subject, body), = mailbox.messages
    assert subject == "runtracker: test alert through mail" and "alerts reach you there" in body
    assert receiver.posts[0]["title"] == "runtracker: test alert through hook"
    assert receiver.posts[0]["type"] == "info"  # a test, not a failure: no red message in the chat


def test_alert_test_for_a_pipeline_uses_only_its_channels(mailbox, receiver, write_config):
    """--pipeline nikki with `alerts = ["hook"]`: only the webhook gets it, naming the pipeline."""
    config = write_config({"mail": mailbox.url(), "hook": receiver.url()},
                          '[pipelines.nikki]\ndisplay_name = "Nikki sync"\nalerts = ["hook"]\n')
    result = CliRunner().invoke(cli, ["alert", "test", "--pipeline", "nikki", "--config", str(config)])
    assert result.exit_code == 0 and result.output == "hook: sent\n"
    assert mailbox.messages == [] and "for Nikki sync (nikki)" in receiver.posts[0]["message"]


def test_alert_test_names_a_channel_that_cannot_be_reached_and_why_and_exits_1(mailbox, write_config):
    """A webhook nobody listens on: `hook: NOT sent: ...` with Apprise's reason, connection refused; the mail still
    goes, exit status 1."""
    config = write_config({"mail": mailbox.url(), "hook": Receiver().url()})
    result = CliRunner().invoke(cli, ["alert", "test", "--config", str(config)])
    assert result.exit_code == 1
    assert "mail: sent" in result.stdout
    assert "hook: NOT sent: A Connection error occurred sending JSON notification to 127.0.0.1; [Errno 111] " \
        "Connection refused\n" in result.stdout
    assert "1 of 2 channel(s) could not be reached" in result.output
    assert len(mailbox.messages) == 1


def test_alert_test_says_the_http_status_a_broken_receiver_answered(tmp_path):
    """A webhook that answers 500: the reason names the status (Apprise's warning, caught from its worker thread)."""
    broken = Receiver(status=500).start()
    try:
        config = _config_with({"hook": broken.url()}, tmp_path)
        result = CliRunner().invoke(cli, ["alert", "test", "--config", str(config)])
    finally:
        broken.stop()
    assert result.exit_code == 1 and len(broken.posts) == 1
    assert "hook: NOT sent: Failed to send JSON POST notification: Internal server error., error=500\n" \
        in result.stdout


def test_alert_test_says_a_receiver_that_never_answers_timed_out(tmp_path):
    """A webhook that accepts the connection and never answers: the read timeout (rto=1 on the URL) is the reason."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        config = _config_with({"hook": f"json://127.0.0.1:{silent.getsockname()[1]}/hook?rto=1&cto=5"}, tmp_path)
        result = CliRunner().invoke(cli, ["alert", "test", "--config", str(config)])
    assert result.exit_code == 1
    assert "hook: NOT sent: A Connection error occurred sending JSON notification to 127.0.0.1; Read timed out. " \
        "(read timeout=1.0)\n" in result.stdout


def _config_with(channels: dict[str, str], where: Path) -> Path:
    path = where / "runtracker.toml"
    path.write_text("[alerts.channels]\n" + "".join(f'{name} = "{url}"\n' for name, url in channels.items()))
    return path


def test_a_channel_url_apprise_does_not_know_stops_the_monitor_naming_file_and_line(db_url, write_config):
    """`nonsense://x`: the monitor exits 1 before its first pass, naming the file, line and channel; the password
    part of the URL is not shown."""
    config = write_config({"mail": "mailto://127.0.0.1:25?from=a@example.org&to=a@example.org",
                           "typo": "nonsense://user:pw@host"})
    result = CliRunner().invoke(cli, ["monitor", "--db", db_url, "--config", str(config)])
    assert result.exit_code == 1
    assert f"{config}:5: [alerts.channels] typo: channel 'typo': Apprise does not understand the URL nonsense://..." \
        in result.output
    assert "pw@host" not in result.output


WITHOUT_EXTRA = """
import sys
sys.modules["apprise"] = None  # as if the alerts extra were not installed
sys.modules["croniter"] = None
from runtracker.cli import main
sys.argv = ["runtracker", *sys.argv[1:]]
main()
"""


def test_a_monitor_without_the_alerts_extra_still_reaps_and_says_what_to_install(tmp_path, db_url, write_config):
    """No apprise, no croniter: `pip install 'runtracker[alerts]'` on stderr, and a dead run is reaped."""
    config = write_config({"hook": Receiver().url()})
    monitor = subprocess.Popen([sys.executable, "-c", WITHOUT_EXTRA, "monitor", "--db", db_url, "--config",
                                str(config), "--interval", "0.5"], env=app_env(db_url), stderr=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        run_app(tmp_path, "import os\nfrom runtracker import RunTracker\nRunTracker('nikki').start_run()\n"
                "os._exit(9)\n", db_url)
        wait_until(lambda: Db(db_url).run()["outcome"] == "failure", "the dead run to be reaped")
    finally:
        monitor.terminate()
        out, err = monitor.communicate(timeout=30)
    assert "pip install 'runtracker[alerts]'" in err and "goes on reaping" in err
    assert "reaped run" in out and monitor.returncode == 0


def test_serve_with_monitor_reaps_and_alerts_in_the_dashboard_s_process(tmp_path, db_url, receiver, write_config):
    """`runtracker serve --monitor`: the dashboard's process also reaps a dead run and sends its alert."""
    from alertlib import free_port

    config = write_config({"hook": receiver.url()})
    serve = subprocess.Popen([sys.executable, "-m", "runtracker", "serve", "--demo", "--monitor", "--port",
                              str(free_port()), "--db", db_url, "--config", str(config)], env=app_env(db_url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _marked(db_url), "the monitor's start")
        run_app(tmp_path, "import os\nfrom runtracker import RunTracker\nRunTracker('nikki').start_run()\n"
                "os._exit(9)\n", db_url)
        post, = receiver.wait_for(1, "the crash alert")
    finally:
        serve.terminate()
        _, err = serve.communicate(timeout=30)
    run = Db(db_url).run()
    assert run["outcome"] == "failure" and run["reap_reason"] == "pid_gone"
    assert post["title"] == f"nikki: run {run['id']} crashed (lost)"
    assert "in this process" in err


def _marked(db_url: str) -> bool:
    from helpers import open_fresh
    from runtracker.storage.alerts import AlertStore

    store = open_fresh(db_url)
    try:
        return AlertStore(store).mark("runs") is not None
    finally:
        store.close()


def test_every_event_has_an_apprise_type_chosen_for_it():
    """Each event kind maps to failure, warning or success on purpose; only a test message is `info`."""
    from runtracker.alerts.channels import NOTIFY_TYPES, notify_type
    from runtracker.base.events import EVENTS

    assert set(NOTIFY_TYPES) == set(EVENTS)
    assert {notify_type(e) for e in EVENTS} <= {"failure", "warning", "success"}
    assert (notify_type("failed"), notify_type("crashed"), notify_type("overdue")) == ("failure",) * 3
    assert (notify_type("too_long"), notify_type("partial"), notify_type("recovered")) == ("warning", "warning",
                                                                                          "success")
    assert notify_type(None) == "info"
