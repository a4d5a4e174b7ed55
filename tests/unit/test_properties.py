"""Property-based tests (hypothesis) over the public API: arbitrary values for every argument, arbitrary call orders,
threads. Whatever comes in: no call raises (and the never-raise guard swallows nothing: see conftest's loud
guard), no run stays `running` after its `end_run`, nothing stored is longer than sanitize's limits, and a
planted secret is never stored.

`make test` runs the bounded profile (tests/conftest.py); `HYPOTHESIS_PROFILE=long` runs many more examples.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule  # noqa: E402

from runtracker import RunTracker, testing, track  # noqa: E402
from runtracker.base import redact, sanitize  # noqa: E402
from runtracker.core import logring  # noqa: E402

# -- what comes in ----------------------------------------------------------------------------------------------
# Secrets look like this, so that a piece of text can be searched for them; each is planted in one of the shapes
# redaction promises to find, inside arbitrary text.
SECRETS = st.text(alphabet="0123456789abcdef", min_size=6, max_size=10).map(lambda h: f"hunter2-{h}")
PLANTINGS = (
    "https://admin:{}@api.example.org/v1/members",
    "postgresql://sync:{}@db.internal/dashboard",
    "password={}",
    "GET /v1?page=2&api_key={}&x=1",
    "Authorization: Bearer {}",
    "{{'Authorization': 'Bearer {}'}}",
    '{{"password": "{}", "user": "admin"}}',
    "    token = '{}'",
    "Cookie: sid={}; theme=dark",
    " --password {}",  # an option is a word of its own
)


@st.composite
def planted(draw: st.DrawFn) -> tuple[str, str]:
    """(text with a secret in it, the secret)."""
    secret = draw(SECRETS)
    shape = draw(st.sampled_from(PLANTINGS))
    return draw(st.text(max_size=40)) + shape.format(secret) + draw(st.text(max_size=40)), secret


class Unprintable:
    """A value whose str() and repr() raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class BadException(Exception):
    """An exception whose str() raises."""

    def __str__(self) -> str:
        raise ValueError("no str")


def _huge(piece: str, times: int) -> str:
    return piece * times


def _cyclic(items: list[object]) -> list[object]:
    items.append(items)
    return items


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), st.binary(max_size=30),
    st.builds(_huge, st.text(min_size=1, max_size=3), st.integers(1000, 30_000)),
    st.sampled_from(["", "\x00", "\ud800", "é" * 3, "\n\r\t", "%s %d {}"]),
    st.builds(Unprintable),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4),
                            st.builds(_cyclic, st.lists(inner, max_size=2)), st.frozensets(st.integers(), max_size=3)),
    max_leaves=12,
)
# A value for text that may be stored: anything, or text with a planted secret.
TEXTS = st.one_of(VALUES, planted())
ERROR_ITEMS = st.one_of(
    st.fixed_dictionaries({"member_identifier": SCALARS, "message": TEXTS}, optional={"stack": TEXTS}),
    TEXTS, st.builds(RuntimeError, st.text(max_size=20)), st.builds(BadException),
)


def _secrets_of(*values: object) -> list[str]:
    """The planted secrets among drawn values."""
    return [v[1] for v in values if isinstance(v, tuple) and len(v) == 2 and str(v[1]).startswith("hunter2-")]


def _text_of(value: object) -> object:
    """A planted value as the text it carries; anything else as it is."""
    if isinstance(value, tuple) and len(value) == 2 and str(value[1]).startswith("hunter2-"):
        return value[0]
    return value


# -- what must hold ------------------------------------------------------------------------------------------------
LIMITS = {
    "runs": {"pipeline": sanitize.NAME_LIMIT, "club_slug": sanitize.NAME_LIMIT, "summary_json": sanitize.JSON_LIMIT * 4,
             "output_tail": sanitize.TAIL_LIMIT},
    "run_steps": {"step_name": sanitize.NAME_LIMIT, "detail_json": sanitize.JSON_LIMIT * 4},
    "run_errors": {"step_name": sanitize.NAME_LIMIT, "member_identifier": sanitize.NAME_LIMIT,
                   "error_message": sanitize.MESSAGE_LIMIT,
                   # a crash row's stack is followed by the process's last log lines, each part capped on its own
                   "error_stack": sanitize.STACK_LIMIT + logring.TEXT_LIMIT + 2},
}


# The examples of the tests that write a database (each example has a database of its own): fewer than the
# profile's, which the tests without one use in full.
WITH_DATABASE = max(10, settings.default.max_examples // 2)
STATEFUL = max(8, settings.default.max_examples * 3 // 8)


def _rows(url: str, sql: str) -> list[dict[str, object]]:
    """Rows read with plain sqlite3: cheap enough to run after every call of a state machine."""
    path = url.removeprefix("sqlite:///")
    if not os.path.exists(path):
        return []  # no run started yet: nothing was created
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # created, not yet migrated
        raise
    finally:
        conn.close()


def check_database(url: str, secrets: list[str], ended: set[int]) -> None:
    """Every text within its limit, every JSON column JSON, no planted secret anywhere, no ended run running."""
    stored = []
    for table, limits in LIMITS.items():
        for row in _rows(url, f"SELECT * FROM {table}"):
            for column, limit in limits.items():
                value = row.get(column)
                assert value is None or len(value) <= limit, (table, column, len(value))
            for column in ("summary_json", "detail_json"):
                if row.get(column) is not None:
                    json.loads(row[column])
            stored.append(json.dumps(row, default=str, ensure_ascii=False))
    everything = "\n".join(stored)
    for secret in secrets:
        assert secret not in everything, f"planted secret {secret} was stored"
    running = [r["id"] for r in _rows(url, "SELECT id, outcome FROM runs") if r["id"] in ended
               and r["outcome"] == "running"]
    assert running == []


# -- redaction and sanitising on their own --------------------------------------------------------------------------
@given(planted())
def test_a_planted_secret_never_survives_redaction(case):
    """Whatever text surrounds it, a secret in a URL, pair, header, JSON or locals line is redacted."""
    text, secret = case
    assert secret not in redact.redact(text)
    assert secret not in sanitize.text(text, sanitize.MESSAGE_LIMIT)


@given(st.text(), st.integers(min_value=20, max_value=5000))
def test_text_never_raises_and_stays_within_its_limit(text, limit):
    """sanitize.text of any text: at most `limit` characters, encodable as UTF-8, no NUL."""
    out = sanitize.text(text, limit)
    assert len(out) <= limit
    out.encode("utf-8")
    assert "\x00" not in out


@given(VALUES, SECRETS)
def test_to_json_of_anything_is_json_within_the_limit_without_the_secret(value, secret):
    """Stats of any shape (cycles, huge strings, unprintable objects) become JSON; a secret key's value never
    survives."""
    out = sanitize.to_json({"stats": value, "password": secret, "nested": [{"api_key": secret}]})
    assert out is not None and len(out) <= sanitize.JSON_LIMIT * 4
    assert secret not in out
    json.loads(out)


# -- the public API with arbitrary arguments --------------------------------------------------------------------------
@settings(max_examples=WITH_DATABASE)
@given(st.lists(st.tuples(st.sampled_from(["start_step", "end_step", "record_error", "record_errors"]),
                          st.lists(TEXTS, min_size=6, max_size=6)), max_size=8),
       VALUES, TEXTS)
def test_every_public_method_takes_any_arguments(calls, outcome, stats):
    """Any value for any argument, in a run: no call raises and the run ends, within the limits."""
    url, folder = _database()
    try:
        tracker = RunTracker("nikki", db=url)
        tracker.start_run()
        secrets = _secrets_of(stats)
        for method, args in calls:
            plain = [_text_of(a) for a in args]
            if method == "start_step":
                secrets += _secrets_of(args[0])
                tracker.start_step(plain[0])
            elif method == "end_step":
                secrets += _secrets_of(args[5])
                tracker.end_step(plain[0], plain[1], plain[2], plain[3], plain[4], 0, plain[5])  # type: ignore[arg-type]
            elif method == "record_error":
                secrets += _secrets_of(args[0], args[3], args[4])
                tracker.record_error(plain[0], plain[1], plain[2] if not _secrets_of(args[2]) else None, plain[3],
                                     plain[4])
            else:
                secrets += _secrets_of(args[0], args[2])
                tracker.record_errors(plain[0], plain[1], plain[2])  # type: ignore[arg-type]
        run_id = tracker.run_id
        tracker.end_run(outcome, _text_of(stats))
        tracker.close()
        check_database(url, secrets, {run_id} if run_id is not None else set())
    finally:
        testing.reset()
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=WITH_DATABASE)
@given(st.lists(ERROR_ITEMS, max_size=6))
def test_record_errors_takes_lists_of_anything(items):
    """record_errors of dicts, strings, exceptions (str() raising too) and planted secrets: one row per item."""
    url, folder = _database()
    try:
        tracker = RunTracker("nikki", db=url)
        tracker.start_run()
        secrets = [s for item in items if isinstance(item, dict) for s in _secrets_of(*item.values())]
        secrets += _secrets_of(*items)
        plain = [{k: _text_of(v) for k, v in i.items()} if isinstance(i, dict) else _text_of(i) for i in items]
        tracker.record_errors("sync", None, plain)
        run_id = tracker.run_id
        tracker.end_run("partial")
        assert len(_rows(url, f"SELECT id FROM run_errors WHERE run_id = {run_id}")) == len(items)
        check_database(url, secrets, {run_id})
    finally:
        testing.reset()
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=WITH_DATABASE)
@given(TEXTS, TEXTS, st.booleans())
def test_context_managers_and_the_decorator_record_and_reraise(name, message, fail):
    """`with tracker.run()`, `with run.step()` and `@track` with any step name and error: the user's exception
    comes out unchanged, the run is never left running, and no planted secret is stored."""
    url, folder = _database()
    try:
        secrets = _secrets_of(name, message)

        @track("nikki", db=url)
        def pipeline() -> None:
            tracker = RunTracker("nikki", db=url)
            with tracker.run() as run, run.step(_text_of(name)) as step:
                step.error(_text_of(message))
                if fail:
                    raise BadException()

        if fail:
            with pytest.raises(BadException):
                pipeline()
        else:
            pipeline()
        check_database(url, secrets, {int(r["id"]) for r in _rows(url, "SELECT id FROM runs")})  # type: ignore
    finally:
        testing.reset()
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=WITH_DATABASE)
@given(st.lists(st.lists(TEXTS, min_size=1, max_size=6), min_size=2, max_size=4))
def test_threads_hammering_one_tracker(messages_per_thread):
    """A few threads record steps and errors on one tracker at once: every call returns, every error row is
    stored, and the run ends."""
    url, folder = _database()
    try:
        tracker = RunTracker("nikki", db=url)
        tracker.start_run()
        secrets = [s for messages in messages_per_thread for s in _secrets_of(*messages)]
        problems: list[BaseException] = []

        def work(messages: list[object]) -> None:
            try:
                for message in messages:
                    step = tracker.start_step("sync")
                    tracker.record_error(step_id=step, error_message=_text_of(message))
                    tracker.end_step(step, "partial", failed=1)
            except BaseException as exc:  # a raise from a tracker call is the failure this test looks for
                problems.append(exc)

        threads = [threading.Thread(target=work, args=(m,)) for m in messages_per_thread]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        run_id = tracker.run_id
        tracker.end_run("partial")
        assert problems == []
        errors = _rows(url, f"SELECT id FROM run_errors WHERE run_id = {run_id}")
        assert len(errors) == sum(len(m) for m in messages_per_thread)
        check_database(url, secrets, {run_id})
    finally:
        testing.reset()
        shutil.rmtree(folder, ignore_errors=True)


def _database() -> tuple[str, str]:
    folder = tempfile.mkdtemp(prefix="runtracker-props-")
    return f"sqlite:///{folder}/dashboard.sqlite", folder


# -- arbitrary call orders -----------------------------------------------------------------------------------------
class CallOrders(RuleBasedStateMachine):
    """Any order of the seed's calls: end before start, double end, steps after end_run, errors on unknown or
    ended steps, start_run twice. After every call the database holds only what may be held."""

    steps = Bundle("steps")

    def __init__(self) -> None:
        super().__init__()
        testing.reset()
        self.url, self.folder = _database()
        self.tracker = RunTracker("nikki", db=self.url)
        self.secrets: list[str] = []
        self.ended: set[int] = set()

    @rule()
    def start_run(self) -> None:
        self.tracker.start_run()

    @rule(target=steps, name=TEXTS)
    def start_step(self, name: object) -> int | None:
        self.secrets += _secrets_of(name)
        return self.tracker.start_step(_text_of(name))

    @rule(step=st.one_of(steps, st.integers(-5, 10_000), st.none()), outcome=VALUES, created=VALUES, detail=TEXTS)
    def end_step(self, step: object, outcome: object, created: object, detail: object) -> None:
        self.secrets += _secrets_of(detail)
        self.tracker.end_step(step, outcome, created, detail=_text_of(detail))  # type: ignore[arg-type]

    @rule(step=st.one_of(steps, st.integers(-5, 10_000), st.none()), step_name=TEXTS, member=SCALARS,
          message=TEXTS, stack=TEXTS)
    def record_error(self, step: object, step_name: object, member: object, message: object, stack: object) -> None:
        self.secrets += _secrets_of(step_name, message, stack)
        self.tracker.record_error(_text_of(step_name), step, member, _text_of(message),  # type: ignore[arg-type]
                                  _text_of(stack))

    @rule(step=st.one_of(steps, st.none()), items=st.lists(ERROR_ITEMS, max_size=4))
    def record_errors(self, step: object, items: list[object]) -> None:
        self.secrets += [s for i in items if isinstance(i, dict) for s in _secrets_of(*i.values())]
        self.secrets += _secrets_of(*items)
        plain = [{k: _text_of(v) for k, v in i.items()} if isinstance(i, dict) else _text_of(i) for i in items]
        self.tracker.record_errors("sync", step, plain)  # type: ignore[arg-type]

    @rule(outcome=VALUES, stats=TEXTS)
    def end_run(self, outcome: object, stats: object) -> None:
        self.secrets += _secrets_of(stats)
        run_id = self.tracker.run_id  # the open run's (or, with none open, the last one's: ended already)
        self.tracker.end_run(outcome, _text_of(stats))
        if run_id is not None:
            self.ended.add(run_id)

    @rule()
    def close(self) -> None:
        self.tracker.close()

    @invariant()
    def the_database_holds_only_what_it_may(self) -> None:
        check_database(self.url, self.secrets, self.ended)

    def teardown(self) -> None:
        testing.reset()
        shutil.rmtree(self.folder, ignore_errors=True)


CallOrders.TestCase.settings = settings(max_examples=STATEFUL)
TestCallOrders = CallOrders.TestCase
