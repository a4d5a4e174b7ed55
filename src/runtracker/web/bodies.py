"""Reading a request's body with a size limit, before anything is parsed: the pages' forms (`read_form`) and the
ingest API's JSON (`capped_body`)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import FormData
from starlette.requests import Request

# The forms' bodies are read before anything else is known of the client (login) or at all (the others): capped,
# and urlencoded only (no form has a file, so multipart, which Starlette spools to disk, is refused). The login
# form is a name, a password, a token and a path; the clear-errors form six filters of 200 characters (MAX_TEXT).
LOGIN_FORM_BYTES = 4 * 1024
FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 32
FORM_TYPE = "application/x-www-form-urlencoded"


class BodyRefused(Exception):
    """A request body refused before it is parsed: 413 (too large) or 415 (not a form); the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def capped_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes: by its Content-Length before reading, and as it streams in
    (a chunked body has none)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise BodyRefused(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyRefused(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_form(request: Request, limit: int = FORM_BYTES) -> FormData:
    """A page's form: urlencoded (415 for anything else, multipart included), at most `limit` bytes (413) and
    MAX_FORM_FIELDS fields (413)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type not in ("", FORM_TYPE):
        raise BodyRefused(415, f"a form is sent as {FORM_TYPE}, not {content_type}")
    body = await capped_body(request, limit)
    try:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise BodyRefused(413, f"a form has at most {MAX_FORM_FIELDS} fields") from None
    return FormData([(name, value) for name, value in pairs])
