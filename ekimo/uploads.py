"""Receiving a request body within a limit: an uploaded file (the multipart body streamed to a
spooled file, bounded by MAX_UPLOAD_MB, with the form's few small text fields beside it) or a
whole body in memory. A body over the limit is refused with a 413 that every client can read.
Knows HTTP, not what the body holds."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any

from litestar import Request
from litestar.exceptions import HTTPException
from python_multipart.multipart import MultipartParser, parse_options_header

from ekimo.container import Container
from ekimo.errors import InvalidInput, Problem

SPOOL_IN_MEMORY = 4 * 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024
MIB = 1024 * 1024

# A refused body is read and dropped up to twice the limit (at least the limit + 64 MiB) for 30 s,
# as nginx's lingering close: a file somewhat too big gets its 413; far more, or a trickle, is cut.
DRAIN_MIN_BYTES = 64 * MIB
DRAIN_SECONDS = 30.0

# The text fields kept beside the file (a form's token, checkbox, button): this many, this long.
MAX_FIELDS = 16
MAX_FIELD_BYTES = 1024

# Called with the text fields received so far, once, when the file part begins (or at the end,
# when there is none); whatever it raises refuses the upload: the rest of the body is read
# and dropped, the file is not kept, and the exception is raised once the body is in.
FieldsCheck = Callable[[Mapping[str, str]], None]


class Upload:
    """Streams a multipart body to a spooled temporary file, counting the file's bytes; keeps
    the other parts' values as text (`fields`, at most MAX_FIELDS of MAX_FIELD_BYTES)."""

    def __init__(self, boundary: bytes, limit: int, check: FieldsCheck | None = None) -> None:
        self.limit = limit
        self.file: IO[bytes] | None = None
        self.filename: str | None = None
        self.size = 0
        self.fields: dict[str, str] = {}
        # What `check` raised: the upload is refused.
        self.refusal: Exception | None = None
        self._check = check
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._target: IO[bytes] | None = None
        self._in_file = False
        self._text_name: str | None = None
        self._text = bytearray()
        self._parts = 0
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def checked(self) -> None:
        """Run the check (once) on the fields received so far; a refusal is kept."""
        check, self._check = self._check, None
        if check is not None:
            try:
                check(self.fields)
            except Exception as exc:
                self.refusal = exc

    def _part_begin(self) -> None:
        self._headers = {}
        self._target = None
        self._in_file = False
        self._text_name = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"")
        if name == b"file" and self.file is None and not self._in_file_seen:
            self._in_file = True
            self.checked()
            if self.refusal is not None:
                return  # counted against the limit, not kept
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
            self._target = self.file
        elif b"filename" not in params:
            self._parts += 1
            if self._parts > MAX_FIELDS:
                raise InvalidInput(f"more than {MAX_FIELDS} form fields besides the file")
            self._text_name = name.decode("utf-8", "replace")
            self._text = bytearray()

    @property
    def _in_file_seen(self) -> bool:
        return self.filename is not None or self.refusal is not None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.size += end - start
            if self.size > self.limit:
                raise _TooLarge
            if self._target is not None:
                self._target.write(data[start:end])
        elif self._text_name is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise InvalidInput(
                    f"the form field {self._text_name[:40]!r} is longer than "
                    f"{MAX_FIELD_BYTES} bytes"
                )

    def _part_end(self) -> None:
        if self._text_name is not None:
            # The first of fields of the same name, as a form's `get` gives it.
            self.fields.setdefault(self._text_name, self._text.decode("utf-8", "replace"))
        self._target = None
        self._in_file = False
        self._text_name = None


class _TooLarge(Exception):
    pass


class BodyTooLarge(Problem):
    """413, and the connection closed after it: what is left of the body is not read."""

    status = 413

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class UploadTooLarge(BodyTooLarge):
    def __init__(self, limit_mb: int) -> None:
        super().__init__(
            f"the file is larger than the {limit_mb} MB upload limit (MAX_UPLOAD_MB): "
            "split it, or import it with the `ekimo import` command"
        )


def _drain_limit(limit: int) -> int:
    """How much of a body over `limit` is read, to let the client finish writing it."""
    return limit + max(limit, DRAIN_MIN_BYTES)


def _expects_continue(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("expect", "").lower() == "100-continue"


async def _consume(
    request: Request[Any, Any, Any], sink: Callable[[bytes], None], limit: int, announced_limit: int
) -> bool:
    """Feed the body to `sink` a chunk at a time; True when all of it went there.

    Once the body is over the limit (its Content-Length says so, or `sink` raises `_TooLarge`),
    the rest is read and dropped within the drain bounds, and False returned: the caller raises
    its `BodyTooLarge` when the client is ready to read it. A client waiting for `100 Continue`
    has sent nothing yet, and one announcing more than the bounds would not finish in time:
    both get their answer at once."""
    drained = _drain_limit(limit)
    announced = request.headers.get("content-length", "")
    within = not (announced.isdigit() and int(announced) > announced_limit)
    if not within and (_expects_continue(request) or int(announced) > drained):
        return False
    loop = asyncio.get_running_loop()
    received = 0
    chunks = request.stream()
    try:
        async with asyncio.timeout_at(None if within else loop.time() + DRAIN_SECONDS) as deadline:
            async for chunk in chunks:
                received += len(chunk)
                if within:
                    try:
                        sink(chunk)
                        continue
                    except _TooLarge:
                        within = False
                        deadline.reschedule(loop.time() + DRAIN_SECONDS)
                if received > drained:
                    break
    except TimeoutError:
        pass  # the client trickles: answer and close without the rest
    except HTTPException:
        if within:
            raise
        # The client went away while its refused body was drained: nobody reads the answer.
    finally:
        await chunks.aclose()
    return within


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The whole body, at most `limit` bytes; `BodyTooLarge` (read by every client) over it."""
    parts: list[bytes] = []
    size = 0

    def keep(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)

    if not await _consume(request, keep, limit, limit):
        raise BodyTooLarge(
            f"the request body is larger than the {limit / MIB:g} MB this operation takes: "
            "send less in one request"
        )
    return b"".join(parts)


async def receive_file(
    request: Request[Any, Any, Any], container: Container, check: FieldsCheck | None = None
) -> Upload:
    """The multipart field `file`, spooled and rewound, and the form's text fields;
    `Problem` when there is none or too much. `check` sees the text fields sent before the
    file (a form's token comes first) and may refuse the upload by raising: its exception is
    raised, after the body has been read, before any other answer."""
    settings = container.settings
    limit = settings.max_upload_bytes
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        if check is not None:
            check({})
        raise InvalidInput("send the file as multipart/form-data in a field named `file`")
    upload = Upload(boundary, limit, check)

    def parse(chunk: bytes) -> None:
        if chunk:
            upload.parser.write(chunk)

    def discard() -> None:
        if upload.file is not None:
            upload.file.close()

    try:
        within = await _consume(request, parse, limit, limit + MULTIPART_OVERHEAD)
        if within:
            upload.parser.finalize()
    except Exception as exc:
        discard()
        if upload.refusal is not None:
            raise upload.refusal from None
        if isinstance(exc, HTTPException | Problem):
            raise
        raise InvalidInput(f"malformed multipart body: {exc}") from None
    upload.checked()  # a body without a file part
    if upload.refusal is not None:
        discard()
        raise upload.refusal
    if not within:
        discard()
        raise UploadTooLarge(settings.max_upload_mb)
    if upload.file is None:
        raise InvalidInput("no file: send it in a multipart field named `file`")
    upload.file.seek(0)
    return upload
