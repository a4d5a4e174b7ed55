"""A dashboard user's own time zone from the command line: `user add --timezone`, `user timezone NAME ZONE`,
`--clear`, shown by `user list` (whose dates are in the display zone), and wrong names refused."""

from __future__ import annotations

from click.testing import CliRunner

from runtracker.cli import cli
from runtracker.storage import open_store
from runtracker.storage.auth import Auth


def run(db: str, *args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["user", args[0], "--db", db, *args[1:]], input=input)


def zone_of(db: str, name: str) -> str | None:
    row = Auth(open_store(db)).user(name)
    assert row is not None
    return row["timezone"]


def test_a_user_gets_a_zone_at_add_and_changes_or_clears_it(db_url):
    assert run(db_url, "add", "bob", "--password-stdin", "--timezone", "Europe/Amsterdam",
               input="s3cret-enough\n").exit_code == 0
    assert zone_of(db_url, "bob") == "Europe/Amsterdam"
    result = run(db_url, "timezone", "bob", "Asia/Tokyo")
    assert result.exit_code == 0 and result.output == "bob's times: Asia/Tokyo\n"
    assert zone_of(db_url, "bob") == "Asia/Tokyo"
    assert "bob  (since " in run(db_url, "list").output and "; times in Asia/Tokyo" in run(db_url, "list").output
    assert run(db_url, "timezone", "bob", "--clear").exit_code == 0
    assert zone_of(db_url, "bob") is None
    assert "times in" not in run(db_url, "list").output


def test_wrong_zones_and_unknown_users_are_refused(db_url):
    assert run(db_url, "add", "bob", "--password-stdin", input="s3cret-enough\n").exit_code == 0
    for args in (("timezone", "bob", "Europe/Amsterdan"), ("timezone", "bob"),
                 ("timezone", "bob", "UTC", "--clear")):
        result = run(db_url, *args)
        assert result.exit_code == 2, (args, result.output)
    assert zone_of(db_url, "bob") is None
    result = run(db_url, "add", "carol", "--password-stdin", "--timezone", "Nowhere/Town", input="s3cret-enough\n")
    assert result.exit_code == 2 and "not a time zone" in result.output
    result = run(db_url, "timezone", "nobody", "UTC")
    assert result.exit_code == 1 and "there is no user nobody" in result.output


def test_user_list_prints_dates_in_the_display_zone(db_url, monkeypatch):
    assert run(db_url, "add", "bob", "--password-stdin", input="s3cret-enough\n").exit_code == 0
    store = open_store(db_url)
    with store.transaction() as cur:
        cur.execute(store.sql("UPDATE users SET created_at = '2026-03-29T01:00:00.000Z'"))
    store.close()
    monkeypatch.setenv("RUNTRACKER_TIMEZONE", "Europe/Amsterdam")
    assert "bob  (since 2026-03-29 03:00:00 +02:00;" in run(db_url, "list").output
    assert "bob  (since 2026-03-29 01:00:00 +00:00;" in run(db_url, "list", "--utc").output
