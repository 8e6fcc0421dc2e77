"""Serving the app: aiohttp's production web server (no dev server), on a real socket."""

from __future__ import annotations

import socket

from aiohttp import web

from emulator.app import build_app
from emulator.config import Config


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/api/v3"


async def start(config: Config) -> tuple[web.AppRunner, str]:
    """Start listening; returns the runner (to clean up) and the API base URL.

    With port 0 the OS picks a free port; the URL names the real one.
    """
    app = build_app(config)
    # No access log: it costs more than the request itself at benchmark rates. A short
    # shutdown timeout: a hanging `timeout` fault must not delay a stop by 35 s.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = _site(runner, config.host, config.port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    return runner, base_url(config.host, port)


def _site(runner: web.AppRunner, host: str, port: int) -> web.BaseSite:
    if port != 0:
        return web.TCPSite(runner, host, port, backlog=1024)
    # Port 0 on a name with several addresses ("localhost": ::1 and 127.0.0.1) would get a
    # different free port per address; one socket on the first address keeps the URL true.
    family, _, _, _, address = socket.getaddrinfo(
        host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return web.SockSite(runner, sock, backlog=1024)
