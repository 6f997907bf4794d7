"""Receiving an uploaded file: the multipart body streamed to a spooled file, bounded by
MAX_UPLOAD_MB. Knows HTTP, not what the file holds."""

from __future__ import annotations

import tempfile
from typing import IO, Any

from litestar import Request
from litestar.exceptions import HTTPException
from python_multipart.multipart import MultipartParser, parse_options_header

from ekimo.container import Container
from ekimo.errors import InvalidInput, Problem

SPOOL_IN_MEMORY = 4 * 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024


class Upload:
    """Streams a multipart body to a spooled temporary file, counting the file's bytes."""

    def __init__(self, boundary: bytes, limit: int) -> None:
        self.limit = limit
        self.file: IO[bytes] | None = None
        self.filename: str | None = None
        self.size = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._target: IO[bytes] | None = None
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

    def _part_begin(self) -> None:
        self._headers = {}
        self._target = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == b"file" and self.file is None:
            self.filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
            self._target = self.file

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target is None:
            return
        self.size += end - start
        if self.size > self.limit:
            raise _TooLarge
        self._target.write(data[start:end])

    def _part_end(self) -> None:
        self._target = None


class _TooLarge(Exception):
    pass


class UploadTooLarge(Problem):
    status = 413

    def __init__(self, limit_mb: int) -> None:
        super().__init__(
            f"the file is larger than the {limit_mb} MB upload limit (MAX_UPLOAD_MB): "
            "split it, or import it with the `ekimo import` command"
        )


async def receive_file(request: Request[Any, Any, Any], container: Container) -> Upload:
    """The multipart field `file`, spooled and rewound; `Problem` when there is none or too much."""
    settings = container.settings
    limit = settings.max_upload_bytes
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidInput("send the file as multipart/form-data in a field named `file`")
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > limit + MULTIPART_OVERHEAD:
        raise UploadTooLarge(settings.max_upload_mb)
    upload = Upload(boundary, limit)
    try:
        async for chunk in request.stream():
            if chunk:
                upload.parser.write(chunk)
        upload.parser.finalize()
    except _TooLarge:
        if upload.file is not None:
            upload.file.close()
        raise UploadTooLarge(settings.max_upload_mb) from None
    except Exception as exc:
        if upload.file is not None:
            upload.file.close()
        if isinstance(exc, HTTPException):
            raise
        raise InvalidInput(f"malformed multipart body: {exc}") from None
    if upload.file is None:
        raise InvalidInput("no file: send it in a multipart field named `file`")
    upload.file.seek(0)
    return upload
