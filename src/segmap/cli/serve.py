"""The ``segmap serve`` command: run the web service.

Only light modules are imported at the top so ``segmap --help`` stays instant; the
server's app and uvicorn load inside the handler.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import logging
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from segmap.cli.common import command
from segmap.cli.datafolder import add_data_options, settings_for, startup_problem
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
        check_data_folder(settings.data_dir)
        listener = bind_listener(args.host, args.port)
    except SegmapError as exc:
        print(f"segmap serve: {exc}", file=sys.stderr)
        return 1
    try:
        if getattr(args, "demo", False):
            from segmap.server.demo import prepare_demo

            print(f"segmap: {prepare_demo(settings).message}", file=sys.stderr, flush=True)
        app = create_app(settings)
    except SegmapError as exc:
        listener.close()
        print(f"segmap serve: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        listener.close()
        problem = startup_problem(exc, settings.effective_database_url, settings.data_dir)
        if problem is None:
            raise  # a fault of segmap itself: main() reports it as one
        print(f"segmap serve: {problem}", file=sys.stderr)
        return 1
    if app.state.database.user_count() == 0:
        print(NO_USERS_HINT.format(data=settings.data_dir), file=sys.stderr)
    configure_logging(args.log_level)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    server = _announcing_server(config, args.host, f"(data folder {settings.data_dir})")
    # uvicorn re-raises the Ctrl-C (SIGINT) it handled once it has shut down cleanly;
    # uvicorn.run swallows it the same way, so stopping the service is a clean exit.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
    # As uvicorn.run: a start-up that failed (uvicorn logged why) is a failed command.
    return 0 if server.started else 1


def configure_logging(level: str) -> None:
    """Send segmap's own log records (``segmap.*``: errors with their request id and
    traceback, job events) to standard error at ``level``, beside uvicorn's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    logger = logging.getLogger("segmap")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False  # one copy of each record, not a second through the root


def check_data_folder(data_dir: Path) -> None:
    """Make ``data_dir`` if needed and prove a file can be written in it.

    Raises:
        SegmapError: one sentence naming the folder and the reason (it is a file, no
            permission, a read-only disk), before anything else starts.
    """
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir, prefix=".segmap-write-test-"):
            pass
    except OSError as exc:
        raise SegmapError(
            f"the data folder {data_dir} cannot be written ({exc.strerror or exc}); give "
            "one the service's user may write with --data or $SEGMAP_DATA"
        ) from None


def bind_listener(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a port in use is one clear line at start-up.

    Bound before the database is migrated and the job workers start, and handed to
    uvicorn, so nothing else can take the port in between.

    Raises:
        SegmapError: the port is in use, not allowed, or the host is not an address of
            this machine.
    """
    if not 0 < port < 65536:
        raise SegmapError(f"--port {port} is not a TCP port (1 to 65535)")
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise SegmapError(f"--host {host!r} is not an address of this machine ({exc})") from None
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise SegmapError(
                f"port {port} on {host} is already in use by another program; stop it or "
                "choose another port with --port"
            ) from None
        raise SegmapError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another "
            "--host or --port"
        ) from None
    listener.set_inheritable(False)
    return listener


def freeze_startup_objects() -> None:
    """Exempt everything made during start-up from Python's full garbage collections.

    Start-up leaves a few million long-lived objects (modules, the ORM's mappers, the
    routes); each full collection would walk all of them, and the first one, which a
    request's allocations trigger, took 170 ms inside a STOW request. Frozen, they are
    never collected (they live as long as the process anyway) and a full collection
    walks only what requests made.
    """
    gc.collect()
    gc.freeze()


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
                freeze_startup_objects()
                port = self.servers[0].sockets[0].getsockname()[1]
                shown = f"[{host}]" if ":" in host else host
                print(f"segmap: serving http://{shown}:{port}/ {note}", file=sys.stderr, flush=True)

    return AnnouncingServer(config)
