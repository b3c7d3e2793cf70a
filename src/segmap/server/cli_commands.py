"""The ``segmap serve`` and ``segmap users`` commands (registered by ``segmap.cli``).

``segmap.cli`` makes the parsers (with its shared conventions) and calls
``add_serve_arguments`` / ``add_users_commands``; handlers are ``(args) -> exit code``.
Only light modules are imported at the top so ``segmap --help`` stays instant; the
server, SQLAlchemy and uvicorn load inside the handlers.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from segmap.errors import SegmapError
from segmap.server.settings import DATA_ENV, DATABASE_ENV, Settings, default_data_dir


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"data folder (default: ${DATA_ENV}, else {default_data_dir()})",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help=f"SQLAlchemy database URL (default: ${DATABASE_ENV}, else SQLite in the data folder)",
    )


if TYPE_CHECKING:
    from segmap.server.db.engine import Database

SERVE_HELP = "run the web service (dashboard and REST API)"
SERVE_DESCRIPTION = (
    "Run the segmap web service: projects, models, model files and region maps, with the "
    "REST API under /api/v1 and its documentation at /docs. Starts on an empty data "
    "folder with no other set-up; the first start tells you how to create an account."
)
USERS_HELP = "manage accounts of the web service"
USERS_DESCRIPTION = "Create and list accounts of the segmap web service, and set passwords."

# segmap.cli's parser maker: (subparsers, name, help=, description=) -> ArgumentParser.
MakeCommand = Callable[..., argparse.ArgumentParser]


def _plain_command(
    subparsers: Any, name: str, *, help: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description, epilog=epilog
    )
    return parser


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    extra = dict(overrides)
    if getattr(args, "database_url", None):
        extra["database_url"] = args.database_url
    return Settings.from_env(args.data, **extra)


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``segmap serve``."""
    _add_data_options(p)
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
        settings = _settings(args, **overrides)
        if getattr(args, "demo", False):
            from segmap.server.demo import prepare_demo

            print(f"segmap: {prepare_demo(settings).message}", file=sys.stderr, flush=True)
        app = create_app(settings)
    except SegmapError as exc:
        print(f"segmap serve: {exc}", file=sys.stderr)
        return 1
    if app.state.database.user_count() == 0:
        print(NO_USERS_HINT.format(data=settings.data_dir), file=sys.stderr)
    print(
        f"segmap: serving http://{args.host}:{args.port}/ (data folder {settings.data_dir})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    return 0


def add_users_commands(sub: Any, make_command: MakeCommand = _plain_command) -> None:
    """Add ``create``, ``list`` and ``set-password`` under ``segmap users``.

    ``sub`` is the group's sub-parser set; ``make_command`` makes each parser (segmap.cli
    passes its own so every command gets ``--version``).
    """
    create = make_command(
        sub,
        "create",
        help="create an account; the password is read from standard input",
        description=(
            "Create an account. The password is read from standard input (one line; "
            "a pipe works: echo 'secret' | segmap users create alice). "
            "At a terminal it is asked for twice, without echo."
        ),
    )
    create.add_argument("name", help="username (letters, digits, '.', '_', '@', '-')")
    create.add_argument("--admin", action="store_true", help="make the account a site admin")
    _add_data_options(create)
    create.set_defaults(handler=run_users_create)

    listing = make_command(sub, "list", help="list accounts", description="List accounts.")
    _add_data_options(listing)
    listing.set_defaults(handler=run_users_list)

    passwd = make_command(
        sub,
        "set-password",
        help="replace an account's password (read from standard input)",
        description="Replace an account's password, read from standard input like 'create'.",
    )
    passwd.add_argument("name")
    _add_data_options(passwd)
    passwd.set_defaults(handler=run_users_set_password)


class PasswordInputError(SegmapError):
    """No usable password was given on standard input."""


def read_password(stdin: TextIO) -> str:
    """The password from a terminal (asked twice) or the first line of piped input.

    Only the line ending is removed, so spaces inside or around the password are kept.
    """
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password again: "):
            raise PasswordInputError("the two passwords differ; nothing was changed")
        password = first
    else:
        line = stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise PasswordInputError(
            "the password is empty; give it on standard input, e.g. "
            "echo 'a-good-password' | segmap users create NAME"
        )
    return password


def _open_database(args: argparse.Namespace) -> Database:
    from segmap.server.db.engine import Database

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    database.migrate()
    return database


def run_users_create(args: argparse.Namespace) -> int:
    """Create an account from the command line."""
    from segmap.server.accounts import service as services

    try:
        password = read_password(sys.stdin)
        database = _open_database(args)
        with database.session(write=True) as db:
            user = services.create_user(db, args.name, password, is_admin=args.admin)
            kind = "site admin" if user.is_admin else "user"
            print(f"created {kind} {user.username!r}")
        database.dispose()
    except SegmapError as exc:
        print(f"segmap users create: {exc}", file=sys.stderr)
        return 1
    return 0


def run_users_list(args: argparse.Namespace) -> int:
    """Print every account, one per line, admins marked."""
    from segmap.server.accounts import service as services

    try:
        database = _open_database(args)
        with database.session() as db:
            users = services.list_users(db)
            for u in users:
                print(f"{u.username}\t{'admin' if u.is_admin else 'user'}")
        database.dispose()
    except SegmapError as exc:
        print(f"segmap users list: {exc}", file=sys.stderr)
        return 1
    return 0


def run_users_set_password(args: argparse.Namespace) -> int:
    """Replace an account's password from standard input."""
    from segmap.server.accounts import service as services

    try:
        password = read_password(sys.stdin)
        database = _open_database(args)
        with database.session(write=True) as db:
            services.set_password(db, args.name, password)
        database.dispose()
        print(f"password of {args.name!r} changed")
    except SegmapError as exc:
        print(f"segmap users set-password: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m segmap.server.cli_commands serve|users ...``."""
    parser = argparse.ArgumentParser(prog="segmap")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = _plain_command(subparsers, "serve", help=SERVE_HELP, description=SERVE_DESCRIPTION)
    add_serve_arguments(serve)
    serve.set_defaults(handler=run_serve)
    users = _plain_command(subparsers, "users", help=USERS_HELP, description=USERS_DESCRIPTION)
    add_users_commands(users.add_subparsers(dest="users_command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
