"""`cutout http`: the HTTP gateway (rembg's API, the job API, the page) in the foreground."""

from __future__ import annotations

import click

from cutout_cli.common import check_tls, get_settings, reporting


@click.command("http")
@click.option("--address", help="Address to listen on [CUTOUT_HTTP_ADDRESS].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [CUTOUT_HTTP_PORT].")
@click.option(
    "-l",
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="uvicorn's log level (info: one line per request).",
)
@click.pass_context
def http_command(
    ctx: click.Context, /, *, address: str | None, port: int | None, log_level: str
) -> None:
    """Run the HTTP gateway: POST /api/remove (rembg's), the job API, the event stream,
    /docs and a web page at /. It enqueues jobs for the workers and never loads the model:
    run as many as you like, on any host that reaches Redis.

    Beyond loopback it refuses to start without CUTOUT_HTTP_TOKEN or CUTOUT_HTTP_TOKENS.
    While Redis is away it answers 503 and waits for it to come back. Exit codes: 0 stopped
    on request; 3 invalid settings (an open gateway, a TLS Redis failing its handshake).
    """
    settings = get_settings(ctx)
    from cutout_http.app import create_app
    from cutout_http.config import GatewayConfig
    from cutout_http.server import server

    with reporting(ctx):
        config = GatewayConfig.from_settings(settings, address=address, port=port)
        check_tls(settings)
    app = create_app(settings, config=config)
    auth = "a token is asked" if config.tokens else "no token asked: loopback only"
    click.echo(f"gateway: {config.url} ({auth}); API docs at {config.url}docs", err=True)
    server(app, config, log_level=log_level).run()
