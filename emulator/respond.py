"""Request bodies in, JSON responses out: the strict edges of the HTTP layer."""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from aiohttp import web

from emulator import errors

MAX_BODY = 10 * 1024 * 1024  # 10 MiB; larger bodies get a 413
_JSON = "application/json"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    try:
        return raw_json(dumps(body), status, headers)
    except UnicodeEncodeError:
        # An error detail can echo a header, and aiohttp decodes odd header bytes to lone
        # surrogates; ASCII escapes carry them as valid JSON text.
        return raw_json(json.dumps(body, separators=(",", ":")), status, headers)


def raw_json(text: str, status: int = 200, headers: dict[str, str] | None = None
             ) -> web.Response:
    return web.Response(body=text.encode("utf-8"), status=status, headers=headers,
                        content_type=_JSON, charset="utf-8")


def error_response(exc: errors.ApiError) -> web.Response:
    return json_response(exc.body(), exc.status, exc.headers)


def _no_constants(name: str) -> NoReturn:
    # Python's json accepts NaN and Infinity; JSON does not.
    raise ValueError(f"Invalid JSON constant {name}")


async def read_json(request: web.Request) -> Any:
    """The JSON body, or the API error a client would get for a body this bad."""
    ctype = request.content_type
    if ctype != _JSON and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise errors.unsupported_media_type(request.headers.get("Content-Type", ""))
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.too_large(MAX_BODY) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.parse_error(f"Invalid UTF-8 at byte {exc.start}") from None
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise errors.parse_error("Nested too deeply") from None
    except ValueError as exc:
        raise errors.parse_error(str(exc)) from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        # `"\ud800"` decodes to a lone surrogate, which no UTF-8 answer could carry later:
        # refuse it now. Only bodies with surrogate escapes pay for the exact check.
        try:
            dumps(value).encode("utf-8")
        except UnicodeEncodeError:
            raise errors.parse_error("Invalid \\uXXXX escape: lone surrogate") from None
    return value
