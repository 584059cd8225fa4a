"""``argo-server token create|list|revoke``: the administrator's commands for API bearer tokens.

They work on the server's database directly (migrating it first), so they need the database URL the
server uses (``--database-url``, ``--config`` or ``$ARGO_DATABASE_URL``) and no running server.

    argo-server token create --user alice [--admin] [--description TEXT]   # prints the token once
    argo-server token list [--user alice]
    argo-server token revoke ID
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence

from .config import ServerConfig
from .db import Database
from .schema import upgrade
from .tokens import TokenInfo, TokenStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="argo-server token", description="Manage API bearer tokens.")
    parser.add_argument("--config", help="YAML file of server settings (for database_url)")
    parser.add_argument("--database-url", help="SQLAlchemy URL of the server's database")
    commands = parser.add_subparsers(dest="action", required=True)
    create = commands.add_parser("create", help="issue a token (printed once; only its hash is stored)")
    create.add_argument("--user", required=True, help="the user the token stands for (jobs' owner)")
    create.add_argument("--admin", action="store_true", help="may see and change every user's jobs")
    create.add_argument("--description", default="", help="a note, e.g. where the token is used")
    listing = commands.add_parser("list", help="tokens (never their secrets), revoked ones included")
    listing.add_argument("--user", help="only this user's tokens")
    revoke = commands.add_parser("revoke", help="revoke a token by id (effective within token_cache_seconds)")
    revoke.add_argument("id", help="token id as `token list` shows it (or the whole token)")
    for sub in (create, listing, revoke):
        # Accepted after the action too, as users type them.
        sub.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
        sub.add_argument("--database-url", dest="sub_database_url", help=argparse.SUPPRESS)
    return parser


def _time(micros: int | None) -> str:
    if micros is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(micros / 1e6, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(info: TokenInfo) -> str:
    role = "admin" if info.admin else "user"
    state = f"revoked {_time(info.revoke_time)}" if info.revoke_time else "active"
    return f"{info.id}  {info.user}  {role}  created {_time(info.create_time)}  {state}  {info.description}"


def main(argv: Sequence[str]) -> int:
    """Runs one token command; returns the exit code."""
    args = _parser().parse_args(argv)
    config_file = args.sub_config or args.config
    config = ServerConfig.from_file(config_file) if config_file else ServerConfig()
    config = config.with_env()
    database_url = args.sub_database_url or args.database_url
    if database_url:
        config.database_url = database_url
    resolved = config.resolved()
    db = Database(resolved.database_url, resolved.sqlite_synchronous)
    try:
        upgrade(db.engine)
        store = TokenStore(db)
        if args.action == "create":
            try:
                token, info = store.create(args.user, admin=args.admin, description=args.description)
            except ValueError as error:
                print(f"argo-server token: {error}", file=sys.stderr)
                return 2
            print(token)
            print(f"token {info.id} for {info.user}{' (admin)' if info.admin else ''}: shown once, "
                  "store it now", file=sys.stderr)
            return 0
        if args.action == "list":
            for info in store.list(args.user):
                print(_line(info))
            return 0
        if not store.revoke(args.id):
            print(f"argo-server token: no active token {args.id!r}", file=sys.stderr)
            return 3
        print(f"revoked {args.id}", file=sys.stderr)
        return 0
    finally:
        db.dispose()
