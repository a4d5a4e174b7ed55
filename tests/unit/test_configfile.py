"""The pipeline config file's contents (runtracker.configfile.parse): tables, defaults merged into each pipeline,
commands as lists or shell lines, and mistakes that are errors saying where."""

from __future__ import annotations

import pytest

from runtracker.configfile import ConfigError, ExecSettings, Pipeline, PipelineConfig, parse


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
                 "description, schedule, lock, timeout, kill_after, tail, ownerless_timeout, timezone", id="typo-in-a-pipeline-key"),
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
                 "runtracker.toml: [defaults] kill_after: a duration cannot be negative: '-5'", id="negative-kill-after"),
    pytest.param({"pipelines": {"nikki": {"lock": "yes"}}},
                 "runtracker.toml: [pipelines.nikki] lock: must be true or false", id="lock-not-a-bool"),
    pytest.param({"pipelines": {"nikki": {"tail": "2MB"}}},
                 "runtracker.toml: [pipelines.nikki] tail: the output tail is at most 1MB, not '2MB'", id="tail-too-big"),
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
