"""The pipeline config file's contents (runtracker.settings.configfile.parse): tables, defaults merged into each
pipeline, commands as lists or shell lines, and mistakes that are errors saying where."""

from __future__ import annotations

import pytest

from runtracker.base.schedule import Schedule
from runtracker.settings.configfile import ConfigError, load, parse
from runtracker.settings.pipelines import ExecSettings, Pipeline, PipelineConfig


def test_config_file_gives_commands_and_settings_with_defaults():
    """[defaults] apply to every pipeline; a pipeline's own keys win; a string command runs with sh -c."""
    config = parse({
        "defaults": {"lock": True, "timeout": "2h"},
        "pipelines": {
            "nikki": {"command": ["node", "sync-nikki.js", "--verbose"], "timeout": "30m", "tail": "64KB"},
            "backup": {"command": "pg_dump db | gzip > /tmp/db.gz", "timeout": 0},
        },
    })
    nikki, backup = config.pipeline("nikki"), config.pipeline("backup")
    assert nikki.command == ("node", "sync-nikki.js", "--verbose")
    assert nikki.settings == ExecSettings(lock=True, timeout=1800, kill_after=10, tail=65536)
    assert backup.command == ("/bin/sh", "-c", "pg_dump db | gzip > /tmp/db.gz")
    assert backup.settings.timeout == 0  # switched off
    assert config.pipeline("other").command is None and config.pipeline("other").settings.lock is True


@pytest.mark.parametrize("data, defaults, pipelines", [
    pytest.param({}, ExecSettings(), {}, id="empty-file"),
    pytest.param({"defaults": {}, "pipelines": {}}, ExecSettings(), {}, id="empty-tables"),
    pytest.param({"defaults": {"timeout": "1h", "kill_after": "30s", "tail": "1MB", "lock": False}},
                 ExecSettings(lock=False, timeout=3600, kill_after=30, tail=1048576), {}, id="every-default"),
    pytest.param({"defaults": {"lock": True}, "pipelines": {"nikki": {}}},
                 ExecSettings(lock=True), {"nikki": Pipeline("nikki", None, ExecSettings(lock=True))},
                 id="pipeline-without-keys-takes-the-defaults"),
    pytest.param({"defaults": {"lock": True, "timeout": "2h"}, "pipelines": {"nikki": {"lock": False}}},
                 ExecSettings(lock=True, timeout=7200),
                 {"nikki": Pipeline("nikki", None, ExecSettings(lock=False, timeout=7200))},
                 id="pipeline-key-wins-the-rest-merged"),
    pytest.param({"defaults": {"timeout": "2h"}, "pipelines": {"nikki": {"timeout": 0}}},
                 ExecSettings(timeout=7200), {"nikki": Pipeline("nikki", None, ExecSettings(timeout=0))},
                 id="zero-switches-a-default-timeout-off"),
    pytest.param({"pipelines": {"nikki": {"command": ["node", "sync.js"]}}}, ExecSettings(),
                 {"nikki": Pipeline("nikki", ("node", "sync.js"), ExecSettings())}, id="command-list-as-it-is"),
    pytest.param({"pipelines": {"nikki": {"command": "node sync.js > log"}}}, ExecSettings(),
                 {"nikki": Pipeline("nikki", ("/bin/sh", "-c", "node sync.js > log"), ExecSettings())},
                 id="command-string-runs-in-the-shell"),
])
def test_config_tables_become_defaults_and_pipelines(data, defaults, pipelines):
    """Each [pipelines.NAME] is its command and the defaults with its own keys on top."""
    assert parse(data, "runtracker.toml") == PipelineConfig("runtracker.toml", defaults, pipelines)


def test_an_unconfigured_pipeline_has_the_defaults_and_no_command():
    """Asking for a pipeline the file does not name gives one with the defaults and no command."""
    config = parse({"defaults": {"timeout": "5m"}})
    assert config.pipeline("freescout") == Pipeline("freescout", None, ExecSettings(timeout=300))


@pytest.mark.parametrize("data, message", [
    pytest.param({"pipelines": {"nikki": {"comand": ["x"]}}},
                 "runtracker.toml: [pipelines.nikki] comand: unknown key; allowed: command, display_name, "
                 "description, schedule, lock, timeout, kill_after, tail, ownerless_timeout, timezone",
                 id="typo-in-a-pipeline-key"),
    pytest.param({"pipelines": {"nikki": {"timout": "1h", "locks": True}}},
                 "[pipelines.nikki] locks, timout: unknown keys;", id="every-unknown-key-named-sorted"),
    pytest.param({"defaults": {"command": ["x"]}},
                 "runtracker.toml: [defaults] command: unknown key; allowed: lock, timeout, kill_after, tail, "
                 "ownerless_timeout, timezone, grace, max_runtime, alerts, alert_on",
                 id="command-in-defaults"),
    pytest.param({"pipeline": {}}, "runtracker.toml: pipeline: unknown key; allowed: defaults, pipelines, alerts",
                 id="unknown-top-level-table"),
    pytest.param({"defaults": 5}, "runtracker.toml: defaults: must be a table", id="defaults-not-a-table"),
    pytest.param({"pipelines": ["nikki"]}, "runtracker.toml: pipelines: must be a table",
                 id="pipelines-not-a-table"),
    pytest.param({"pipelines": {"nikki": "node sync.js"}}, "runtracker.toml: [pipelines.nikki]: must be a table",
                 id="pipeline-not-a-table"),
    pytest.param({"pipelines": {"nikki": {"timeout": "soon"}}},
                 "runtracker.toml: [pipelines.nikki] timeout: not a duration: 'soon'", id="bad-timeout"),
    pytest.param({"defaults": {"kill_after": "-5"}},
                 "runtracker.toml: [defaults] kill_after: a duration cannot be negative: '-5'",
                 id="negative-kill-after"),
    pytest.param({"pipelines": {"nikki": {"lock": "yes"}}},
                 "runtracker.toml: [pipelines.nikki] lock: must be true or false", id="lock-not-a-bool"),
    pytest.param({"pipelines": {"nikki": {"tail": "2MB"}}},
                 "runtracker.toml: [pipelines.nikki] tail: the output tail is at most 1MB, not '2MB'",
                 id="tail-too-big"),
    pytest.param({"pipelines": {"nikki": {"tail": "lots"}}},
                 "runtracker.toml: [pipelines.nikki] tail: not a size: 'lots'", id="tail-not-a-size"),
    pytest.param({"pipelines": {"nikki": {"command": []}}},
                 "runtracker.toml: [pipelines.nikki] command: must be a non-empty list of strings, or a shell "
                 "command line", id="empty-command-list"),
    pytest.param({"pipelines": {"nikki": {"command": "   "}}}, "command: must be", id="blank-command-line"),
    pytest.param({"pipelines": {"nikki": {"command": ["node", 3]}}}, "command: must be",
                 id="command-list-with-a-number"),
    pytest.param({"pipelines": {"nikki": {"command": 3}}}, "command: must be", id="command-a-number"),
])
def test_config_mistakes_are_errors_that_say_where(data, message):
    """A typo never silently drops a setting: the error names the file, the table and the key or value."""
    with pytest.raises(ConfigError) as raised:
        parse(data, "runtracker.toml")
    assert message in str(raised.value)


# -- schedules and alerts ----------------------------------------------------------------------------------
SCHEDULED = """\
[defaults]
timezone = "Europe/Amsterdam"
alerts = ["ops"]

[pipelines.nikki]
display_name = "Nikki sync"
description = "Members from Nikki"
schedule = ["15 3 * * *", "15 15 * * 1-5"]
grace = "2h"
max_runtime = "1h"
alerts = ["ops", "chat"]
alert_on = ["failed", "partial"]

[pipelines.freescout]
schedule = "*/10 * * * *"

[alerts]
dashboard_url = "https://dash.example.org/"
overdue_repeat = "8h"

[alerts.channels]
ops = "mailtos://alerts:secret@smtp.example.org?to=ops@example.org"
chat = ["json://hooks.example.org/a", "ntfy://ntfy.example.org/topic"]
"""


def test_a_pipeline_gets_its_schedule_grace_runtime_and_alert_routing_over_the_defaults(tmp_path):
    """Schedules are read in the pipeline's time zone (else [defaults]'); alerts go to its channels (else
    [defaults]'); `partial` is alerted only when asked for."""
    path = tmp_path / "runtracker.toml"
    path.write_text(SCHEDULED)
    config = load(str(path))
    nikki, freescout = config.pipeline("nikki"), config.pipeline("freescout")
    assert (nikki.title, nikki.description) == ("Nikki sync", "Members from Nikki")
    assert nikki.watch.schedule == Schedule(("15 3 * * *", "15 15 * * 1-5"), "Europe/Amsterdam")
    assert (nikki.watch.grace_s, nikki.watch.max_runtime_s) == (7200, 3600)
    assert nikki.watch.events == {"failed", "partial"}
    assert [c.name for c in config.channels_for("nikki")] == ["ops", "chat"]
    assert freescout.title == "freescout" and freescout.watch.schedule == Schedule(("*/10 * * * *",),
                                                                                    "Europe/Amsterdam")
    assert freescout.watch.grace_s == 4 * 3600 and "partial" not in freescout.watch.events
    assert [c.name for c in config.channels_for("freescout")] == ["ops"]
    assert config.alerts.dashboard_url == "https://dash.example.org" and config.alerts.overdue_repeat_s == 8 * 3600
    assert config.alerts.channels["chat"].urls == ("json://hooks.example.org/a", "ntfy://ntfy.example.org/topic")
    assert config.alerts.channels["ops"].where == f"{path}:22: [alerts.channels] ops"


def test_without_routing_every_channel_gets_every_pipeline_s_alerts():
    """No `alerts` anywhere: each channel; `alerts = []`: none."""
    config = parse({"pipelines": {"quiet": {"alerts": []}}, "alerts": {"channels": {"a": "json://x/a",
                                                                                    "b": "json://x/b"}}})
    assert [c.name for c in config.channels_for("nikki")] == ["a", "b"]
    assert config.channels_for("quiet") == []


@pytest.mark.parametrize("change, message", [
    pytest.param(('"15 3 * * *", "15 15 * * 1-5"', '"15 3 * * *", "61 * * * *"'),
                 ":8: [pipelines.nikki] schedule: not a cron expression: '61 * * * *'", id="bad-cron-line-8"),
    pytest.param(('timezone = "Europe/Amsterdam"', 'timezone = "Europe/Amsterdan"'),
                 ":2: [defaults] timezone: not a time zone: 'Europe/Amsterdan'", id="bad-zone-line-2"),
    pytest.param(('alerts = ["ops", "chat"]', 'alerts = ["ops", "chatt"]'),
                 ":11: [pipelines.nikki] alerts: no channel 'chatt' in [alerts.channels] (there: ops, chat)",
                 id="unknown-channel-line-11"),
    pytest.param(('alert_on = ["failed", "partial"]', 'alert_on = ["failed", "crash"]'),
                 ":12: [pipelines.nikki] alert_on: unknown event 'crash'", id="unknown-event-line-12"),
    pytest.param(('grace = "2h"', 'grace = "2 hours"'), ":9: [pipelines.nikki] grace: not a duration",
                 id="bad-grace-line-9"),
    pytest.param(('schedule = "*/10 * * * *"', 'schedul = "*/10 * * * *"'),
                 ":15: [pipelines.freescout] schedul: unknown key; allowed:", id="typo-line-15"),
    pytest.param(('chat = ["json', 'chat = ["hooks.example.org/a", "json'),
                 ":23: [alerts.channels] chat: must be an Apprise URL", id="url-without-scheme-line-23"),
    pytest.param(('overdue_repeat = "8h"', 'overdue_repeat = "30s"'),
                 ":19: [alerts] overdue_repeat: overdue_repeat is at least 1m", id="repeat-too-short-line-19"),
    pytest.param(('dashboard_url = "https://dash.example.org/"', 'dashboard_url = "dash.example.org"'),
                 ":18: [alerts] dashboard_url: must be an http:// or https:// URL", id="dashboard-url-line-18"),
])
def test_a_wrong_schedule_or_alert_value_is_an_error_naming_file_line_table_and_key(tmp_path, change, message):
    """tomllib gives no line numbers: the key's line is found in its table's text."""
    path = tmp_path / "runtracker.toml"
    old, new = change
    assert old in SCHEDULED
    path.write_text(SCHEDULED.replace(old, new))
    with pytest.raises(ConfigError) as raised:
        load(str(path))
    assert str(raised.value).startswith(f"{path}{message}")


def test_a_wrong_dashboard_url_is_named_without_its_password(tmp_path):
    """The error that echoes a wrong dashboard_url (an error message is shown in a terminal, a log) shows it
    redacted."""
    path = tmp_path / "runtracker.toml"
    path.write_text(SCHEDULED.replace('"https://dash.example.org/"', '"ftp://admin:hunter2-7f3a@dash.example.org/"'))
    with pytest.raises(ConfigError) as raised:
        load(str(path))
    assert "dashboard_url: must be an http:// or https:// URL, not 'ftp://admin:***@dash.example.org/'" in \
        str(raised.value)


def test_runtracker_exec_does_not_check_schedules(tmp_path):
    """load(schedules=False): a cron mistake is left for the monitor, and exec runs (croniter is not loaded)."""
    path = tmp_path / "runtracker.toml"
    path.write_text(SCHEDULED.replace('"15 15 * * 1-5"', '"61 * * * *"'))
    assert load(str(path), schedules=False).pipeline("nikki").command is None
