"""Redaction: the rules on realistic strings, the settings, and every source of recorded text end to end."""

from __future__ import annotations

import json
import logging
import traceback

import pytest

from helpers import Db
from runtracker import RunTracker
from runtracker.base import redact, sanitize
from runtracker.settings import configfile
from runtracker.settings import values as config

SECRET = "hunter2-7f3a9c"

# (text, what must be gone, what must stay): realistic strings from pipelines.
CASES = [
    ("HTTPSConnectionPool(host='api.example.org', port=443): Max retries exceeded with url: "
     f"https://admin:{SECRET}@api.example.org/v1/members", SECRET, "https://admin:***@api.example.org/v1/members"),
    (f"postgresql://tracker:{SECRET}@db.internal/dashboard", SECRET, "postgresql://tracker:***@db.internal"),
    (f"https://admin:p@ss{SECRET}@host/x", SECRET, "https://admin:***@host/x"),
    (f"GET /v1/members?page=2&api_key={SECRET}&sort=name failed", SECRET, "api_key=***&sort=name"),
    (f"login failed for user=admin password={SECRET} (attempt 3)", SECRET, "password=*** (attempt 3)"),
    (f"DB_PASSWORD={SECRET} ./sync.sh", SECRET, "DB_PASSWORD=*** ./sync.sh"),
    (f'{{"user": "admin", "password": "{SECRET}", "page": 2}}', SECRET, '"password": "***", "page": 2'),
    (f"{{'User-Agent': 'python-requests/2.31', 'Authorization': 'Bearer {SECRET}'}}", SECRET,
     "'Authorization': '***'}"),
    (f"GET /v1 HTTP/1.1\r\nAuthorization: Basic {SECRET}\r\nAccept: */*", SECRET, "Authorization: ***\r\nAccept"),
    (f"Cookie: sessionid={SECRET}; theme=dark\nnext line", SECRET, "Cookie: ***\nnext line"),
    (f"Set-Cookie: sid={SECRET}; HttpOnly", SECRET, "Set-Cookie: ***"),
    (f"X-Api-Key: {SECRET}", SECRET, "X-Api-Key: ***"),
    (f"    token = '{SECRET}'", SECRET, "token = '***'"),
    (f"client_secret: {SECRET}", SECRET, "client_secret: ***"),
    (f"retrying with Bearer {SECRET}abcdef", SECRET, "Bearer ***"),
    (f"mysql --password {SECRET} -h db.internal", SECRET, "--password *** -h db.internal"),
    (f"curl -u admin:{SECRET} https://api.example.org", SECRET, "-u admin:*** https://api.example.org"),
    (f"curl -H 'Authorization: Bearer {SECRET}' https://api.example.org", SECRET, "'Authorization: ***' https"),
    ("push failed: ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "ghp_A1b2", "push failed: ***"),
    ("slack: xoxb-123456789012-abcdefghijkl rejected", "xoxb-1234", "slack: *** rejected"),
    ("aws key AKIAIOSFODNN7EXAMPLE is inactive", "AKIAIOSFODNN7EXAMPLE", "aws key *** is inactive"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U expired",
     "eyJhbGciOiJIUzI1NiJ9", "jwt *** expired"),
    ("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX failed", "XXXXXXXXXXXX",
     "hooks.slack.com/services/*** failed"),
    (f"login with token tok_{SECRET} refused", SECRET, "login with token *** refused"),
    (f"password {SECRET}", SECRET, "password ***"),
    (f"DB_PASSWORD\t{SECRET} given", SECRET, "DB_PASSWORD\t*** given"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA", "***"),
]

# Ordinary text that must come out unchanged.
UNCHANGED = [
    "member KNVB1004821 not found in Sportlink",
    "HTTP 502 Bad Gateway from https://api.sportlink.nl/members/KNVB1004821: upstream timeout",
    "validation failed: email 'jan@example.org' is not a valid address",
    "passed=40 failed=2 tokens=5 token_count=7",
    'duplicate key value violates unique constraint "members_pkey"\nDETAIL:  Key (id)=(5) already exists.',
    "contribution 2026-05 of KNVB1004821 already exists (id=88123)",
    "exited with code 3; signal=SIGTERM",
    "token expired for member KNVB1004821",
    "password reset for KNVB1004821 sent",
    "passed 1234567 tests, bypass 12345678",
    "token count 123456",
    "",
]


@pytest.mark.parametrize(("text", "gone", "kept"), CASES)
def test_redact_replaces_the_secret_and_keeps_what_it_was(text, gone, kept):
    """Each rule replaces the secret by *** and keeps the key, header name or URL around it."""
    out = redact.redact(text)
    assert gone not in out
    assert kept in out


@pytest.mark.parametrize("text", UNCHANGED)
def test_redact_leaves_ordinary_text_alone(text):
    """Messages without a secret, counts named like keys and e-mail addresses included, are not changed."""
    assert redact.redact(text) == text


def test_secret_env_values_are_redacted_anywhere_and_short_ones_are_not(monkeypatch):
    """The value of an env var named like a secret is *** wherever it appears; one under 6 characters is not."""
    monkeypatch.setenv("API_TOKEN", "tok-8d1e5f0a")
    monkeypatch.setenv("STRIPE_KEY", "abc")
    monkeypatch.setenv("HOME_DIR", "tok-notsecret")
    redact.reset()
    assert redact.redact("echo tok-8d1e5f0a done") == "echo *** done"
    assert redact.redact("abc and tok-notsecret") == "abc and tok-notsecret"


def test_an_env_secret_set_after_the_first_use_is_redacted_from_the_next_run(monkeypatch, sqlite_url):
    """start_run collects the env's secrets again: one the pipeline set since is redacted in its run."""
    redact.redact("warm up")
    monkeypatch.setenv("SYNC_PASSWORD", "late-secret-91")
    tracker = RunTracker("nikki", db=sqlite_url)
    tracker.start_run()
    tracker.record_error(error_message="login with late-secret-91 refused")
    tracker.end_run("partial")
    assert Db(sqlite_url).errors(tracker.run_id)[0]["error_message"] == "login with *** refused"


def test_to_json_replaces_values_of_secret_keys_and_redacts_strings():
    """Stats and detail: secret keys get ***, whatever their value; strings are redacted; counts stay."""
    doc = json.loads(sanitize.to_json({
        "password": SECRET, "api_key": 12345, "auth": {"user": "a", "pw": SECRET}, "accessKey": SECRET,
        "source": f"https://admin:{SECRET}@api.example.org", "tokens": 40, "none": None,
        "body": json.dumps({"password": SECRET}), "nested": [{"client_secret": SECRET}],
    }))
    assert SECRET not in json.dumps(doc)
    assert doc["password"] == doc["api_key"] == doc["auth"] == doc["accessKey"] == "***"
    assert doc["source"] == "https://admin:***@api.example.org"
    assert doc["tokens"] == 40 and doc["none"] is None
    assert doc["nested"] == [{"client_secret": "***"}]


def test_to_json_of_stats_without_secrets_is_unchanged():
    """A document with no secret is the plain JSON of the stats."""
    stats = {"contributions": 40, "members": ["KNVB1", "KNVB2"], "source": "https://api.example.org/v1"}
    assert sanitize.to_json(stats) == json.dumps(stats, ensure_ascii=False)


def test_secret_cut_by_the_limit_is_redacted_before_the_cut():
    """Text is redacted before it is truncated: a secret past the limit's edge leaves no piece behind."""
    text = "x" * 1990 + f" https://admin:{SECRET}@host"
    out = sanitize.text(text, sanitize.MESSAGE_LIMIT)
    assert "hunter2" not in out
    assert len(out) <= sanitize.MESSAGE_LIMIT


def test_member_identifiers_are_not_redacted(sqlite_url):
    """A member id is stored as given (an identifier, looked up as it is), the message next to it redacted."""
    tracker = RunTracker("nikki", db=sqlite_url)
    tracker.start_run()
    tracker.record_error(member_identifier="token=KNVB1", error_message=f"token={SECRET}")
    tracker.end_run("partial")
    row = Db(sqlite_url).errors(tracker.run_id)[0]
    assert (row["member_identifier"], row["error_message"]) == ("token=KNVB1", "token=***")


# -- settings -------------------------------------------------------------------------------------------------
def test_redaction_can_be_switched_off_by_the_environment(monkeypatch):
    """RUNTRACKER_REDACT=off stores text as it is."""
    monkeypatch.setenv(config.REDACT_ENV, "off")
    redact.reset()
    assert redact.redact(f"password={SECRET}") == f"password={SECRET}"


def test_a_wrong_redact_value_keeps_redaction_on_with_a_warning(monkeypatch, caplog):
    """RUNTRACKER_REDACT=maybe is refused out loud and redaction stays on."""
    monkeypatch.setenv(config.REDACT_ENV, "maybe")
    redact.reset()
    with caplog.at_level(logging.WARNING, logger="runtracker"):
        assert redact.redact(f"password={SECRET}") == "password=***"
    assert "RUNTRACKER_REDACT='maybe'" in caplog.text


def test_extra_patterns_from_the_environment_apply_and_a_bad_one_is_refused(monkeypatch, caplog):
    """RUNTRACKER_REDACT_PATTERNS: one regex per line; an invalid one is left out with a warning."""
    monkeypatch.setenv(config.REDACT_PATTERNS_ENV, "corp-[0-9a-f]{8}\n(unclosed\nx*")
    redact.reset()
    with caplog.at_level(logging.WARNING, logger="runtracker"):
        assert redact.redact("key corp-0badf00d used") == "key *** used"
    assert "not a valid regular expression" in caplog.text
    assert "matches empty text" in caplog.text


def test_config_file_redact_table_applies_and_refuses_bad_patterns(tmp_path):
    """[redact] patterns are added when the file is loaded; an invalid regex is an error naming the key."""
    good = tmp_path / "runtracker.toml"
    good.write_text('[redact]\npatterns = ["member-pin: \\\\d{4}"]\n')
    configfile.load(str(good))
    assert redact.redact("member-pin: 1234 wrong") == "*** wrong"
    bad = tmp_path / "bad.toml"
    bad.write_text('[redact]\nenabled = true\npatterns = ["(oops"]\n')
    with pytest.raises(configfile.ConfigError, match=r"bad.toml:3: \[redact\] patterns: '\(oops' is not a valid"):
        configfile.load(str(bad))


def test_config_file_can_switch_redaction_off(tmp_path):
    """[redact] enabled = false stores text as it is (and is what exec passes on to its command)."""
    path = tmp_path / "runtracker.toml"
    path.write_text("[redact]\nenabled = false\n")
    configfile.load(str(path))
    assert redact.redact(f"password={SECRET}") == f"password={SECRET}"
    assert config.child_environment()[config.REDACT_ENV] == "off"


# -- end to end: each source, stored --------------------------------------------------------------------------
def _everything(url: str) -> str:
    """Every column of every row of the three tables, as one text."""
    db = Db(url)
    rows = [db.query(f"SELECT * FROM {table}") for table in ("runs", "run_steps", "run_errors")]
    return json.dumps(rows, default=str)


class _HTTPError(Exception):
    """What requests' HTTPError says when a pipeline prints it with the request it made."""

    def __str__(self) -> str:
        return ("401 Client Error: Unauthorized for url: https://api.example.org/v1/members; request headers: "
                f"{{'User-Agent': 'python-requests/2.31', 'Authorization': 'Bearer {SECRET}', "
                "'Accept': 'application/json'}")


def _fetch_members(token: str) -> None:
    raise _HTTPError()


def test_a_failing_http_call_with_a_password_in_its_url_is_stored_redacted(db_url):
    """record_error of a failed call to https://admin:hunter2@... keeps the URL without the password."""
    tracker = RunTracker("nikki", db=db_url)
    tracker.start_run()
    step = tracker.start_step(f"download https://admin:{SECRET}@api.example.org")
    tracker.record_error(step_id=step, member_identifier="KNVB1004",
                         error_message=f"GET https://admin:{SECRET}@api.example.org/v1/members failed: 503")
    tracker.end_step(step, "partial", detail={"url": f"https://admin:{SECRET}@api.example.org"})
    tracker.end_run("partial")
    stored = _everything(db_url)
    assert SECRET not in stored
    assert "https://admin:***@api.example.org/v1/members failed: 503" in stored
    assert "download https://admin:***@api.example.org" in stored


def test_a_requests_style_exception_with_headers_is_stored_redacted(db_url):
    """An exception whose text carries the request's Authorization header, raised in a step and the run: the
    error row, the crash row, its stack and the summary hold no token."""
    tracker = RunTracker("nikki", db=db_url)
    with pytest.raises(_HTTPError):
        with tracker.run() as run, run.step("download"):
            _fetch_members(token=SECRET)
    stored = _everything(db_url)
    assert SECRET not in stored
    assert "'Authorization': '***'" in stored
    assert Db(db_url).crash_rows(tracker.run_id)[0]["error_stack"].count("_HTTPError") >= 1


def test_a_stack_whose_locals_mention_a_token_is_stored_redacted(db_url):
    """A traceback formatted with its locals (token = '...') and a faulthandler-like dump are redacted."""
    tracker = RunTracker("nikki", db=db_url)
    tracker.start_run()
    try:
        _fetch_members(token=SECRET)
    except _HTTPError as exc:
        stack = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    assert f"token = '{SECRET}'" in stack  # the premise: the locals show it
    tracker.record_error(error_message="download failed", error_stack=stack)
    tracker.record_errors("sync", None, [{"message": "again", "stack": stack}, _HTTPError()])
    tracker.end_run("failure", {"last_stack": stack, "api_token": SECRET})
    stored = _everything(db_url)
    assert SECRET not in stored
    assert "token = '***'" in stored


def test_detail_and_stats_with_a_password_key_are_stored_redacted(db_url):
    """detail_json and summary_json: {"password": ...} is stored as {"password": "***"}."""
    tracker = RunTracker("nikki", db=db_url)
    tracker.start_run()
    step = tracker.start_step("login")
    tracker.end_step(step, detail={"user": "admin", "password": SECRET})
    tracker.end_run("success", {"connection": {"dsn": f"postgresql://sync:{SECRET}@db/x", "password": SECRET}})
    stored = _everything(db_url)
    assert SECRET not in stored
    assert json.loads(Db(db_url).steps(tracker.run_id)[0]["detail_json"]) == {"user": "admin", "password": "***"}


def test_with_redaction_off_the_text_is_stored_as_given(sqlite_url, monkeypatch):
    """The opt-out works end to end: RUNTRACKER_REDACT=0 stores the secret."""
    monkeypatch.setenv(config.REDACT_ENV, "0")
    redact.reset()
    tracker = RunTracker("nikki", db=sqlite_url)
    tracker.start_run()
    tracker.record_error(error_message=f"password={SECRET}")
    tracker.end_run("partial")
    assert SECRET in _everything(sqlite_url)


def test_every_crash_row_redacts_its_message_stack_and_log_lines():
    """lifecycle.crash_row, the one builder of crash rows (hooks, reaper with its crash-file text, exec), redacts
    the message, the stack (a faulthandler dump or a dying process's last words) and the last log lines."""
    from runtracker.core import lifecycle

    row = lifecycle.crash_row(1, None, "rondo", f"lost: its last words: GET https://admin:{SECRET}@host failed",
                              f'File "sync.py", line 3 in login\n  password = "{SECRET}"',
                              "2026-01-01T00:00:00.000Z", f"INFO connecting with token={SECRET}")
    assert SECRET not in json.dumps(row)
    assert "https://admin:***@host" in row[5] and 'password = "***"' in row[6] and "token=***" in row[6]


def test_an_alert_channels_error_is_stored_redacted(sqlite_url):
    """The error an alert channel gives (Apprise may quote the channel URL) is stored on the delivery redacted."""
    from runtracker.alerts.delivery import Deliverer
    from runtracker.core.state import STATE
    from runtracker.storage.alerts import AlertStore, NewAlert

    class Failing:
        names = ["ops"]

        def send(self, channel: str, title: str, body: str, notify_type: str = "info") -> str:
            return f"could not log in to mailtos://alerts:{SECRET}@smtp.example.org: 535 authentication failed"

    store = STATE.stores.get(sqlite_url)
    alerts = AlertStore(store)
    at = "2026-01-01T00:00:00.000Z"
    alerts.raise_alert(NewAlert("run:1:failed", "failed", "nikki", None, "nikki failed", "body"), ["ops"], at, "me")
    Deliverer(alerts, Failing(), "me").send_due("ops")  # type: ignore[arg-type]
    [delivery] = alerts.deliveries()
    assert delivery["last_error"].startswith("could not log in to mailtos://alerts:***@smtp.example.org")


def test_a_warning_that_echoes_a_pipelines_value_shows_it_redacted(sqlite_url, caplog):
    """Arguments passed in the wrong places (a message where the step id goes, a URL as a count): the warnings
    that name the odd value do not print the secret in it: a log line is shown too."""
    tracker = RunTracker("nikki", db=sqlite_url)
    tracker.start_run()
    step = tracker.start_step("sync")
    with caplog.at_level(logging.WARNING, logger="runtracker"):
        tracker.record_error("sync", f"GET https://admin:{SECRET}@api.example.org failed")
        tracker.end_step(step, "failure", created=f"password={SECRET}")
        tracker.end_run(f"token={SECRET}")
    assert "unknown step id" in caplog.text and "not a number" in caplog.text and "unknown" in caplog.text
    assert SECRET not in caplog.text
    assert "https://admin:***@" in caplog.text
