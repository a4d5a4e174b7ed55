"""Users and API keys (`storage.auth.Auth`), the same on every backend: what each method writes, returns and
refuses. Hashes are opaque text here: hashing is the web layer's (runtracker.web.passwords)."""

from __future__ import annotations

from helpers import open_fresh
from runtracker.storage.auth import START, WRITE, Auth, Permissions

T0 = "2026-01-01T00:00:00.000Z"
LATER = "2999-01-01T00:00:00.000Z"


def test_a_user_is_added_once_and_its_password_changed_or_removed_by_name(db_url):
    """add_user refuses a name that exists; set_password and remove_user say whether the user was there."""
    store = open_fresh(db_url)
    auth = Auth(store)
    assert auth.user_count() == 0 and auth.user("bob") is None
    assert auth.add_user("bob", "hash-1") and auth.add_user("alice", "hash-2")
    assert not auth.add_user("bob", "hash-3")
    assert auth.user("bob")["password_hash"] == "hash-1"
    assert [u["name"] for u in auth.users()] == ["alice", "bob"] and "password_hash" not in auth.users()[0]
    assert auth.set_password("bob", "hash-4") and auth.user("bob")["password_hash"] == "hash-4"
    assert not auth.set_password("carol", "hash-5")
    assert auth.remove_user("bob") and not auth.remove_user("bob")
    assert auth.user_count() == 1 and auth.user("bob") is None
    store.close()


def test_an_api_key_is_read_only_until_given_pipelines_to_write(db_url):
    """A new key is found by its hash with no write scope; set_write_scope gives it names or glob patterns
    (scopes lists them by key id), and an empty scope makes it read-only again."""
    store = open_fresh(db_url)
    auth = Auth(store)
    key_id = auth.add_api_key("ci", "key-hash-1")
    key = auth.api_key("key-hash-1")
    assert (key.key_id, key.name, key.write) == (key_id, "ci", ()) and not key.may_write("nikki")
    assert auth.api_key("no-such-hash") is None
    auth.set_write_scope(key_id, ["nikki", "sync-*"])
    key = auth.api_key("key-hash-1")
    assert key.may_write("nikki") and key.may_write("sync-laposta") and not key.may_write("backup")
    assert auth.permissions() == {key_id: Permissions({WRITE: ("nikki", "sync-*")})}
    auth.set_write_scope(key_id, [])
    assert auth.api_key("key-hash-1").write == () and auth.permissions() == {key_id: Permissions()}
    store.close()


def test_an_unreadable_write_scope_is_read_only(db_url):
    """A `write_pipelines` value that is not a JSON list of names (written by hand) grants nothing."""
    store = open_fresh(db_url)
    auth = Auth(store)
    key_id = auth.add_api_key("ci", "key-hash-1")
    for stored in ("not json", '{"nikki": true}', '["", 7, "nikki"]'):
        with store.transaction() as cur:
            cur.execute(store.sql("UPDATE api_keys SET write_pipelines = ? WHERE id = ?"), (stored, key_id))
        assert auth.api_key("key-hash-1").write == (("nikki",) if stored.startswith("[") else ())
    store.close()


def test_api_keys_are_listed_by_name_touched_and_removed_together(db_url):
    """Several keys may share a name: api_keys lists them (never a hash), touch_api_key records a use, and
    remove_api_keys removes every key of the name and says how many."""
    store = open_fresh(db_url)
    auth = Auth(store)
    first, second = auth.add_api_key("node", "hash-a"), auth.add_api_key("node", "hash-b")
    auth.add_api_key("ci", "hash-c")
    assert [(k["name"], k["id"]) for k in auth.api_keys()] == [("ci", second + 1), ("node", first), ("node", second)]
    assert all("key_hash" not in k and k["last_used_at"] is None for k in auth.api_keys())
    auth.touch_api_key(first, T0)
    assert [k["last_used_at"] for k in auth.api_keys() if k["id"] == first] == [T0]
    assert auth.remove_api_keys("node") == 2 and auth.remove_api_keys("node") == 0
    assert auth.api_key("hash-a") is None and [k["name"] for k in auth.api_keys()] == ["ci"]
    store.close()


def test_a_key_starts_only_the_pipelines_its_start_scope_names(db_url):
    """A new key starts nothing; set_scope(START) gives it names or glob patterns, apart from what it writes."""
    store = open_fresh(db_url)
    auth = Auth(store)
    key_id = auth.add_api_key("cron", "key-hash-1")
    assert not auth.api_key("key-hash-1").permissions.allows(START, "nikki")
    auth.set_scope(key_id, START, ["sync-*"])
    key = auth.api_key("key-hash-1")
    assert key.permissions.allows(START, "sync-members") and not key.permissions.allows(START, "nikki")
    assert key.write == () and not key.may_write("sync-members")
    auth.set_write_scope(key_id, ["nikki"])
    assert auth.permissions() == {key_id: Permissions({WRITE: ("nikki",), START: ("sync-*",)})}
    store.close()


def test_a_session_is_found_until_it_is_ended(db_url):
    """open_session stores a session by its hash; session_user finds its user until end_session deletes it."""
    store = open_fresh(db_url)
    auth = Auth(store)
    auth.add_user("bob", "hash-1")
    bob = auth.user("bob")["id"]
    auth.open_session(bob, "session-1", LATER, keep=100)
    found = auth.session_user("session-1")
    assert (found["name"], found["id"], found["expires_at"]) == ("bob", bob, LATER)
    assert auth.session_user("session-2") is None
    assert auth.end_session("session-1") and auth.session_user("session-1") is None
    assert not auth.end_session("session-1")
    store.close()


def test_a_password_change_removal_or_logout_of_a_user_ends_all_of_its_sessions(db_url):
    """set_password, remove_user and end_sessions delete every session of that user, and no other's; a
    session expired is pruned at the next login."""
    store = open_fresh(db_url)
    auth = Auth(store)
    auth.add_user("bob", "hash-1")
    auth.add_user("alice", "hash-2")
    bob, alice = auth.user("bob")["id"], auth.user("alice")["id"]
    for n in range(3):
        auth.open_session(bob, f"bob-{n}", LATER, keep=100)
    auth.open_session(alice, "alice-0", LATER, keep=100)
    auth.open_session(alice, "alice-old", T0, keep=100)
    assert auth.session_counts() == {bob: 3, alice: 2}
    auth.open_session(bob, "bob-3", LATER, keep=100)  # prunes alice-old, expired
    assert auth.session_counts() == {bob: 4, alice: 1}
    assert auth.end_sessions("bob") == 4 and auth.end_sessions("bob") == 0 and auth.end_sessions("carol") is None
    auth.open_session(bob, "bob-4", LATER, keep=100)
    assert auth.set_password("bob", "hash-3") and auth.session_user("bob-4") is None
    auth.open_session(bob, "bob-5", LATER, keep=100)
    assert auth.remove_user("bob") and auth.session_user("bob-5") is None
    assert auth.session_counts() == {alice: 1} and auth.session_user("alice-0")["name"] == "alice"
    store.close()


def test_the_demo_user_is_marked_demo_only_and_not_counted_until_given_a_real_password(db_url):
    """add_demo_user marks the user demo-only; user_count counts real users only; a password set by the
    operator makes the user a real one."""
    store = open_fresh(db_url)
    auth = Auth(store)
    assert auth.add_demo_user("demo", "hash-1") and not auth.add_demo_user("demo", "hash-2")
    assert auth.user("demo")["demo_only"] and auth.users()[0]["demo_only"] and auth.user_count() == 0
    auth.add_user("bob", "hash-3")
    assert not auth.user("bob")["demo_only"] and auth.user_count() == 1
    assert auth.set_password("demo", "hash-4") and not auth.user("demo")["demo_only"] and auth.user_count() == 2
    store.close()


def test_a_user_keeps_at_most_the_newest_sessions_given(db_url):
    """open_session(keep=N) ends the user's oldest sessions beyond N, and no other user's."""
    store = open_fresh(db_url)
    auth = Auth(store)
    auth.add_user("bob", "hash-1")
    auth.add_user("alice", "hash-2")
    bob, alice = auth.user("bob")["id"], auth.user("alice")["id"]
    auth.open_session(alice, "alice-0", LATER, keep=2)
    for n in range(4):
        auth.open_session(bob, f"bob-{n}", LATER, keep=2)
        with store.transaction() as cur:  # distinct creation times, in order, without waiting
            cur.execute(store.sql("UPDATE sessions SET created_at = ? WHERE id_hash = ?"),
                        (f"2026-01-01T00:00:0{n}.000Z", f"bob-{n}"))
    assert auth.session_counts() == {bob: 2, alice: 1}
    assert [bool(auth.session_user(f"bob-{n}")) for n in range(4)] == [False, False, True, True]
    assert auth.session_user("alice-0")
    store.close()
