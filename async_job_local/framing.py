"""HTTP/1.1 request bodies as the local API Gateway reads them: delimited exactly, or refused.

RFC 9112 section 6: a request body is delimited by ``Transfer-Encoding: chunked`` or by ``Content-Length``.
Refused as malformed (the caller answers ``400`` and closes the connection, whose framing is lost): both
headers at once (a request-smuggling pattern, RFC 9112 section 6.3), a ``Content-Length`` that is not one
decimal number (``abc``, ``-5``, ``+2``, two different values), a transfer coding other than ``chunked``, a
chunk size that is not hexadecimal, chunk data not followed by CRLF, and a body that ends before its announced
length. A read that stalls raises ``TimeoutError`` from the socket's timeout (the caller answers ``408``).
"""

from __future__ import annotations

import re
from email.message import Message
from io import BufferedIOBase
from typing import Final

__all__ = ["MalformedRequestError", "read_body"]

#: The longest chunk-size line (size, extensions, CRLF) and the most trailer fields read after the last chunk.
MAX_CHUNK_SIZE_LINE: Final = 4096
MAX_TRAILER_FIELDS: Final = 100
#: Digits beyond these cannot be a size under any limit here (and would make int() slow on purpose).
_MAX_LENGTH_DIGITS: Final = 15
_DECIMAL: Final = re.compile(r"[0-9]+")
_HEXADECIMAL: Final = re.compile(rb"[0-9A-Fa-f]+")
_LINE_ENDS: Final = (b"\r\n", b"\n")
_HOW_TO_SEND: Final = (
    "Send the body with one Content-Length (its size in bytes, as a decimal number) or with "
    "Transfer-Encoding: chunked, not both."
)


class MalformedRequestError(ValueError):
    """The request's body cannot be delimited; the message says what is wrong and how to send it."""


def read_body(rfile: BufferedIOBase, headers: Message, max_bytes: int) -> bytes | None:
    """The request body, read exactly; None when it announces (or reaches) more than ``max_bytes``.

    Without either header a request has no body (RFC 9112 section 6.3). When None is returned the rest of the
    body is left unread: answer and close the connection.

    Raises
    ------
    MalformedRequestError
        The body's framing is wrong (see the module's docstring).
    TimeoutError
        The client stopped sending before the body was complete.

    Examples
    --------
    >>> headers = http.client.parse_headers(io.BytesIO(b"Transfer-Encoding: chunked\\r\\n\\r\\n"))
    >>> read_body(io.BufferedReader(io.BytesIO(b"2\\r\\n{}\\r\\n0\\r\\n\\r\\n")), headers, 1024)
    b'{}'
    """
    codings = [
        coding.strip().lower()
        for value in headers.get_all("Transfer-Encoding") or []
        for coding in value.split(",")
        if coding.strip()
    ]
    lengths = headers.get_all("Content-Length") or []
    if codings and lengths:
        raise MalformedRequestError(
            f"The request has both Content-Length and Transfer-Encoding. {_HOW_TO_SEND}"
        )
    if codings:
        if codings != ["chunked"]:
            raise MalformedRequestError(
                f"Transfer-Encoding {', '.join(codings)[:100]!r} is not supported. {_HOW_TO_SEND}"
            )
        return _read_chunked(rfile, max_bytes)
    if not lengths:
        return b""
    length = _content_length(lengths)
    if length is None or length > max_bytes:
        return None
    body = rfile.read(length)
    if len(body) < length:
        raise MalformedRequestError(
            f"The body ended after {len(body)} of the {length} bytes its Content-Length announced. Send "
            "exactly Content-Length bytes."
        )
    return body


def _content_length(values: list[str]) -> int | None:
    """The one length the headers give (``5, 5`` is one); None when it is too large to be any limit."""
    given = {item.strip() for value in values for item in value.split(",")}
    if len(given) != 1:
        shown = ", ".join(sorted(given))[:100]
        raise MalformedRequestError(
            f"The request has several Content-Length values ({shown}). {_HOW_TO_SEND}"
        )
    (value,) = given
    if not _DECIMAL.fullmatch(value):
        raise MalformedRequestError(
            f"Content-Length {value[:40]!r} is not a number of bytes (decimal digits only). {_HOW_TO_SEND}"
        )
    return None if len(value) > _MAX_LENGTH_DIGITS else int(value)


def _read_chunked(rfile: BufferedIOBase, max_bytes: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        line = rfile.readline(MAX_CHUNK_SIZE_LINE + 1)
        if not line.endswith(b"\n"):
            if len(line) > MAX_CHUNK_SIZE_LINE:
                raise MalformedRequestError(
                    f"A chunk-size line is longer than {MAX_CHUNK_SIZE_LINE} bytes. Send each chunk as its "
                    "size in hexadecimal, CRLF, its data, CRLF."
                )
            raise MalformedRequestError(_ended_early("before its last chunk (a chunk of size 0)"))
        size_text = line.split(b";", 1)[0].strip()
        if not _HEXADECIMAL.fullmatch(size_text):
            raise MalformedRequestError(
                f"The chunk size {size_text[:40].decode('latin-1')!r} is not a hexadecimal number. Send each "
                "chunk as its size in hexadecimal, CRLF, its data, CRLF; end with a chunk of size 0."
            )
        if len(size_text) > _MAX_LENGTH_DIGITS:
            return None
        length = int(size_text, 16)
        if length == 0:
            _skip_trailer(rfile)
            return b"".join(chunks)
        size += length
        if size > max_bytes:
            return None
        data = rfile.read(length)
        if len(data) < length:
            raise MalformedRequestError(_ended_early(f"inside a chunk ({len(data)} of its {length} bytes)"))
        chunks.append(data)
        if rfile.readline(len(b"\r\n")) not in _LINE_ENDS:
            raise MalformedRequestError(
                f"A chunk's data is not followed by CRLF: the chunk is longer than its size ({length} bytes, "
                f"0x{length:x}). Send each chunk's size in hexadecimal, exactly."
            )


def _skip_trailer(rfile: BufferedIOBase) -> None:
    """Read the trailer fields after the last chunk, up to the empty line that ends the body."""
    for _ in range(MAX_TRAILER_FIELDS + 1):
        line = rfile.readline(MAX_CHUNK_SIZE_LINE + 1)
        if line in _LINE_ENDS:
            return
        if len(line) > MAX_CHUNK_SIZE_LINE:
            raise MalformedRequestError(f"A trailer field is longer than {MAX_CHUNK_SIZE_LINE} bytes.")
        if not line.endswith(b"\n"):
            raise MalformedRequestError(
                _ended_early("inside its trailer (the empty line that ends it is missing)")
            )
    raise MalformedRequestError(f"The chunked body's trailer has more than {MAX_TRAILER_FIELDS} fields.")


def _ended_early(where: str) -> str:
    return (
        f"The chunked body ended {where}. Send every chunk, then a chunk of size 0 and an empty line "
        "(0 CRLF CRLF)."
    )
