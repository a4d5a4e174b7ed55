"""The pipeline config file read from disk by `runtracker exec`, and the CLI's options.

How its contents are parsed, durations and sizes, and the output tail are unit-tested in tests/unit/
(test_configfile.py, test_units.py, test_output_tail.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from exec_support import run_exec, summary

from helpers import Db
from runtracker.cli import cli
from runtracker.settings.configfile import ConfigError, load


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
