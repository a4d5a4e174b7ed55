"""Times shown in a display zone: base/zones (names, formats, the two DST changes of Europe/Amsterdam in 2026),
the dashboard's time filters (web/present: local, utc, exact, ago), and where the display zone comes from
(settings/display: $RUNTRACKER_TIMEZONE > [dashboard] timezone > [defaults] timezone > UTC; for commands
--utc / --timezone > that > $TZ > UTC), a wrong name being a warning and UTC."""

from __future__ import annotations

import logging

import pytest

from runtracker.base import zones
from runtracker.base.clock import to_ms
from runtracker.base.status import PipelineStatus
from runtracker.settings import configfile, display, effective
from runtracker.web import present

AMSTERDAM = "Europe/Amsterdam"


def ms(text: str) -> int:
    found = to_ms(text)
    assert found is not None
    return found


# -- base/zones -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("utc", "local", "offset"), [
    # Spring forward, 2026-03-29: at 01:00 UTC the clocks go from 02:00 CET to 03:00 CEST; 02:xx never happens.
    ("2026-03-29T00:59:59.000Z", "2026-03-29 01:59:59 CET", "2026-03-29 01:59:59 +01:00"),
    ("2026-03-29T01:00:00.000Z", "2026-03-29 03:00:00 CEST", "2026-03-29 03:00:00 +02:00"),
    # Fall back, 2026-10-25: at 01:00 UTC the clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    ("2026-10-25T00:30:00.000Z", "2026-10-25 02:30:00 CEST", "2026-10-25 02:30:00 +02:00"),
    ("2026-10-25T01:30:00.000Z", "2026-10-25 02:30:00 CET", "2026-10-25 02:30:00 +01:00"),
    # Midnight UTC is another day in a zone behind it.
    ("2026-01-01T00:00:00.000Z", "2026-01-01 01:00:00 CET", "2026-01-01 01:00:00 +01:00"),
])
def test_an_instant_is_written_in_the_zone_across_both_dst_changes(utc, local, offset):
    """The same instant reads as its own wall-clock time in Amsterdam on either side of each DST change; the
    hour that repeats in October is told apart by its abbreviation and offset."""
    assert zones.local_text(ms(utc), AMSTERDAM) == local
    assert zones.offset_text(ms(utc), AMSTERDAM) == offset


def test_utc_text_keeps_the_stored_millisecond_and_offset_text_can_too():
    """The tooltip's UTC time is the stored one to the millisecond; `show` prints milliseconds with the offset."""
    at = ms("2026-10-25T01:30:00.123Z")
    assert zones.utc_text(at) == "2026-10-25 01:30:00.123 UTC"
    assert zones.offset_text(at, AMSTERDAM, millis=True) == "2026-10-25 02:30:00.123 +01:00"
    assert zones.offset_text(at, "UTC") == "2026-10-25 01:30:00 +00:00"
    assert zones.offset_text(at, "America/New_York") == "2026-10-24 21:30:00 -04:00"


@pytest.mark.parametrize("name", ["Europe/Amsterdan", "", "../../etc/passwd", "/etc/localtime", "Europe/../UTC",
                                  "Europe/Amsterdam\n", "x" * 65, "Europe/Amsterdam;", "CET-1CEST,M3.5.0,M10.5.0/3"])
def test_a_name_that_is_no_zone_is_refused_before_any_file_is_read(name):
    """Misspelt names, paths and POSIX TZ strings are not zones: ValueError naming the value, `is_zone` False."""
    with pytest.raises(ValueError, match="not a time zone"):
        zones.zone(name)
    assert not zones.is_zone(name)


@pytest.mark.parametrize("name", ["UTC", AMSTERDAM, "America/Argentina/Buenos_Aires", "Etc/GMT+1",
                                  "America/Port-au-Prince"])
def test_iana_names_are_zones(name):
    assert zones.is_zone(name)


# -- web/present: the filters ------------------------------------------------------------------------------------
def test_times_are_written_in_the_zone_of_the_page_and_in_utc_outside_one():
    """`local` writes a stored time in the zone `in_zone` set, UTC outside any; the zone is undone after."""
    stored = "2026-03-29T01:15:00.000Z"
    assert present.local(stored) == "2026-03-29 01:15:00 UTC"
    with present.in_zone(present.DisplayZone(AMSTERDAM, display.USER)):
        assert present.local(stored) == "2026-03-29 03:15:00 CEST"
        assert present.display_zone().name == AMSTERDAM
        with present.in_zone(present.DisplayZone("Asia/Tokyo", display.BROWSER)):
            assert present.local(stored) == "2026-03-29 10:15:00 JST"
        assert present.local(stored) == "2026-03-29 03:15:00 CEST"
    assert present.local(stored) == "2026-03-29 01:15:00 UTC"
    assert not present.zone_is_set()


def test_the_tooltip_of_a_relative_time_gives_the_local_and_the_utc_time():
    """`exact`: the local time and the stored UTC time; just UTC when the page is in UTC."""
    stored = "2026-10-25T01:30:00.250Z"
    assert present.exact(stored) == "2026-10-25 01:30:00.250 UTC"
    with present.in_zone(present.DisplayZone(AMSTERDAM, display.USER)):
        assert present.exact(stored) == "2026-10-25 02:30:00 CET · 2026-10-25 01:30:00.250 UTC"
        assert present.utc(stored) == "2026-10-25 01:30:00.250 UTC"


def test_text_that_is_no_time_is_shown_as_it_is():
    """A row written by another tool may hold anything: it is shown as text, never a crash."""
    with present.in_zone(present.DisplayZone(AMSTERDAM, display.USER)):
        assert present.local("yesterday-ish") == "yesterday-ish"
        assert present.local(None) == "–"
        assert present.exact(None) == ""
        assert present.utc("nonsense") == ""
        assert present.ago(None) == "–"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "just now"), (44, "just now"), (-44, "just now"),
    (20 * 60, "20 min ago"), (-20 * 60, "in 20 min"),
    (3 * 3600, "3 h ago"), (-3 * 3600, "in 3 h"),
    (5 * 86400, "5 days ago"), (-5 * 86400, "in 5 days"),
])
def test_ago_reads_both_ways(seconds, text):
    """Relative times read "3 h ago" and, for a time ahead (a next scheduled run), "in 3 h"; under 45 s either
    way is "just now" (another host's clock may be a little ahead)."""
    now = ms("2026-03-29T12:00:00.000Z")
    assert present.ago(now - seconds * 1000, now) == text


def test_relative_times_do_not_change_with_the_zone_across_a_dst_change():
    """3 hours before 03:00 CEST on the spring-forward day (23:00 CET the day before: the wall clocks differ by
    4 h) is 3 h ago."""
    now = ms("2026-03-29T01:00:00.000Z")
    with present.in_zone(present.DisplayZone(AMSTERDAM, display.USER)):
        assert present.ago(now - 3 * 3_600_000, now) == "3 h ago"


def test_schedule_lines_are_in_the_display_zone_with_utc_for_the_tooltip():
    """The card's "Overdue since" and "Next:" are in the reader's zone, not the pipeline's, UTC beside them."""
    now = ms("2026-10-25T09:00:00.000Z")
    status = PipelineStatus("nikki", True, None, (), ms("2026-10-25T05:15:00.000Z"), [],
                            ms("2026-10-26T05:15:00.000Z"))
    with present.in_zone(present.DisplayZone("America/New_York", display.USER)):
        lines = present.schedule(status, now)
    assert lines["overdue_text"] == "Overdue since today 01:15 EDT"
    assert lines["next_text"] == "Next: tomorrow 01:15 EDT"
    assert (lines["overdue_utc"], lines["next_utc"]) == ("2026-10-25 05:15:00.000 UTC", "2026-10-26 05:15:00.000 UTC")


def test_a_chart_drawn_in_one_zone_is_not_served_from_memory_in_another():
    """The bars' titles hold each run's start in the page's zone: the memo of finished runs' bars keeps zones
    apart."""
    runs = [{"id": 7, "outcome": "success", "duration_ms": 1000, "started_at": "2026-03-29T01:15:00.000Z"}]
    with present.in_zone(present.DisplayZone(AMSTERDAM, display.USER)):
        amsterdam = str(present.chart(runs, 100.0, 20.0, 0))
    with present.in_zone(present.DisplayZone("Asia/Tokyo", display.USER)):
        tokyo = str(present.chart(runs, 100.0, 20.0, 0))
    assert "2026-03-29 03:15:00 CEST" in amsterdam and "2026-03-29 10:15:00 JST" in tokyo


# -- settings/display ----------------------------------------------------------------------------------------
def config(text: str, tmp_path, name: str = "runtracker.toml") -> configfile.PipelineConfig:
    path = tmp_path / name
    path.write_text(text)
    return configfile.load(str(path), schedules=False)


def test_the_configured_zone_is_the_environment_then_dashboard_then_defaults_then_utc(tmp_path, monkeypatch):
    """$RUNTRACKER_TIMEZONE wins over the config file; [dashboard] timezone over [defaults] timezone (the
    schedules' zone); without any, UTC. Each says where it came from."""
    both = config('[defaults]\ntimezone = "Asia/Tokyo"\n\n[dashboard]\ntimezone = "Europe/Amsterdam"\n', tmp_path)
    found = display.configured(both)
    assert (found.value, found.source, found.where) == (AMSTERDAM, "config file", f"{both.path}:5")
    only_defaults = config('[defaults]\ntimezone = "Asia/Tokyo"\n', tmp_path, "b.toml")
    found = display.configured(only_defaults)
    assert (found.value, found.source, found.where) == ("Asia/Tokyo", "config file", f"{only_defaults.path}:2")
    assert (display.configured(None).value, display.configured(None).source) == ("UTC", "default")
    monkeypatch.setenv(display.TIMEZONE_ENV, "America/New_York")
    found = display.configured(both)
    assert (found.value, found.source, found.where) == ("America/New_York", "environment", display.TIMEZONE_ENV)


def test_a_wrong_configured_zone_is_a_warning_and_utc_and_the_file_stays_usable(tmp_path):
    """A misspelt [dashboard] timezone does not make the config file unusable (runtracker exec must still run
    the pipeline): it is a warning naming the file and line, and UTC is used."""
    loaded = config('[dashboard]\ntimezone = "Europe/Amsterdan"\n\n[pipelines.nikki]\ncommand = "true"\n', tmp_path)
    assert loaded.pipelines["nikki"].command == ("/bin/sh", "-c", "true")
    found = display.configured(loaded)
    assert found.value == "UTC"
    assert found.warnings == (f"runtracker: {loaded.path}:2: [dashboard] timezone='Europe/Amsterdan' (config "
                              "file) is not a time zone (use a name such as Europe/Amsterdam or UTC); using UTC "
                              "(times are shown in UTC)",)
    assert display.configured(config("[dashboard]\ntimezone = 3\n", tmp_path, "c.toml")).value == "UTC"


def test_an_unknown_key_in_the_dashboard_table_is_an_error_as_everywhere_in_the_file(tmp_path):
    with pytest.raises(configfile.ConfigError, match=r"\[dashboard\] time_zone: unknown key; allowed: timezone"):
        config('[dashboard]\ntime_zone = "UTC"\n', tmp_path)


def test_a_wrong_environment_zone_is_a_warning_and_utc(monkeypatch):
    monkeypatch.setenv(display.TIMEZONE_ENV, "Mars/Olympus_Mons")
    found = display.configured(None)
    assert (found.value, found.source) == ("UTC", "environment")
    assert found.warnings == ("runtracker: RUNTRACKER_TIMEZONE='Mars/Olympus_Mons' (environment variable) is not a "
                              "time zone (use a name such as Europe/Amsterdam or UTC); using UTC (times are shown "
                              "in UTC)",)


def test_commands_use_utc_or_their_option_else_the_configured_zone_else_tz(tmp_path, monkeypatch):
    """For `runs` and `show`: --utc, --timezone, the configured zone, then the machine's $TZ, then UTC."""
    monkeypatch.setenv("TZ", ":Asia/Tokyo")
    assert (display.for_commands(None).value, display.for_commands(None).where) == ("Asia/Tokyo", "TZ")
    configured = config('[dashboard]\ntimezone = "Europe/Amsterdam"\n', tmp_path)
    assert display.for_commands(configured).value == AMSTERDAM
    assert display.for_commands(configured, utc=True).value == "UTC"
    assert display.for_commands(configured, zone="America/New_York").value == "America/New_York"
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")  # a POSIX rule, not a zone name: warned, UTC
    found = display.for_commands(None)
    assert found.value == "UTC" and found.warnings and "TZ='CET-1CEST,M3.5.0,M10.5.0/3'" in found.warnings[0]
    monkeypatch.delenv("TZ")
    assert (display.for_commands(None).value, display.for_commands(None).source) == ("UTC", "default")


def test_config_show_rows_name_the_zone_and_where_it_came_from(tmp_path, monkeypatch, caplog):
    """`runtracker config show` has a `timezone` and a `cli_timezone` row, a wrong value's warning in its row."""
    path = tmp_path / "runtracker.toml"
    path.write_text('[dashboard]\ntimezone = "Europe/Amsterdan"\n')
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    with caplog.at_level(logging.WARNING, logger="runtracker"):
        rows = {row["name"]: row for row in effective.describe(None, str(path))}
    assert (rows["timezone"]["value"], rows["timezone"]["source"], rows["timezone"]["where"]) == (
        "UTC", "config file", f"{path}:2")
    assert "is not a time zone" in rows["timezone"]["warnings"][0]
    # The file says something (wrongly): commands do not fall back to $TZ, they use UTC as the dashboard does.
    assert (rows["cli_timezone"]["value"], rows["cli_timezone"]["source"]) == ("UTC", "config file")
    assert caplog.records == []
