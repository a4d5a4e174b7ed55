"""Login, sessions, CSRF, the login rate limit and API keys, over HTTP."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer
from starlette.testclient import TestClient
from webdata import add_run
from weblib import PASSWORD, SECRET, USER, api_key, csrf_token, login

from runtracker.settings.web import DEMO_SECRET, SettingsError, WebSettings, session_secret
from runtracker.web import passwords
from runtracker.web.app import create_app

PAGES = ["/", "/pipeline/nikki", "/run/1", "/errors", "/errors?view=groups", "/errors/1", "/errors/clear",
         "/member/KNVB1"]
API = ["/metrics", "/api/pipelines", "/api/runs", "/api/runs/1", "/api/errors", "/api/errors/groups"]
# Every POST, with what it needs besides the CSRF token.
POSTS = [("/logout", {}), ("/errors/clear", {"confirm": "yes"}), ("/pipeline/nikki/start", {})]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_redirects_to_login_without_a_session(anon, path):
    """A page without a login answers 303 to /login, carrying where to come back to."""
    response = anon.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2F")


@pytest.mark.parametrize("path", API)
def test_every_api_call_answers_401_without_a_key_or_session(anon, path):
    """The API answers 401 (JSON) to a request with neither an API key nor a session."""
    response = anon.get(path)
    assert response.status_code == 401 and "error" in response.json()


@pytest.mark.parametrize("path", ["/login", "/health", "/static/app.css", "/static/app.js", "/static/favicon.svg"])
def test_login_health_and_static_files_need_no_login(anon, path):
    """/login, /health and the static files answer without a login."""
    assert anon.get(path).status_code == 200


def test_login_with_the_right_password_opens_a_session_cookie_httponly_and_samesite_lax(anon):
    """The session cookie is HttpOnly and SameSite=Lax, not Secure over plain http."""
    response = login(anon, USER, PASSWORD, "/errors")
    assert response.status_code == 303 and response.headers["location"] == "/errors"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert anon.get("/").status_code == 200


def test_the_session_cookie_is_secure_over_https(app):
    """Served over https (TLS, or a trusted proxy's X-Forwarded-Proto), the cookie is Secure."""
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    response = login(client, USER, PASSWORD)
    assert response.status_code == 303 and "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(("user", "password"), [(USER, "wrong password"), ("mallory", PASSWORD), (USER, ""),
                                                ("", "")])
def test_a_wrong_user_or_password_is_refused_with_401_and_no_session(anon, user, password):
    """A wrong password, an unknown user or empty fields: 401, the form again, still no session."""
    response = login(anon, user, password)
    assert response.status_code == 401 and "Wrong user name or password" in response.text
    assert anon.get("/").status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_to_another_site(anon, target):
    """`next` is followed only to a local path; anything else goes to the overview."""
    response = login(anon, USER, PASSWORD, target)
    assert response.headers["location"] == "/"


def test_the_sixth_login_attempt_within_a_minute_is_refused_with_429(app):
    """Five attempts a minute per client; the sixth gets 429 with Retry-After, even with the right password;
    another client is not affected."""
    client = TestClient(app, follow_redirects=False, client=("10.0.0.1", 1234))
    for _ in range(5):
        assert login(client, USER, "wrong password").status_code == 401
    refused = login(client, USER, PASSWORD)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    other = TestClient(app, follow_redirects=False, client=("10.0.0.2", 1234))
    assert login(other, USER, PASSWORD).status_code == 303


@pytest.mark.parametrize("token", [None, "", "forged"])
@pytest.mark.parametrize(("path", "data"), POSTS)
def test_every_post_without_the_session_csrf_token_is_refused_403(client, path, data, token):
    """No token, an empty one or a forged one: 403, and nothing happens (still logged in)."""
    form = dict(data)
    if token is not None:
        form["csrf_token"] = token
    response = client.post(path, data=form)
    assert response.status_code == 403 and "CSRF" in response.text
    assert client.get("/").status_code == 200


def test_login_itself_needs_the_csrf_token(anon):
    """A login form posted from elsewhere (no token of this session) is refused."""
    response = anon.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": "forged"})
    assert response.status_code == 403


def test_logout_ends_the_session(client):
    """After logout the old session is gone: pages redirect to /login again."""
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/").status_code == 303


def test_a_cookie_copied_before_logout_is_refused_after_it(app, client):
    """Logout ends the session on the server: its cookie, replayed by another client, opens nothing."""
    cookie = client.cookies.get("runtracker_session")
    thief = TestClient(app, follow_redirects=False, cookies={"runtracker_session": cookie})
    assert thief.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert thief.get("/").status_code == 303 and thief.get("/api/runs").status_code == 401


def test_a_logout_on_one_server_ends_the_session_on_another_of_the_same_database(app, client, db_url):
    """Two servers share the database: a session ended through one is refused by the other at once."""
    other = create_app(WebSettings(secret=SECRET, db=db_url))
    try:
        copied = TestClient(other, follow_redirects=False,
                            cookies={"runtracker_session": client.cookies.get("runtracker_session")})
        assert copied.get("/").status_code == 200
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
        assert copied.get("/").status_code == 303
    finally:
        other.state.web.store.close()


def test_each_login_opens_a_session_of_its_own(app, client):
    """A second login (another browser) is a second session: logging out of one leaves the other open."""
    second = TestClient(app, follow_redirects=False)
    assert login(second, USER, PASSWORD).status_code == 303
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert second.get("/").status_code == 200 and client.get("/").status_code == 303


def test_a_session_cookie_without_a_stored_session_opens_nothing(app, client):
    """A cookie signed with the secret but naming no stored session (one made before sessions were stored,
    or forged by whoever holds the secret) is no login."""
    user = app.state.web.auth.user(USER)
    signer = URLSafeTimedSerializer(SECRET, salt="runtracker.session")
    for data in ({"uid": user["id"], "user": USER, "pw": passwords.fingerprint(SECRET, user["password_hash"])},
                 {"sid": "made-up", "uid": user["id"], "pw": passwords.fingerprint(SECRET, user["password_hash"])}):
        forged = TestClient(app, follow_redirects=False,
                            cookies={"runtracker_session": signer.dumps({**data, "csrf": "x"})})
        assert forged.get("/").status_code == 303


@pytest.mark.parametrize("change", ["password", "remove"])
def test_changing_the_password_or_removing_the_user_ends_the_session(app, client, change):
    """A session is checked against the user at every request."""
    auth = app.state.web.auth
    if change == "password":
        auth.set_password(USER, passwords.hash_password("another password"))
    else:
        auth.remove_user(USER)
    assert client.get("/").status_code == 303


def test_a_tampered_session_cookie_counts_as_no_session(app, client):
    """A cookie whose signature does not match the secret is ignored."""
    cookie = client.cookies.get("runtracker_session")
    forged = TestClient(app, follow_redirects=False, cookies={"runtracker_session": cookie[:-3] + "abc"})
    assert forged.get("/").status_code == 303


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_an_api_key_opens_the_api_and_metrics(app, anon, header):
    """`Authorization: Bearer KEY` or `X-API-Key: KEY`; the key's last use is recorded."""
    key = api_key(app)
    value = f"Bearer {key}" if header == "authorization" else key
    for path in ("/api/pipelines", "/metrics"):
        assert anon.get(path, headers={header: value}).status_code == 200
    assert app.state.web.auth.api_keys()[0]["last_used_at"] is not None


def test_a_wrong_api_key_is_refused_and_does_not_open_pages(app, anon):
    """An unknown key is 401; a key opens the API, never the HTML pages."""
    key = api_key(app)
    assert anon.get("/api/runs", headers={"authorization": "Bearer rtk_wrong"}).status_code == 401
    assert anon.get("/", headers={"authorization": f"Bearer {key}"}).status_code == 303


def test_only_the_hash_of_an_api_key_is_stored(app):
    """The key itself is nowhere in the database."""
    key = api_key(app)
    stored = app.state.web.store.read("SELECT key_hash FROM api_keys")
    assert stored == [{"key_hash": passwords.key_hash(key)}] and key not in str(stored)


def test_passwords_are_stored_as_argon2_hashes(app):
    """users.password_hash is an argon2id hash, never the password."""
    row = app.state.web.auth.user(USER)
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in row["password_hash"]


@pytest.mark.parametrize(("environ", "demo", "expected"), [
    ({}, False, SettingsError), ({"RUNTRACKER_WEB_SECRET": "short"}, False, SettingsError),
    ({"RUNTRACKER_WEB_SECRET": "short"}, True, SettingsError), ({}, True, DEMO_SECRET),
    ({"RUNTRACKER_WEB_SECRET": SECRET}, False, SECRET),
])
def test_the_session_secret_is_required_and_long_except_in_demo_mode(environ, demo, expected):
    """No secret (outside demo mode) or a short one is an error that names RUNTRACKER_WEB_SECRET."""
    if expected is SettingsError:
        with pytest.raises(SettingsError, match="RUNTRACKER_WEB_SECRET"):
            session_secret(demo, environ)
    else:
        assert session_secret(demo, environ) == expected


def test_secrets_and_passwords_never_reach_a_page(app, client, db_url):
    """The session secret, the user's password and the database password appear on no page."""
    add_run(app.state.web.store, "nikki", 1)
    for path in ("/", "/pipeline/nikki", "/errors", "/health", "/metrics"):
        text = client.get(path).text
        assert SECRET not in text and PASSWORD not in text and "password_hash" not in text
