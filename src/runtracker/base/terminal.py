"""Text that came from pipelines, made safe to print to a terminal.

Names, messages, stacks and output tails are stored as the pipeline gave them, control characters included
(`sanitize` only removes what a database rejects). Printed raw, `ESC [2J` clears the operator's screen,
`ESC ]0;...BEL` sets the window title, and a carriage return or a newline in a pipeline name forges a row of
`runtracker runs`. `safe` shows every such character escaped, the way Python writes it (`\\x1b`, `\\r`,
`\\u202e`), so what is printed is what was stored, visibly. `--json` output needs none of this: `json.dumps`
already escapes control characters, and loading it gives back the stored text exactly.
"""

from __future__ import annotations

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(code: int) -> str:
    char = chr(code)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


# Escaped: C0 controls, DEL, C1 controls (0x9b is a one-byte CSI on some terminals), and the Unicode line
# separators and bidirectional overrides that reorder or break what the operator sees.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
             *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ONE_LINE = {code: _escape(code) for code in _CONTROLS}
# Stacks and output tails keep their line breaks and tabs; a carriage return is escaped even there, since it
# lets a line overwrite the one before it.
_MULTILINE = {code: text for code, text in _ONE_LINE.items() if chr(code) not in "\n\t"}


def safe(value: object, *, multiline: bool = False) -> str:
    """`value` as text that cannot control a terminal: control characters are shown escaped. With
    `multiline`, newlines and tabs stay as they are (stacks, output tails); without it (names, messages, table
    cells) they are escaped too, so one value is always one line."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case, checked in C: nothing to escape
        return text
    return text.translate(_MULTILINE if multiline else _ONE_LINE)
