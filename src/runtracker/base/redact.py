"""Secrets out of recorded text: passwords in URLs, `password=` pairs, auth headers, tokens, secret env values.

`redact(text)` replaces each secret it finds with `***` and keeps what says what it was (`https://admin:***@host`,
`password=***`, `Authorization: ***`). `sanitize` calls it for every text it cleans and for the strings of every
JSON document (stats, detail, summary), whose keys that look secret get `***` as their value: every writer goes
through `sanitize`, so nothing unredacted is stored, and the dashboard and the alerts show only what is stored.
The rules, their limits and the settings: docs/redaction.md.

Cost: `redact` runs for every message `record_errors` stores, so it must be cheap for text without secrets.
Python's regular expressions are slow at trying many alternatives at every position of a text (a combined
pattern of these rules costs ~50 µs on an 80-character message), so nothing here scans a text with one:
substring tests (`in`, in C) first decide whether a rule can apply at all — most messages ("member KNVB1004 not
found") stop there — and the rules then look only where their anchor is: after each `=` or `:` for a secret key
(the key read backwards from the separator), after each `://` for user-info, at each known token prefix.

The values of the process's environment variables whose names look secret are collected at the first use and
again at every run's start (`refresh`, called by `lifecycle.open_run`): a pipeline that sets
`os.environ["API_TOKEN"]` before its run has it redacted. Values shorter than `MIN_ENV_VALUE` characters are
not used: `API_KEY=1` would otherwise put `***` in every number.

Whether redaction is on, and the extra patterns, are settings (`RUNTRACKER_REDACT`, `[redact]`): the base layer
imports nothing above it, so the settings tell this module where to read them (`take_settings_from`, which
`runtracker.settings.values` calls when it is imported) and the config file's are applied with `configure`.
The rules are built from them at the first use and kept (`reset` forgets them).
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # `typing` is not imported at run time: see records.py
if TYPE_CHECKING:
    from collections.abc import Callable

MARK = "***"
# Shorter values of secret-looking environment variables are not redacted: they would wreck ordinary text.
MIN_ENV_VALUE = 6
# Environment variables whose values are secrets: `*PASSWORD*`, `*PASSWD*`, `*TOKEN*`, `*SECRET*`,
# `*CREDENTIAL*`, `*_KEY`, `*_PASS`.
_SECRET_NAME = r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|_KEY$|^KEY$|_PASS$"

# A key names a secret when it ends with one of these (`DB_PASSWORD`, `access_token`, `x-api-key`, `"secret"`);
# `tokens=5`, `token_count` and `passed` do not. "pass" and "auth" only as a whole word or after `_`, `-`, `.`.
_KEY_ENDINGS = tuple(
    ["password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "credential", "credentials",
     "authorization", "cookie", "sessionid", "sessid"]
    + [prefix + sep + "key" for prefix in ("api", "access", "secret", "private", "auth", "client", "signing",
                                           "encryption", "master") for sep in ("_", "-")]
    + ["accesskey", "secretkey", "privatekey", "authkey"]  # camelCase keys of JSON: accessKey, privateKey
    + ["session_id", "session-id"]
)
_WORD_KEYS = ("pass", "auth")
# Header names whose whole value is secret (`Authorization: Bearer x` keeps `Authorization: `).
_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token", "api-key")
# Command-line options whose next argument is the secret: `--password hunter2`, curl's `-u user:password`.
_OPTION = r"(?<![^\s\"'])--([\w-]{2,64})[ \t]+(?!-)([^\s\"']+|\"[^\"\n]*\"|'[^'\n]*')"
_CURL_USER = r"(?<![^\s\"'])(-u|--user)[ \t]+([^\s:\"']+):([^\s\"']+)"
# A secret key, spaces, a value without a separator between (`token tok_hunter2`, `password hunter2`): the key
# is read like any other (`_secret_name`), found from these last words of the secret keys; the value is taken
# for a secret only when it holds a digit or one of `_-./+=~` and has 6 characters or more, so `token expired`
# and `password reset for KNVB123` stay as written.
_SPACED_ENDS = ("word ", "wd ", "phrase ", "secret ", "token ", "key ", "credential ", "credentials ", "auth ",
                "authorization ", "pass ", "cookie ", "id ")
_SPACED_VALUE = r"[ \t]+([^\s\"'<>,;()\[\]{}]{5,}[^\s\"'<>,;()\[\]{}.:!?])"

# Read backwards from a separator: spaces, an optional closing quote, the key.
_KEY_BACKWARDS = r"[ \t]*([\"']?)([\w.-]{1,80})"
# A value after a separator: quoted (to its closing quote, or the line's end) or bare (to the next space, quote,
# separator or bracket; an `=` is part of it: base64 ends with them). An auth scheme goes with its credentials.
_VALUE = (r"[ \t]*(?:\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?"
          r"|(?:(?i:bearer|basic|token|digest)[ \t]+)?[^\s&,;\"'<>()\[\]{}]+)")
# After `://`: user, `:`, password (up to the last `@` before the host), `@`.
_USERINFO = r"[^\s/?#@:\"'<>]*:([^\s/?#\"'<>]*)@"
# Well-known token shapes, replaced whole (case matters): GitHub, Slack, AWS key ids, Stripe, GitLab, Google,
# OpenAI, JWTs; a bearer token anywhere; a Slack webhook's path; a private key block.
_SHAPES = (r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
           r"|(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
           r"|glpat-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|sk-[A-Za-z0-9_-]{20,}"
           r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
           r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{8,}|(?<=BEARER )[A-Za-z0-9._~+/=-]{8,}"
           r"|(?<=hooks\.slack\.com/services/)[A-Za-z0-9/]+"
           r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)")


class _Rules:
    """The settings and compiled rules: read at the first use; `configure`, `refresh` and `reset` change them."""

    def __init__(self) -> None:
        self.ready = False
        self.enabled = True
        self.extra: list[re.Pattern[str]] = []
        self.extra_sources: list[str] = []
        self.env_values: tuple[str, ...] = ()
        self.env_needles: tuple[str, ...] = ()  # the env values, also as they appear in JSON text
        self.key_backwards = re.compile(_KEY_BACKWARDS)
        self.value = re.compile(_VALUE)
        self.userinfo = re.compile(_USERINFO)
        self.option = re.compile(_OPTION)
        self.curl_user = re.compile(_CURL_USER)
        self.spaced_value = re.compile(_SPACED_VALUE)
        self.shapes = re.compile(_SHAPES)
        self.secret_env_name = re.compile(_SECRET_NAME, re.IGNORECASE)
        self.aws = re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|Iza)")  # a literal first: `re` looks for the "A"s in C


class _Redaction:
    """This process's redaction: the rules in use (None: built at the next use) and where their settings come
    from (`take_settings_from`; none: on, with no extra pattern)."""

    __slots__ = ("rules", "settings")

    def __init__(self) -> None:
        self.rules: _Rules | None = None
        self.settings: Callable[[], tuple[bool, list[str]]] | None = None


_current = _Redaction()


def redact(text: str) -> str:
    """`text` with every secret found replaced by `***`. Never raises for a str."""
    rules = _current.rules or _load()
    return _applied(rules, text) if rules.enabled else text


def masked(text: str) -> str:
    """`text` with every secret found replaced by `***`, even when redaction is switched off: for showing
    settings (`runtracker config show`), never for what is stored."""
    return _applied(_current.rules or _load(), text)


def _applied(rules: _Rules, text: str) -> str:
    # The gates, inlined: each rule needs one of these characters (see `_shape_possible`); most messages have
    # none, or pay for a few more `in` tests.
    low = text.lower()
    # Whether a secret key can be here at all (`_key_possible`, inlined: this runs for every message).
    keyed = ("pass" in low or "token" in low or "secret" in low or "auth" in low or "_key" in low or "-key" in low
             or "apikey" in low or "skey" in low or "ekey" in low or "cookie" in low or "pwd" in low or "sess" in low
             or "cred" in low)
    if keyed:
        spaced = _spaced(rules, text, low)
        if spaced is not text:
            text, low = spaced, spaced.lower()
    if ("=" in text or ":" in text) and (keyed or "://" in text):
        text = _keyed(rules, text, low, keyed)
    if "-" in text or "_" in text or "A" in text or "eyJ" in text or "earer " in text or "EARER " in text:
        text = _marked(rules, text)
    if rules.env_values:
        for value in rules.env_values:
            if value in text:
                text = text.replace(value, MARK)
    if rules.extra:
        for pattern in rules.extra:
            text = pattern.sub(MARK, text)
    return text


def shown(value: object) -> str:
    """A value from a pipeline as a warning shows it (`short_repr`), redacted: a log line is shown too."""
    return redact(short_repr(value))


def short_repr(value: object) -> str:
    """A value as a warning shows it: its repr, cut short. Not redacted (`shown` is)."""
    try:
        text = repr(value)
    except Exception:  # a __repr__ that raises must not cost the warning
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def might_hold_secret(json_text: str) -> bool:
    """Whether a JSON document's text may hold a secret key, or a string `redact` would change. A False is
    certain; a True sends the document through the slow path (each string redacted, each key looked at).

    Not `redact(json_text) != json_text`: escaping hides some secrets from the rules (a string holding
    `{"password": "x"}` is `{\\"password\\": ...` in the document). The same hints as `redact`'s are looked
    for instead, which escaping leaves alone; env values are looked for as JSON escapes them too."""
    rules = _current.rules or _load()
    if not rules.enabled:
        return False
    if rules.extra:
        return True  # an extra pattern may match a string and not its escaped form, or the other way round
    if ("=" in json_text or ":" in json_text) and _key_possible(json_text.lower()):
        return True
    if ("://" in json_text and "@" in json_text) or "--" in json_text or "-u " in json_text:
        return True
    return _shape_possible(rules, json_text) or any(needle in json_text for needle in rules.env_needles)


def secret_key(key: str) -> bool:
    """Whether a key (`password`, `api_key`, `Authorization`, `db.password`) names a secret value."""
    rules = _current.rules or _load()
    return rules.enabled and _secret_name(key.lower())


def _secret_name(low: str) -> bool:
    """`secret_key` of a lower-cased name."""
    if low.endswith(_KEY_ENDINGS):
        return True
    if not low.endswith(_WORD_KEYS):
        return False
    return len(low) == 4 or low[-5] in "_-."  # both words have 4 letters


def enabled() -> bool:
    return (_current.rules or _load()).enabled


def patterns() -> list[str]:
    """The extra patterns in use (the environment's and the config file's)."""
    return list((_current.rules or _load()).extra_sources)


def configure(enabled: bool | None = None, patterns: list[str] | None = None) -> None:
    """Switch redaction on or off, and add extra patterns (already checked:
    `settings.checks.redact_pattern_problem`) to those of the settings' environment; None leaves a setting as it
    is. The config file's [redact] comes this way (`settings.configfile.load`)."""
    rules = _current.rules or _load()
    if enabled is not None:
        rules.enabled = enabled
    if patterns is not None:
        given = _current.settings()[1] if _current.settings is not None else []
        rules.extra_sources = list(dict.fromkeys([*given, *patterns]))
        rules.extra = [re.compile(p) for p in rules.extra_sources]


def take_settings_from(settings: Callable[[], tuple[bool, list[str]]]) -> None:
    """Where the rules' settings come from: a function giving (enabled, extra patterns), called at the first
    use after every `reset` (the settings layer's, which warns about wrong values)."""
    _current.settings = settings
    _current.rules = None


def refresh() -> None:
    """Collect the secret-looking environment variables' values again (every run's start)."""
    _collect_env(_current.rules or _load())


def reset() -> None:
    """Forget the rules: the next use builds them from the settings again (tests)."""
    _current.rules = None


# -- the rules ------------------------------------------------------------------------------------------------
def _load() -> _Rules:
    rules = _Rules()
    if _current.settings is not None:
        rules.enabled, rules.extra_sources = _current.settings()
    rules.extra = [re.compile(p) for p in rules.extra_sources]
    _collect_env(rules)
    _current.rules = rules
    return rules


def _collect_env(rules: _Rules) -> None:
    import json  # here: only once per run

    secret_name = rules.secret_env_name.search
    values = {value for name, value in os.environ.items() if len(value) >= MIN_ENV_VALUE and secret_name(name)}
    rules.env_values = tuple(sorted(values, key=len, reverse=True))  # a value holding another goes whole first
    rules.env_needles = tuple({*values, *(json.dumps(v, ensure_ascii=False)[1:-1] for v in values)})


def _keyed(rules: _Rules, text: str, low: str, keyed: bool) -> str:
    """`key=value`, `"key": "value"`, `Header: value` and URL user-info, found from their separators. `low` is
    `text` lower-cased, `keyed` whether a secret key can be in it (`_key_possible`)."""
    if "hooks.slack.com/services/" in text:  # a webhook's secret is its path (before positions are taken)
        text = rules.shapes.sub(MARK, text)
        low = text.lower()
    url = "://" in text and "@" in text
    if not (url or keyed):
        return text
    if len(low) != len(text):  # a few characters lower-case to two ("İ"): keep the positions
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    cuts: list[tuple[int, int, str]] = []  # (start, end, replacement), in order
    if url:
        at = text.find("://")
        while at >= 0:
            match = rules.userinfo.match(text, at + 3)
            if match is not None:
                cuts.append((match.start(1), match.end(1), MARK))
            at = text.find("://", at + 3)
    if keyed:
        cuts.extend(_pairs(rules, text, low))
    if not cuts:
        return text
    cuts.sort()
    parts, done = [], 0
    for start, end, replacement in cuts:
        if start < done:  # inside a secret already cut (a URL in a password's value)
            continue
        parts += [text[done:start], replacement]
        done = end
    parts.append(text[done:])
    return "".join(parts)


def _key_possible(low: str) -> bool:
    """Whether a secret key can be in this lower-cased text: it needs one of these words. Every `_KEY_ENDINGS`
    and `_WORD_KEYS` entry holds one."""
    return ("pass" in low or "token" in low or "secret" in low or "auth" in low or "_key" in low or "-key" in low
            or "apikey" in low or "skey" in low or "ekey" in low or "cookie" in low or "pwd" in low or "sess" in low
            or "cred" in low)


def _pairs(rules: _Rules, text: str, low: str) -> list[tuple[int, int, str]]:
    cuts = []
    backwards = low[::-1]
    n = len(text)
    for at in _positions(text, "=") + _positions(text, ":"):
        if text.startswith("//", at + 1):
            continue  # a URL's scheme: its user-info is `_keyed`'s
        key = rules.key_backwards.match(backwards, n - at)
        if key is None:
            continue
        name = key.group(2)[::-1]
        if not _secret_name(name):  # lower-cased already
            continue
        quoted = bool(key.group(1))
        if text[at] == ":" and not quoted and name in _HEADERS:
            end = text.find("\n", at)
            end = n if end < 0 else end
            begins = n - key.end()  # a header inside quotes (`curl -H 'Cookie: x' URL`) ends at its quote
            if begins > 0 and text[begins - 1] in "\"'":
                closing = text.find(text[begins - 1], at, end)
                end = end if closing < 0 else closing
            start = at + 1
            while start < end and text[start] in " \t":
                start += 1
            if start < end and text[start] not in "\"'":
                cuts.append((start, end if text[end - 1] != "\r" else end - 1, MARK))
                continue
        value = rules.value.match(text, at + 1)
        if value is None or value.end() == at + 1:
            continue
        start, end = value.start(), value.end()
        while start < end and text[start] in " \t":
            start += 1
        if text[start] in "\"'":  # keep the quotes: "***"
            quote = text[start]
            start += 1
            if end > start and text[end - 1] == quote and text[end - 2] != "\\":
                end -= 1
        cuts.append((start, end, MARK))
    return cuts


def _spaced(rules: _Rules, text: str, low: str) -> str:
    """`token tok_hunter2`: a secret key and its value with only spaces between (see `_SPACED_ENDS`); `low` is
    `text` lower-cased. Returns `text` itself when it has none."""
    if "\t" in low:
        low = low.replace("\t", " ")  # the same length: positions in it are positions in `text`
    if len(low) != len(text):
        return text  # a character that lower-cases to two: the `=`/`:` rules still apply
    backwards = ""
    n = len(text)
    cuts = []
    for end in _SPACED_ENDS:
        at = low.find(end)
        while at >= 0:
            backwards = backwards or low[::-1]
            space = at + len(end) - 1
            key = rules.key_backwards.match(backwards, n - space)
            value = rules.spaced_value.match(text, space) if key is not None else None
            if key is not None and value is not None and _secret_name(key.group(2)[::-1]):
                found = value.group(1)
                if found != MARK and not found.isalpha():
                    cuts.append((value.start(1), value.end(1)))
            at = low.find(end, at + 1)
    if not cuts:
        return text
    parts, done = [], 0
    for start, stop in sorted(cuts):
        if start < done:  # found from two of the words
            continue
        parts += [text[done:start], MARK]
        done = stop
    parts.append(text[done:])
    return "".join(parts)


def _positions(text: str, char: str) -> list[int]:
    """Where `char` is in `text` (str.find in a loop: cheaper than a regex's match objects)."""
    found = []
    at = text.find(char)
    while at >= 0:
        found.append(at)
        at = text.find(char, at + 1)
    return found


def _marked(rules: _Rules, text: str) -> str:
    """Command-line options and token shapes, in text that has one of the characters they need. The shapes'
    prefixes are looked for by the character that gave the text away, so a message pays for a few only."""
    if "--" in text or "-u " in text:
        text = _options(rules, text)
    return rules.shapes.sub(MARK, text) if _shape_possible(rules, text) else text


def _shape_possible(rules: _Rules, text: str) -> bool:
    shape = "-" in text and ("xox" in text or "sk-" in text or "glpat-" in text or "-----BEGIN" in text)
    if not shape and "_" in text:
        shape = "gh" in text or "_pat_" in text or "k_live_" in text or "k_test_" in text
    if not shape and "A" in text:
        shape = rules.aws.search(text) is not None
    if not shape:
        shape = "eyJ" in text or "Bearer " in text or "BEARER " in text
    return shape


def _options(rules: _Rules, text: str) -> str:
    """Command lines: `--password hunter2`, `--token=...` (a pair, above), curl's `-u user:password`."""
    def option(match: re.Match[str]) -> str:
        if not _secret_name(match.group(1).lower()):
            return match.group()
        return match.group()[: match.start(2) - match.start()] + MARK

    text = rules.option.sub(option, text)
    return rules.curl_user.sub(lambda m: f"{m.group(1)} {m.group(2)}:{MARK}", text)
