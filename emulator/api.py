"""Handlers of `/api/v3/orders…`. Auth, limits and faults already ran (see app.py).

Write handlers follow one shape: validate everything that can be checked up front (all errors
at once), then hold the orders' keys, wait out the configured delays while holding them, and
apply synchronously. Holding across the delays is what makes overlapping requests collide for
real, as they do against Sendcloud.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from aiohttp import web

from emulator import errors
from emulator.config import Account
from emulator.core import Emulator
from emulator.errors import ITEM_NOT_FOUND_DETAIL, ApiError, invalid
from emulator.listing import list_page, parse_query
from emulator.patch import merge
from emulator.respond import json_response, raw_json, read_json
from emulator.state import Record
from emulator.upsert import parse_pk, plan_batch
from emulator.validate import Errors, check_order, check_patch

MAX_BATCH = 100
EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)


class RequestContext:
    """Per-request facts the middleware settles before the handler runs."""

    account: Account  # set once authenticated; handlers only run after that

    def __init__(self, delay: float) -> None:
        self.delay_seconds = delay  # latency (+ slow fault)
        self.delayed = False

    async def delay(self) -> None:
        """Sleep the request's delay once; later calls return at once."""
        if self.delayed:
            return
        self.delayed = True
        if self.delay_seconds > 0:
            await asyncio.sleep(self.delay_seconds)


CONTEXT: web.RequestKey[RequestContext] = web.RequestKey("context", RequestContext)


def _field_errors(errs: Errors, request: web.Request) -> ApiError:
    if request.app[EMULATOR].config.errors_without_pointers:
        return ApiError(400, [errors.error(400, "invalid", d) for _, d in errs])
    return ApiError(400, [invalid(p, d) for p, d in errs])


def _record(request: web.Request, emu: Emulator, detail: str = errors.NOT_FOUND_DETAIL) -> Record:
    pk = parse_pk(request.match_info["id"])
    record = None if pk is None else emu.store.get(pk, request[CONTEXT].account.integrations)
    if record is None:
        raise errors.order_not_found(detail)
    return record


async def post_orders(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    ctx = request[CONTEXT]
    body = await read_json(request)
    if type(body) is not list:
        raise errors.wrong_format("Wrong request format, expected list of objects")
    if len(body) > MAX_BATCH:
        raise ApiError(400, [invalid(
            "/data/attributes/",
            f"Orders list should have at most {MAX_BATCH} items, not {len(body)}")])
    errs: Errors = []
    cleaned = [check_order(order, f"/data/attributes/[{i}]", errs) for i, order in enumerate(body)]
    plan, keys = plan_batch(emu.store, ctx.account, body, cleaned, errs)
    if errs:
        raise _field_errors(errs, request)
    store = emu.store
    if not store.try_hold(keys):
        raise errors.conflict(emu.config.conflict_status)
    try:
        await ctx.delay()
        # The held keys kept every other writer out; only a reset can have changed things.
        plan, _ = plan_batch(store, ctx.account, body, cleaned, errs)
        if errs:
            raise _field_errors(errs, request)
        answer = store.upsert(plan, emu.now())
    finally:
        store.release(keys)
    return json_response({"data": answer}, 201)


async def list_orders(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    ctx = request[CONTEXT]
    query = parse_query(request.query, ctx.account.integrations)
    await ctx.delay()
    page = list_page(emu.store, query, emu.now())
    text = '{"data":[' + ",".join(v.text for _, v in page.items) + "]}"
    links = [f'<{_page_url(request, cursor)}>; rel="{rel}"'
             for rel, cursor in (("next", page.next), ("prev", page.prev)) if cursor is not None]
    headers = {"Link": ", ".join(links)} if links else None
    return raw_json(text, 200, headers)


def _page_url(request: web.Request, cursor: str) -> str:
    """This request's absolute URL with another cursor ("" = none).

    Built from the raw query string, so whatever the client sent comes back byte for byte
    (decoding and re-encoding could fail on odd percent-escapes).
    """
    kept = [part for part in request.rel_url.raw_query_string.split("&")
            if part and part.split("=", 1)[0] != "cursor"]
    if cursor:
        kept.append("cursor=" + quote(cursor, safe=""))
    query = "?" + "&".join(kept) if kept else ""
    return f"{request.scheme}://{request.host}{request.rel_url.raw_path}{query}"


async def get_order(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    await request[CONTEXT].delay()
    record = _record(request, emu)
    version = record.visible(emu.now())
    if version is None:
        raise errors.order_not_found()
    return raw_json('{"data":' + version.text + "}")


def _patched(request: web.Request, record: Record, patch: dict[str, Any]) -> dict[str, Any]:
    """The stored order with the patch applied and re-validated as a whole order."""
    account = request[CONTEXT].account
    errs: Errors = []
    if "order_id" in patch and patch["order_id"] != record.order_id:
        errs.append(("/data/attributes/order_id", f"Order id {record.order_id} cannot be changed"))
    integration = patch.get("order_details", {}).get("integration", {}).get("id")
    if integration is not None and integration != record.integration_id:
        errs.append(("/data/attributes/order_details/integration/id",
                     f"Integration with id {integration} does not exist"
                     if integration not in account.integrations
                     else f"Integration of order {record.pk} cannot be changed"))
    if errs:
        raise _field_errors(errs, request)
    merged, item_errors = merge(record.latest.order, patch, "/data/attributes")
    if item_errors:
        raise ApiError(400, item_errors)
    order = check_order(merged, "/data/attributes", errs)
    if errs:
        raise _field_errors(errs, request)
    return order


async def patch_order(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    ctx = request[CONTEXT]
    record = _record(request, emu, ITEM_NOT_FOUND_DETAIL)
    body = await read_json(request)
    if type(body) is not dict:
        raise errors.wrong_format("Wrong request format, expected an object")
    errs: Errors = []
    patch = check_patch(body, "/data/attributes", errs)
    if errs:
        raise _field_errors(errs, request)
    _patched(request, record, patch)  # report errors before holding anything
    store = emu.store
    keys = {record.key}
    if not store.try_hold(keys):
        raise errors.conflict(emu.config.conflict_status)
    try:
        await ctx.delay()
        record = _record(request, emu, ITEM_NOT_FOUND_DETAIL)
        order = _patched(request, record, patch)
        store.replace(record, order, emu.now())
    finally:
        store.release(keys)
    return json_response({"data": {"id": record.pk, "order_id": order["order_id"],
                                   "order_number": order["order_number"]}})


async def delete_order(request: web.Request) -> web.StreamResponse:
    emu = request.app[EMULATOR]
    ctx = request[CONTEXT]
    record = _record(request, emu)
    store = emu.store
    keys = {record.key}
    if not store.try_hold(keys):
        raise errors.conflict(emu.config.conflict_status)
    try:
        await ctx.delay()
        record = _record(request, emu)
        store.delete(record, emu.now())
    finally:
        store.release(keys)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    for path in ("/api/v3/orders", "/api/v3/orders/"):
        app.router.add_post(path, post_orders)
        app.router.add_get(path, list_orders)
    for path in ("/api/v3/orders/{id}", "/api/v3/orders/{id}/"):
        app.router.add_get(path, get_order)
        app.router.add_patch(path, patch_order)
        app.router.add_delete(path, delete_order)
