"""`runtracker user ...` and `runtracker serve`: users and keys from the command line, the secret's checks, the
extra's absence, a real server as a subprocess; and `import runtracker` never loading the web stack."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner
from weblib import login

from helpers import app_env
from runtracker.cli import cli
from runtracker.core.state import STATE
from runtracker.storage import open_store
from runtracker.storage.auth import START, Auth
from runtracker.web import passwords


def run(db: str, *args: str, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, [*args[:2], "--db", db, *args[2:]] if args[0] == "user" else list(args),
                              input=input, env=env)


def auth(db: str) -> Auth:
    return Auth(open_store(db))


def test_user_add_with_password_stdin_stores_an_argon2_hash(db_url):
    """`runtracker user add NAME --password-stdin` reads the first line, stores its hash, never the password."""
    result = run(db_url, "user", "add", "bob", "--password-stdin", input="s3cret-enough\n")
    assert result.exit_code == 0, result.output
    row = auth(db_url).user("bob")
    assert passwords.verify_password(row["password_hash"], "s3cret-enough") and "s3cret" not in row["password_hash"]


def test_user_add_prompts_twice_without_stdin(db_url):
    """Interactively the password is asked for twice (hidden)."""
    result = run(db_url, "user", "add", "bob", input="s3cret-enough\ns3cret-enough\n")
    assert result.exit_code == 0 and "Repeat for confirmation" in result.output


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["add", "bob", "--password-stdin"], "short\n", "at least 8 characters"),
    (["password", "nobody", "--password-stdin"], "long enough pw\n", "there is no user nobody"),
    (["remove", "nobody"], None, "there is no user nobody"),
    (["key-remove", "nobody"], None, "there is no API key named nobody"),
    (["add", " ", "--password-stdin"], "long enough pw\n", "printable"),
])
def test_user_commands_refuse_what_they_cannot_do(db_url, args, stdin, message):
    """A short password, an unknown user or key, an empty name: a message and a non-zero exit."""
    result = run(db_url, "user", *args, input=stdin)
    assert result.exit_code != 0 and message in result.output


def test_user_add_twice_is_refused(db_url):
    """A second user of the same name is refused (the password command changes passwords)."""
    assert run(db_url, "user", "add", "bob", "--password-stdin", input="long enough pw\n").exit_code == 0
    again = run(db_url, "user", "add", "bob", "--password-stdin", input="another one!\n")
    assert again.exit_code == 1 and "exists already" in again.output


def test_user_password_remove_and_list(db_url):
    """password changes the hash; list shows names, never hashes; remove removes."""
    run(db_url, "user", "add", "bob", "--password-stdin", input="long enough pw\n")
    assert run(db_url, "user", "password", "bob", "--password-stdin", input="a new password\n").exit_code == 0
    assert passwords.verify_password(auth(db_url).user("bob")["password_hash"], "a new password")
    listed = run(db_url, "user", "list")
    assert "bob" in listed.output and "$argon2" not in listed.output
    assert run(db_url, "user", "remove", "bob").exit_code == 0
    assert auth(db_url).user("bob") is None


def test_key_add_prints_a_key_once_and_stores_its_hash(db_url):
    """The key is printed (stdout, alone on its line); the database holds its SHA-256 only."""
    result = CliRunner().invoke(cli, ["user", "key-add", "--db", db_url, "ci"])
    assert result.exit_code == 0
    key = result.stdout.strip()
    assert key.startswith("rtk_") and auth(db_url).api_key(passwords.key_hash(key)).name == "ci"
    assert run(db_url, "user", "key-remove", "ci").exit_code == 0
    assert auth(db_url).api_key(passwords.key_hash(key)) is None


def test_key_add_start_lets_the_key_start_those_pipelines_only(db_url):
    """`key-add --start 'sync-*' --start nikki` stores the start scope (apart from --write); list shows it."""
    result = CliRunner().invoke(cli, ["user", "key-add", "--db", db_url, "cron", "--start", "sync-*",
                                      "--start", "nikki", "--write", "nikki"])
    assert result.exit_code == 0, result.output
    key = auth(db_url).api_key(passwords.key_hash(result.stdout.strip()))
    assert key.permissions.patterns(START) == ("sync-*", "nikki") and key.write == ("nikki",)
    assert key.permissions.allows(START, "sync-members") and not key.permissions.allows(START, "backup")
    CliRunner().invoke(cli, ["user", "key-add", "--db", db_url, "grafana"])
    listed = run(db_url, "user", "list").output
    assert "cron  (writes nikki; starts sync-*, nikki;" in listed and "grafana  (read-only;" in listed
    refused = CliRunner().invoke(cli, ["user", "key-add", "--db", db_url, "bad", "--start", " "])
    assert refused.exit_code != 0 and "--start" in refused.output


def test_user_logout_ends_every_session_of_the_user_and_no_other(db_url):
    """`runtracker user logout NAME` ends all of NAME's sessions (each browser is sent to /login), says how
    many, and leaves other users logged in; an unknown user is an error."""
    from starlette.testclient import TestClient

    from runtracker.settings.web import WebSettings
    from runtracker.web.app import create_app

    users = auth(db_url)
    users.add_user("bob", passwords.hash_password("long enough pw"))
    users.add_user("alice", passwords.hash_password("long enough pw too"))
    app = create_app(WebSettings(secret="a-test-secret-of-more-than-32-characters", db=db_url))
    try:
        browsers = [TestClient(app, follow_redirects=False) for _ in range(3)]
        for browser, name in zip(browsers, ("bob", "bob", "alice"), strict=True):
            assert login(browser, name, "long enough pw" + (" too" if name == "alice" else "")).status_code == 303
        result = run(db_url, "user", "logout", "bob")
        assert result.exit_code == 0 and "ended 2 session(s) of bob" in result.output
        assert [b.get("/").status_code for b in browsers] == [303, 303, 200]
        assert "bob  (since" in run(db_url, "user", "list").output
        missing = run(db_url, "user", "logout", "nobody")
        assert missing.exit_code == 1 and "there is no user nobody" in missing.output
    finally:
        app.state.web.store.close()


@pytest.mark.parametrize(("secret", "message"), [
    (None, "RUNTRACKER_WEB_SECRET"), ("too-short", "too short"),
])
def test_serve_refuses_to_start_without_a_long_secret(sqlite_url, secret, message):
    """No secret, or a short one: a clear error naming the variable, exit 1, nothing served."""
    env = {"RUNTRACKER_WEB_SECRET": secret}
    result = CliRunner().invoke(cli, ["serve", "--db", sqlite_url], env=env)
    assert result.exit_code == 1 and message in result.output


def test_serve_without_the_web_extra_says_what_to_install(sqlite_url, monkeypatch):
    """Without the extra (uvicorn not importable) `serve` and `user` say `pip install 'runtracker[web]'`."""
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = CliRunner().invoke(cli, ["serve", "--db", sqlite_url, "--demo"])
    assert result.exit_code == 1 and "pip install 'runtracker[web]'" in result.output
    monkeypatch.setitem(sys.modules, "argon2", None)
    monkeypatch.setattr(STATE, "password_hasher", None)
    result = CliRunner().invoke(cli, ["user", "add", "--db", sqlite_url, "bob", "--password-stdin"], input="x" * 9)
    assert result.exit_code == 1 and "pip install 'runtracker[web]'" in result.output


@pytest.mark.parametrize("module", ["runtracker", "runtracker.cli"])
def test_importing_runtracker_or_its_cli_loads_no_web_stack(module):
    """Neither `import runtracker` nor the CLI's import loads starlette, jinja2, uvicorn or the web package."""
    probe = (f"import sys, {module}; print(' '.join(m for m in ('starlette', 'jinja2', 'uvicorn', 'argon2', "
             "'runtracker.web', 'prometheus_client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=app_env("sqlite:///x"),
                         check=True).stdout
    assert out.strip() == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.subprocess
def test_serve_as_a_subprocess_in_demo_mode_answers_health_and_logs_in_demo(tmp_path, db_url):
    """`runtracker serve --demo --db URL --port P` starts, says it is in demo mode (never a password of the
    database), answers /health, and the demo user can log in."""
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "runtracker", "serve", "--db", db_url, "--host", "127.0.0.1",
                             "--port", str(port), "--demo"], stdout=log, stderr=subprocess.STDOUT,
                            env={k: v for k, v in app_env(db_url).items() if k != "RUNTRACKER_WEB_SECRET"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        with opener.open(f"http://127.0.0.1:{port}/login", timeout=5) as response:
            assert "Demo mode: user" in response.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "DEMO MODE" in output and f"http://localhost:{port}/" in output
    assert "demo / demo" in output
    assert Auth(open_store(db_url)).user("demo") is not None


def test_the_demo_user_is_made_only_when_there_is_no_user(db_url):
    """Demo mode adds demo/demo to a database without users, never beside real ones."""
    from runtracker.settings.web import DEMO_SECRET, WebSettings
    from runtracker.web.app import create_app

    users = auth(db_url)
    users.add_user("alice", passwords.hash_password("long enough pw"))
    app = create_app(WebSettings(secret=DEMO_SECRET, db=db_url, demo=True))
    app.state.web.store.close()
    assert [u["name"] for u in users.users()] == ["alice"]
