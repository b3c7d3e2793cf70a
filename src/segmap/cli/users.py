"""The ``segmap users`` commands: create, list, disable, enable and delete accounts of the
web service, and set passwords.

Only light modules are imported at the top so ``segmap --help`` stays instant; the
database and the services load inside the handlers.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any, TextIO

from segmap.cli.common import command, needs_subcommand
from segmap.cli.datafolder import add_data_options, open_database, settings_for
from segmap.errors import SegmapError

if TYPE_CHECKING:
    from segmap.server.db.engine import Database

USERS_HELP = "manage accounts of the web service"
USERS_DESCRIPTION = (
    "Create, list, disable, enable and delete accounts of the segmap web service, and set "
    "passwords. Disabling, deleting and setting a password end the account's log-ins and "
    "revoke its API tokens at once."
)


def add_parser(subparsers: Any) -> None:
    """Add ``segmap users`` and its sub-commands."""
    group = command(subparsers, "users", help=USERS_HELP, description=USERS_DESCRIPTION)
    group.set_defaults(handler=needs_subcommand(group))
    add_users_commands(group.add_subparsers(dest="users_command", metavar="USERS_COMMAND"))


def add_users_commands(sub: Any) -> None:
    """Add ``create``, ``list``, ``set-password``, ``disable``, ``enable`` and ``delete``
    to ``sub``, the group's sub-parsers."""
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
        description=(
            "Replace an account's password, read from standard input like 'create'. Every "
            "log-in of the account ends and its API tokens are revoked."
        ),
    )
    passwd.add_argument("name")
    add_data_options(passwd)
    passwd.set_defaults(handler=run_users_set_password)

    for name, help_text, description in STATE_COMMANDS:
        cmd = command(sub, name, help=help_text, description=description)
        cmd.add_argument("name", help="username")
        add_data_options(cmd)
        cmd.set_defaults(handler=run_users_state_change)


STATE_COMMANDS = (
    (
        "disable",
        "stop an account from logging in; its log-ins and API tokens end now",
        "Disable an account: it cannot log in, and its log-in sessions and API tokens stop "
        "working at once (also in a running service). 'segmap users enable' undoes it; "
        "the user then logs in again and makes new tokens.",
    ),
    (
        "enable",
        "let a disabled account log in again",
        "Let a disabled account log in again.",
    ),
    (
        "delete",
        "delete an account (refused while it alone owns a project)",
        "Delete an account. Its log-ins, API tokens and project memberships go with it; "
        "what it made (projects, models, sessions, files, jobs) stays, with no creator "
        "named. Refused while the account is the only owner of a project: make someone "
        "else owner first, or disable the account instead.",
    ),
)


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
    return open_database(settings_for(args))


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
                state = "" if u.is_active else "\tdisabled"
                print(f"{u.username}\t{'admin' if u.is_admin else 'user'}{state}")
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
            ended = services.set_password(db, args.name, password)
        database.dispose()
        print(f"password of {args.name!r} changed; {_ended_text(ended)}")
    except SegmapError as exc:
        print(f"segmap users set-password: {exc}", file=sys.stderr)
        return 1
    return 0


def _ended_text(ended: Any) -> str:
    sessions = f"{ended.sessions} log-in{'s' if ended.sessions != 1 else ''}"
    tokens = f"{ended.tokens} API token{'s' if ended.tokens != 1 else ''}"
    return f"{sessions} ended, {tokens} revoked"


def run_users_state_change(args: argparse.Namespace) -> int:
    """``disable``, ``enable`` or ``delete`` one account (the operator needs no log-in)."""
    from segmap.server.accounts import admin

    action = args.users_command
    try:
        database = _open_database(args)
        with database.session(write=True) as db:
            if action == "disable":
                ended = admin.disable_user(db, None, args.name)
                message = f"disabled {args.name!r}; {_ended_text(ended)}"
            elif action == "enable":
                admin.enable_user(db, None, args.name)
                message = f"enabled {args.name!r}; they can log in again"
            else:
                name = admin.delete_user(db, None, args.name)
                message = f"deleted {name!r}; their memberships are gone, what they made stays"
        database.dispose()
    except SegmapError as exc:
        print(f"segmap users {action}: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0
