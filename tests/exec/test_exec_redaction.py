"""Secrets under `runtracker exec`: the command line, the output tail, the failure message and a Python child's
own records are stored redacted."""

from __future__ import annotations

import json

from exec_support import child, run_exec, summary

from helpers import Db

TOKEN = "tok-5e1f0c9a77"


def _everything(url: str) -> str:
    db = Db(url)
    return json.dumps([db.query(f"SELECT * FROM {t}") for t in ("runs", "run_steps", "run_errors")], default=str)


def test_a_command_that_echoes_api_token_leaves_no_secret_in_the_tail_or_the_command(tmp_path, db_url):
    """`sh -c 'echo $API_TOKEN; ...'` with API_TOKEN set: the output passes through untouched, the stored tail
    and command line hold *** instead."""
    script = ("echo token is $API_TOKEN; echo https://admin:hunter2-c0de@api.example.org >&2; "
              "curl_args='--password hunter2-c0de'; echo $curl_args; exit 3")
    result = run_exec(tmp_path, db_url, "--", "sh", "-c", script, "--password", "hunter2-c0de",
                      env={"API_TOKEN": TOKEN})
    assert result.returncode == 3
    assert TOKEN.encode() in result.stdout  # the command's own output is not ours to change
    run = Db(db_url).run()
    tail = Db(db_url).query("SELECT output_tail FROM runs WHERE id = ?", (run["id"],))[0]["output_tail"]
    assert "token is ***" in tail
    assert "https://admin:***@api.example.org" in tail
    assert "--password ***" in summary(run)["command"]
    stored = _everything(db_url)
    assert TOKEN not in stored
    assert "hunter2-c0de" not in stored


def test_a_python_child_redacts_with_the_config_files_patterns(tmp_path, db_url):
    """[redact] patterns of the config file reach a Python child that joins the run: its error rows use them."""
    config = tmp_path / "runtracker.toml"
    config.write_text('[redact]\npatterns = ["corp-[0-9]{6}"]\n')
    code = child(tmp_path, """
        from runtracker import RunTracker
        tracker = RunTracker("nikki")
        tracker.start_run()
        tracker.record_error(error_message="license corp-123456 expired; password=hunter2-c0de")
        tracker.end_run("partial")
    """)
    result = run_exec(tmp_path, db_url, "--config", str(config), "--", *code)
    assert result.returncode == 0, result.stderr
    stored = _everything(db_url)
    assert "corp-123456" not in stored and "hunter2-c0de" not in stored
    assert "license *** expired; password=***" in stored
