"""Reading request bodies with a hard size limit."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from netcalc.errors import ClientGone, RequestTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing it once it passes `limit` bytes.

    The declared Content-Length is checked first, and the stream is counted
    as it arrives, so a lying or absent length cannot exhaust memory.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge()
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone() from None
    return b"".join(chunks)
