"""The pipeline config file, the CLI's options, durations and sizes, and the output tail's edges."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from exec_support import run_exec, summary

from helpers import Db
from runtracker.cli import cli
from runtracker.configfile import ConfigError, ExecSettings, load, parse
from runtracker.execwrap.output import OutputTail
from runtracker.execwrap.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("500ms", 0.5), ("30m", 1800), ("2h", 7200),
                                           ("1h30m", 5400), ("1d", 86400), (45, 45), ("0", 0)])
def test_durations_parse_as_people_write_them(text, seconds):
    """90, 90s, 500ms, 30m, 2h, 1h30m, 1d."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2 hours", "h", "-5", "1x", "2h-1m", True])
def test_bad_durations_say_what_is_accepted(text):
    """Anything else is a ValueError naming the accepted forms."""
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text, size", [("10KB", 10240), ("10K", 10240), ("1MB", 1048576), ("1MiB", 1048576),
                                        ("512", 512), ("0", 0), (2048, 2048), ("1.5KB", 1536)])
def test_sizes_parse_with_binary_multiples(text, size):
    """10KB = 10 × 1024 bytes; a bare number is bytes."""
    assert parse_size(text) == size


def test_format_duration_reads_back():
    """Messages show durations the way they are written: 2h, 1h30m, 10s, 0.5s."""
    assert [format_duration(s) for s in (7200, 5400, 10, 0.5, 90)] == ["2h", "1h30m", "10s", "0.5s", "1m30s"]


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


@pytest.mark.parametrize("data, message", [
    ({"pipelines": {"nikki": {"comand": ["x"]}}}, "unknown key(s) comand"),
    ({"pipelines": {"nikki": {"timeout": "soon"}}}, "not a duration"),
    ({"pipelines": {"nikki": {"command": []}}}, "`command` must be"),
    ({"pipelines": {"nikki": {"lock": "yes"}}}, "`lock` must be true or false"),
    ({"pipelines": {"nikki": {"tail": "2MB"}}}, "at most 1MB"),
    ({"defaults": {"command": ["x"]}}, "unknown key(s) command"),
    ({"pipeline": {}}, "unknown key(s) pipeline"),
])
def test_config_mistakes_are_errors_that_say_where(data, message):
    """A typo never silently drops a setting: the error names the table and the key."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(data, "runtracker.toml")


def test_config_file_that_is_not_toml_is_a_clear_error(tmp_path):
    """Broken TOML: the error names the file."""
    path = tmp_path / "runtracker.toml"
    path.write_text("[pipelines.nikki\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load(str(path))


def test_exec_takes_the_command_and_settings_from_the_config_file(tmp_path, db_url):
    """`runtracker exec -p nikki` with no command runs the configured one, with its settings."""
    (tmp_path / "runtracker.toml").write_text(
        '[defaults]\ntail = "1KB"\n\n[pipelines.nikki]\ncommand = "echo from config; exit 5"\ntimeout = "1h"\n'
    )
    result = run_exec(tmp_path, db_url)
    assert result.returncode == 5, result.stderr
    assert result.stdout == b"from config\n"
    [run] = Db(db_url).runs()
    assert summary(run)["command"] == "/bin/sh -c 'echo from config; exit 5'"


def test_command_line_options_win_over_the_config_file(tmp_path, db_url):
    """--timeout on the command line replaces the configured timeout; a command after -- replaces its command."""
    (tmp_path / "runtracker.toml").write_text('[pipelines.nikki]\ncommand = ["false"]\ntimeout = "1h"\n')
    result = run_exec(tmp_path, db_url, "--timeout", "0.3s", "--", "sleep", "30")
    assert result.returncode == 124
    [run] = Db(db_url).runs()
    assert summary(run)["timeout_s"] == 0.3


def test_exec_without_a_command_says_how_to_give_one(tmp_path, db_url):
    """No command and none configured: a usage error (exit 2) explaining both ways."""
    result = run_exec(tmp_path, db_url)
    assert result.returncode == 2
    assert b"no command given for pipeline 'nikki'" in result.stderr
    assert Db(db_url).runs() == []


def test_exec_help_lists_options_and_exit_statuses():
    """`runtracker exec -h` documents every option and the statuses of its own."""
    result = CliRunner().invoke(cli, ["exec", "-h"])
    assert result.exit_code == 0
    for text in ("--pipeline", "--lock", "--timeout", "--kill-after", "--tail", "--config", "--db", "75", "124",
                 "126/127"):
        assert text in result.output


def test_bad_option_values_are_usage_errors():
    """--timeout soon / --tail lots: exit 2 with the accepted forms."""
    runner = CliRunner()
    result = runner.invoke(cli, ["exec", "-p", "x", "--timeout", "soon", "--", "true"])
    assert result.exit_code == 2 and "not a duration" in result.output
    result = runner.invoke(cli, ["exec", "-p", "x", "--tail", "lots", "--", "true"])
    assert result.exit_code == 2 and "not a size" in result.output


def test_a_tail_cut_inside_a_character_starts_at_the_next_whole_one():
    """The ring buffer keeps the last N bytes; a cut through a UTF-8 character does not show as U+FFFD."""
    tail = OutputTail(4)
    tail.add(b"abc")
    tail.add("défé".encode())  # d é f é = 1 + 2 + 1 + 2 bytes; the last 4 start inside the first é
    assert tail.bytes() == "défé".encode()[-4:]
    assert tail.text() == "fé" and tail.total == 9
    whole = OutputTail(100)
    whole.add(b"\xa9 starts with a stray byte")
    assert whole.text().startswith("\ufffd")  # not cut: shown as it came
