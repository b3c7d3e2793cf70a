"""The ``segmap users`` commands: create and list accounts of the web service, set passwords.

Only light modules are imported at the top so ``segmap --help`` stays instant; the
database and the services load inside the handlers.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any, TextIO

from segmap.cli.common import command, needs_subcommand
from segmap.cli.datafolder import add_data_options, settings_for
from segmap.errors import SegmapError

if TYPE_CHECKING:
    from segmap.server.db.engine import Database

USERS_HELP = "manage accounts of the web service"
USERS_DESCRIPTION = "Create and list accounts of the segmap web service, and set passwords."


def add_parser(subparsers: Any) -> None:
    """Add ``segmap users`` and its sub-commands."""
    group = command(subparsers, "users", help=USERS_HELP, description=USERS_DESCRIPTION)
    group.set_defaults(handler=needs_subcommand(group))
    add_users_commands(group.add_subparsers(dest="users_command", metavar="USERS_COMMAND"))


def add_users_commands(sub: Any) -> None:
    """Add ``create``, ``list`` and ``set-password`` to ``sub``, the group's sub-parsers."""
    create = command(
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
    add_data_options(create)
    create.set_defaults(handler=run_users_create)

    listing = command(sub, "list", help="list accounts", description="List accounts.")
    add_data_options(listing)
    listing.set_defaults(handler=run_users_list)

    passwd = command(
        sub,
        "set-password",
        help="replace an account's password (read from standard input)",
        description="Replace an account's password, read from standard input like 'create'.",
    )
    passwd.add_argument("name")
    add_data_options(passwd)
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

    settings = settings_for(args)
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
