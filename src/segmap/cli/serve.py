"""The ``segmap serve`` command: run the web service.

Only light modules are imported at the top so ``segmap --help`` stays instant; the
server's app and uvicorn load inside the handler.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from segmap.cli.common import command
from segmap.cli.datafolder import add_data_options, settings_for
from segmap.errors import SegmapError

SERVE_HELP = "run the web service (dashboard and REST API)"
SERVE_DESCRIPTION = (
    "Run the segmap web service: projects, models, model files and region maps, with the "
    "REST API under /api/v1 and its documentation at /docs. Starts on an empty data "
    "folder with no other set-up; the first start tells you how to create an account."
)


def add_parser(subparsers: Any) -> None:
    """Add ``segmap serve``."""
    parser = command(subparsers, "serve", help=SERVE_HELP, description=SERVE_DESCRIPTION)
    add_serve_arguments(parser)
    parser.set_defaults(handler=run_serve)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``segmap serve``."""
    add_data_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.add_argument(
        "--max-upload-bytes",
        type=int,
        default=None,
        metavar="N",
        help="largest file one upload may send, in bytes (default: 4 GiB or "
        "$SEGMAP_MAX_UPLOAD_BYTES)",
    )
    cookies = p.add_mutually_exclusive_group()
    cookies.add_argument(
        "--secure-cookies",
        dest="secure_cookies",
        action="store_true",
        default=None,
        help="always mark log-in cookies Secure (default: when the request came over https, "
        "including X-Forwarded-Proto from a trusted proxy)",
    )
    cookies.add_argument(
        "--no-secure-cookies",
        dest="secure_cookies",
        action="store_false",
        help="never mark log-in cookies Secure",
    )
    p.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        metavar="IPS",
        help="proxies trusted for X-Forwarded-Proto/-For (default: 127.0.0.1)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    # Jobs (additive, jobs engineer): worker pool size and the first-run demo.
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="local worker processes for conversion jobs (default: 2; ignored when "
        "$SEGMAP_DASK_SCHEDULER names a Dask scheduler, which then runs the jobs)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="on the first start in an empty data folder, make a demo project (generated "
        "CT with an RTSTRUCT, two automated models, their masks) and print its log-in",
    )


def run_serve(args: argparse.Namespace) -> int:
    """Start uvicorn with the app for these arguments; returns when it stops."""
    import uvicorn

    from segmap.server.app import NO_USERS_HINT, create_app

    overrides: dict[str, object] = {}
    if args.max_upload_bytes is not None:
        if args.max_upload_bytes <= 0:
            print("segmap serve: --max-upload-bytes must be a positive number", file=sys.stderr)
            return 2
        overrides["max_upload_bytes"] = args.max_upload_bytes
    if args.secure_cookies is not None:
        overrides["secure_cookies"] = args.secure_cookies
    if getattr(args, "workers", None) is not None:
        if args.workers < 1:
            print("segmap serve: --workers must be at least 1", file=sys.stderr)
            return 2
        overrides["workers"] = args.workers
    try:
        settings = settings_for(args, **overrides)
        if getattr(args, "demo", False):
            from segmap.server.demo import prepare_demo

            print(f"segmap: {prepare_demo(settings).message}", file=sys.stderr, flush=True)
        app = create_app(settings)
    except SegmapError as exc:
        print(f"segmap serve: {exc}", file=sys.stderr)
        return 1
    if app.state.database.user_count() == 0:
        print(NO_USERS_HINT.format(data=settings.data_dir), file=sys.stderr)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    # Ctrl-C ends the service normally, as uvicorn.run has it.
    with contextlib.suppress(KeyboardInterrupt):
        _announcing_server(config, args.host, f"(data folder {settings.data_dir})").run()
    return 0


def _announcing_server(config: Any, host: str, note: str) -> Any:
    """A uvicorn server that prints ``segmap: serving URL`` once it accepts connections.

    Printed earlier, the URL would be refused for as long as start-up takes (the job
    runner starts first), and scripts that wait for the line would connect too soon.
    The port is the one bound, so ``--port 0`` prints the port the system chose.
    """
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                port = self.servers[0].sockets[0].getsockname()[1]
                shown = f"[{host}]" if ":" in host else host
                print(f"segmap: serving http://{shown}:{port}/ {note}", file=sys.stderr, flush=True)

    return AnnouncingServer(config)
