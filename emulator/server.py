"""Serving the app: aiohttp's production web server (no dev server), on a real socket."""

from __future__ import annotations

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
    site = web.TCPSite(runner, config.host, config.port, backlog=1024)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    return runner, base_url(config.host, port)
