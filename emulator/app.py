"""The aiohttp application: the `/api/v3` pipeline (auth → rate limit → fault → handler), the
`/_emulator` helper endpoints, and JSON:API bodies for every error, aiohttp's own included.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from emulator import errors
from emulator.api import CONTEXT, EMULATOR, RequestContext, add_routes
from emulator.config import Config
from emulator.core import Emulator
from emulator.errors import ApiError
from emulator.faults import Fault
from emulator.respond import MAX_BODY, error_response, json_response
from emulator.state import iso
from emulator.stats import NO_ANSWER, WRITE_METHODS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_PREFIX = "/api/v3"
PARTNER_HEADER = "Sendcloud-Partner-Id"

_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


class _Drop(Exception):
    """Close the connection without answering."""


def _from_http_exception(exc: web.HTTPException, method: str) -> ApiError:
    if exc.status == 404:
        return errors.route_not_found()
    if exc.status == 405:
        return errors.method_not_allowed(method, exc.headers.get("Allow", ""))
    if exc.status == 413:
        return errors.too_large(MAX_BODY)
    return ApiError(exc.status, [errors.error(exc.status, "invalid", exc.reason,
                                              title=exc.reason)])


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


async def _apply_fault(emu: Emulator, fault: Fault, ctx: RequestContext, handler: Handler,
                       request: web.Request) -> web.StreamResponse:
    kind = fault.kind
    emu.stats.faults[kind] += 1
    if kind == "conflict":
        raise errors.conflict(emu.config.conflict_status)
    if kind == "server_error":
        status = fault.server_status
        if status == 500:
            raise errors.server_error()
        # A gateway in front of the API answers 502/503 with its own HTML page.
        reason = "Bad Gateway" if status == 502 else "Service Temporarily Unavailable"
        return web.Response(status=status, content_type="text/html",
                            text=_GATEWAY_PAGE.format(status=status, reason=reason))
    if kind == "timeout":
        ctx.delayed = True  # the hang replaces the latency
        await asyncio.sleep(emu.config.hang_seconds)
        raise _Drop
    if kind == "slow":
        ctx.delay_seconds += emu.config.slow_seconds
        return await handler(request)
    # lost_response: do the work (whatever its outcome), then vanish.
    with contextlib.suppress(ApiError, web.HTTPException):
        await handler(request)
    await ctx.delay()
    raise _Drop


async def _api(emu: Emulator, request: web.Request, handler: Handler, fault: Fault | None,
               ctx: RequestContext, now: float) -> web.StreamResponse:
    ctx.account = emu.authenticate(request.headers.get("Authorization"))
    partner = request.headers.get(PARTNER_HEADER)
    if partner is not None:
        try:
            uuid.UUID(partner)
        except ValueError:
            raise ApiError(400, [errors.error(
                400, "invalid", f"Invalid {PARTNER_HEADER} header.",
                header=PARTNER_HEADER)]) from None
    write = request.method in WRITE_METHODS
    public_key = ctx.account.public_key
    limiter = emu.limiter
    if limiter is not None:
        wait = limiter.retry_after(public_key, write, now)
        if wait:
            raise errors.rate_limited(wait)
    if fault is not None and fault.kind == "rate_limit":
        emu.stats.faults["rate_limit"] += 1
        raise errors.rate_limited(fault.retry_after)  # a 429 is not counted as a request
    if limiter is not None:
        limiter.record(public_key, write, now)
    if fault is not None and (fault.kind != "conflict" or write):
        return await _apply_fault(emu, fault, ctx, handler, request)
    return await handler(request)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return error_response(_from_http_exception(exc, request.method))
    emu = request.app[EMULATOR]
    now = emu.now()
    method = request.method
    entry = emu.stats.arrive(method, now)
    fault = emu.faults.draw()  # in arrival order, before anything can await
    ctx = RequestContext(emu.config.latency)
    request[CONTEXT] = ctx
    status = NO_ANSWER
    try:
        try:
            response = await _api(emu, request, handler, fault, ctx, now)
        except ApiError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            response = error_response(_from_http_exception(exc, method))
        await ctx.delay()  # every answer pays the latency once (no-op if the handler did)
        status = response.status
        return response
    except _Drop:
        _drop_connection(request)
        return web.Response(status=204)  # never reaches the client: the transport is closed
    except Exception:
        # A bug, not bad input: say so loudly, still answer in the API's format.
        traceback.print_exc(file=sys.stderr)
        status = 500
        return error_response(errors.server_error())
    finally:
        emu.stats.finish(method, status, entry)


# --- /_emulator ----------------------------------------------------------------------------


async def stats(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    return json_response(emu.stats.snapshot(emu.store.count()))


async def all_orders(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    include_deleted = request.query.get("include_deleted", "") in ("1", "true", "yes")
    now = emu.now()
    records = list(emu.store.records.values())
    if include_deleted:
        records += list(emu.store.deleted.values())
        records.sort(key=lambda r: r.pk)
    return json_response([
        {
            "id": r.pk,
            "integration_id": r.integration_id,
            "order_id": r.order_id,
            "order": r.latest.order,
            "created_at": iso(r.latest.created_at),
            "modified_at": iso(r.latest.modified_at),
            "deleted": r.deleted_at is not None,
            "visible": r.deleted_at is None and r.visible(now) is r.latest,
        }
        for r in records
    ])


async def reset(request: web.Request) -> web.StreamResponse:
    request.app[EMULATOR].reset()
    return json_response({"reset": True})


def build_app(config: Config) -> web.Application:
    # Room for the whole 10 MiB body plus slack; read_json answers 413 itself above 10 MiB.
    app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY + 1)
    emu = Emulator.create(config)
    app[EMULATOR] = emu
    add_routes(app)
    app.router.add_get("/_emulator/stats", stats)
    app.router.add_get("/_emulator/orders", all_orders)
    app.router.add_post("/_emulator/reset", reset)

    async def close(app: web.Application) -> None:
        emu.close()

    app.on_cleanup.append(close)
    return app
