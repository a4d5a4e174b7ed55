"""The output tail of `runtracker exec` (OutputTail): the last N bytes of the command's output, as clean text."""

from __future__ import annotations

import pytest

from runtracker.base import sanitize
from runtracker.base.tail import OutputTail

EMOJI = "😀".encode()  # four bytes: f0 9f 98 80


@pytest.mark.parametrize("limit, chunks, text", [
    pytest.param(0, [b"abc"], None, id="limit-0-keeps-nothing"),
    pytest.param(-1, [b"abc"], None, id="negative-limit-keeps-nothing"),
    pytest.param(10, [], "", id="no-output"),
    pytest.param(10, [b"abc", b"def"], "abcdef", id="fits"),
    pytest.param(6, [b"abcdef"], "abcdef", id="exactly-the-limit"),
    pytest.param(4, [b"abcdefgh"], "efgh", id="one-chunk-over-the-limit"),
    pytest.param(5, [b"abc", b"def", b"gh"], "defgh", id="trimmed-from-the-front-across-chunks"),
    pytest.param(4, [b"abc", "défé".encode()], "fé", id="cut-inside-a-two-byte-character"),
    pytest.param(4, [EMOJI + b"x"], "x", id="cut-inside-a-four-byte-character"),
    pytest.param(3, [b"ab", "é".encode()], "bé", id="cut-at-a-character-boundary"),
    pytest.param(100, [b"\xa9 stray byte"], "\ufffd stray byte", id="uncut-stray-byte-is-shown-as-it-came"),
    pytest.param(10, [b"ok \xff\xfe"], "ok \ufffd\ufffd", id="invalid-utf8-replaced"),
    pytest.param(10, [b"a\x00b"], "a\ufffdb", id="nul-replaced"),
    pytest.param(12, [b"key=abc\nline two\n"], "line two\n", id="cut-tail-starts-at-the-next-whole-line"),
    pytest.param(8, [b"abc def gh"], "def gh", id="cut-tail-of-one-line-starts-after-its-first-space"),
])
def test_tail_keeps_the_last_bytes_as_clean_text(limit, chunks, text):
    """The last `limit` bytes are kept; as text, a cut character is skipped, invalid UTF-8 and NUL replaced."""
    tail = OutputTail(limit)
    for chunk in chunks:
        tail.add(chunk)
    everything = b"".join(chunks)
    assert tail.total == len(everything)
    assert tail.bytes() == (everything[-limit:] if limit > 0 and everything else b"")
    assert tail.text() == text


def test_a_secret_cut_in_half_where_the_tail_begins_leaves_nothing_of_it():
    """The cut line at the start of a tail is dropped, so no second half of a secret is stored (the key is gone)."""
    secret = "k3y-7f3a9c1b2d"
    output = f"connecting with api_key={secret}\nsynced 180 members\n".encode()
    tail = OutputTail(len(output) - len("connecting with api_key=k3y"))  # the cut falls inside the secret
    tail.add(output)
    stored = sanitize.optional_text(tail.text(), sanitize.TAIL_LIMIT)
    assert stored == "synced 180 members\n"
    assert "7f3a9c" not in stored
