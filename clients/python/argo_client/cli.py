"""The ``argo`` command: submit, list, show, watch and steer jobs; list sites.

Every command takes ``--output json`` (protobuf JSON with the proto's field names). Exit codes are in
:data:`EPILOG`.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from argobalsam.argo.v1 import argo_service_pb2, job_pb2, site_service_pb2

from argo_client import render, tracing
from argo_client.client import TERMINAL_JOB_STATES, ArgoClient, job_state
from argo_client.config import ConfigError
from argo_client.errors import (
    AlreadyExists,
    ArgoError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SubmissionError,
    Unauthenticated,
)
from argo_client.progress import WatchDisplay
from argo_client.submission import load_submission, parse_submission_text

EXIT_OK = 0
EXIT_NOT_SUCCEEDED = 1
EXIT_USER_ERROR = 2
EXIT_NOT_FOUND = 3
EXIT_SERVER_ERROR = 4

EPILOG = """\
exit codes:
  0  success
  1  argo watch: a watched job ended other than SUCCEEDED
  2  user error: bad input file or arguments, invalid argument, verb not allowed in the job's state,
     refused credentials
  3  not found: no such job or site (or not yours)
  4  server unavailable or server error

configuration (first found wins): flags, then environment (ARGO_SERVER, ARGO_TLS_CA, ARGO_TLS_CERT,
ARGO_TLS_KEY, ARGO_TOKEN), then the config file ($ARGO_CONFIG or ~/.config/argo/config.yaml, keys
server, tls_ca, tls_cert, tls_key, token); the default server is 127.0.0.1:50051.
"""

_ACTIVE_STATES = ("pending", "running", "held")


class UsageError(Exception):
    """A command-line value that cannot be used (exit code 2)."""


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A point in time: ISO 8601 (``2024-05-01``, ``2024-05-01T12:00``) or an age (``90m``, ``2h``, ``7d``).

    :raises UsageError: for anything else.
    """
    now = now or datetime.now(timezone.utc)
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return now - timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since/--until: {text!r} is neither an ISO 8601 time nor an age like 2h or 7d") from None
    return moment if moment.tzinfo else moment.astimezone()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``argo`` (global options are accepted before or after the command)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a subcommand's unset option from overwriting the same option given before it.
    common.add_argument("--server", default=argparse.SUPPRESS, help="server address host:port")
    common.add_argument("--tls-ca", default=argparse.SUPPRESS, metavar="FILE",
                        help="CA certificate of the server (turns TLS on)")
    common.add_argument("--tls-cert", default=argparse.SUPPRESS, metavar="FILE", help="client certificate")
    common.add_argument("--tls-key", default=argparse.SUPPRESS, metavar="FILE", help="client certificate key")
    common.add_argument("--token", default=argparse.SUPPRESS, help="bearer token")
    common.add_argument("--output", "-o", choices=("text", "json"), default=argparse.SUPPRESS,
                        help="output format (json: protobuf JSON)")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, metavar="SECONDS",
                        help="deadline of each call (default 30)")

    parser = argparse.ArgumentParser(
        prog="argo", parents=[common], epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Submit and follow ARGO workflows (jobs made of steps that run at HPC sites).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help_text, description=help_text,
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)

    submit = command("submit", "submit a job file: the seed's JSON ('jobs' list) or the API's YAML/JSON ('steps')")
    submit.add_argument("file", help="submission file, or - for standard input")
    submit.add_argument("--dry-run", action="store_true", help="only validate (on the server); create nothing")
    submit.add_argument("--request-id", help="idempotency key (default: a new UUID; one job per file only)")

    listing = command("list", "list jobs, newest first")
    listing.add_argument("--owner")
    listing.add_argument("--state", action="append", default=[], help="job state (repeatable): "
                         "pending, running, held, succeeded, failed, cancelled, rejected")
    listing.add_argument("--site", help="only jobs with a step at this site")
    listing.add_argument("--group", help="group identifier")
    listing.add_argument("--since", help="created at or after: ISO 8601 time or age (2h, 7d)")
    listing.add_argument("--until", help="created before: ISO 8601 time or age")
    listing.add_argument("--page-size", type=int, default=0)
    listing.add_argument("--page-token", default="")
    listing.add_argument("--all", action="store_true", help="fetch every page")

    show = command("show", "show a job: its steps and its history")
    show.add_argument("job", help="jobs/ID or ID")

    watch = command("watch", "follow a job (or all active jobs) until they end; exit 0 only if all succeeded")
    watch.add_argument("job", nargs="?", help="jobs/ID or ID; default: every active job you can see")
    watch.add_argument("--owner", help="without JOB: only jobs of this owner")
    watch.add_argument("--group", help="without JOB: only jobs of this group")

    for verb, help_text in (("cancel", "cancel a job"), ("hold", "hold a job"),
                            ("release", "release a held job"), ("retry", "retry a failed/cancelled/rejected job")):
        sub = command(verb, help_text)
        sub.add_argument("job", help="jobs/ID or ID")
        if verb in ("cancel", "hold"):
            sub.add_argument("--reason", default="", help="recorded in the job's history")

    command("sites", "list sites with their agents' liveness")

    demo = command("demo", "run the seed's two-step workflow on a local server and agent")
    demo.add_argument("demo_args", nargs=argparse.REMAINDER, help="arguments of the demo")
    return parser


class _Context:
    """What a command needs: the parsed arguments, the output streams and a lazily made client."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.json = getattr(args, "output", "text") == "json"
        self._client: ArgoClient | None = None

    @property
    def client(self) -> ArgoClient:
        if self._client is None:
            args = self.args
            tls = None
            if any(getattr(args, name, None) for name in ("tls_ca", "tls_cert", "tls_key")):
                from argo_client.config import TlsConfig

                tls = TlsConfig(getattr(args, "tls_ca", None), getattr(args, "tls_cert", None),
                                getattr(args, "tls_key", None))
            self._client = ArgoClient(getattr(args, "server", None), tls=tls, token=getattr(args, "token", None),
                                      timeout=getattr(args, "timeout", 30.0))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def emit(self, value: Any, text: str) -> None:
        """Prints protobuf JSON of ``value`` with ``--output json``, else ``text``."""
        self.out.write((render.to_json(value) if self.json else text) + "\n")
        self.out.flush()


def _submit(ctx: _Context) -> int:
    args = ctx.args
    if args.file == "-":
        jobs = parse_submission_text(sys.stdin.read(), "<stdin>")
    else:
        jobs = load_submission(args.file)
    for job in jobs:
        # Without authentication the server cannot know who submits: default to the local user.
        if not job.owner:
            job.owner = getpass.getuser()
    if len(jobs) == 1:
        created = [ctx.client.create_job(jobs[0], args.request_id, validate_only=args.dry_run)]
    else:
        if args.request_id:
            raise UsageError("--request-id applies to a file with one job only")
        created = ctx.client.batch_create_jobs(jobs, validate_only=args.dry_run)
    verb = "valid" if args.dry_run else "created"
    lines = []
    for job in created:
        sites = " -> ".join(step.target_site or "?" for step in job.steps)
        label = job.name or "(not created)"
        lines.append(f"{verb}: {label}  {render.job_state_name(job.state)}  {len(job.steps)} steps: {sites}")
    value: Any = created[0] if len(created) == 1 else argo_service_pb2.BatchCreateJobsResponse(jobs=created)
    ctx.emit(value, "\n".join(lines))
    return EXIT_OK


def _list(ctx: _Context) -> int:
    args = ctx.args
    filters: dict[str, Any] = {
        "owner": args.owner, "states": [job_state(state) for state in args.state], "site": args.site,
        "group": args.group, "since": parse_time(args.since) if args.since else None,
        "until": parse_time(args.until) if args.until else None, "page_size": args.page_size,
    }
    if args.all:
        response = argo_service_pb2.ListJobsResponse(jobs=list(ctx.client.list_jobs(**filters)))
    else:
        response = ctx.client.list_jobs_page(page_token=args.page_token, **filters)
    text = render.jobs_table(response.jobs)
    if response.next_page_token:
        text += f"\n(more: --page-token {response.next_page_token} or --all)"
    ctx.emit(response, text)
    return EXIT_OK


def _show(ctx: _Context) -> int:
    job = ctx.client.get_job(ctx.args.job)
    events = list(ctx.client.list_job_events(job.name))
    ctx.emit({"job": job, "events": events}, render.job_detail(job, events))
    return EXIT_OK


def _watch(ctx: _Context) -> int:
    args = ctx.args
    display = None if ctx.json else WatchDisplay(ctx.out)
    final: dict[str, job_pb2.Job] = {}
    if args.job:
        watched = {ctx.client.get_job(args.job).name}
        stream = ctx.client.watch(args.job, send_initial=True)
    else:
        active = list(ctx.client.list_jobs(owner=args.owner, group=args.group, states=_ACTIVE_STATES))
        if not active:
            if not ctx.json:
                ctx.out.write("no active jobs\n")
            return EXIT_OK
        watched = {job.name for job in active}
        stream = ctx.client.watch(owner=args.owner, group=args.group, send_initial=True)
        for job in active:
            if display is not None:
                display.update(job)
    try:
        for change in stream:
            if change.job.name not in watched:
                continue
            if ctx.json:
                ctx.out.write(render.to_json(change).replace("\n", "") + "\n")
                ctx.out.flush()
            elif display is not None:
                display.update(change.job)
            if change.job.state in TERMINAL_JOB_STATES:
                final[change.job.name] = change.job
            else:
                final.pop(change.job.name, None)
            if watched <= final.keys():
                break
    finally:
        stream.close()
    for name in watched - final.keys():
        # The stream ended early (e.g. the server stopped): report where the job is now.
        final[name] = ctx.client.get_job(name)
    succeeded = all(job.state == job_pb2.JOB_STATE_SUCCEEDED for job in final.values())
    return EXIT_OK if succeeded else EXIT_NOT_SUCCEEDED


def _verb(name: str) -> Callable[[_Context], int]:
    def run(ctx: _Context) -> int:
        client = ctx.client
        job_ref = ctx.args.job
        if name == "cancel":
            job = client.cancel_job(job_ref, ctx.args.reason)
        elif name == "hold":
            job = client.hold_job(job_ref, ctx.args.reason)
        elif name == "release":
            job = client.release_job(job_ref)
        else:
            job = client.retry_job(job_ref)
        ctx.emit(job, f"{job.name}: {render.job_state_name(job.state)}")
        return EXIT_OK

    return run


def _sites(ctx: _Context) -> int:
    sites = ctx.client.list_sites()
    ctx.emit(site_service_pb2.ListSitesResponse(sites=sites), render.sites_table(sites) if sites else "no sites")
    return EXIT_OK


def _demo(ctx: _Context) -> int:
    # Imported only here: the demo starts servers and agents and pulls in their dependencies.
    from argo_client import demo

    args = list(ctx.args.demo_args)
    if args and args[0] == "--":
        args = args[1:]
    return int(demo.main(args) or 0)


_COMMANDS: dict[str, Callable[[_Context], int]] = {
    "submit": _submit, "list": _list, "show": _show, "watch": _watch, "sites": _sites, "demo": _demo,
    **{verb: _verb(verb) for verb in ("cancel", "hold", "release", "retry")},
}


def exit_code_for(error: ArgoError) -> int:
    """The documented exit code for a client error."""
    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(error, InvalidArgument | FailedPrecondition | AlreadyExists | SubmissionError | PermissionDenied
                  | Unauthenticated):
        return EXIT_USER_ERROR
    return EXIT_SERVER_ERROR


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Runs ``argo`` and returns its exit code (the console script exits with it).

    :param argv: the arguments without the program name (default ``sys.argv[1:]``).
    :param out: where results go (default standard output); ``err``: where errors go.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            # The demo's own options pass through untouched; any other unknown option is an error.
            args, unknown = parser.parse_known_args(argv)
            if unknown and args.command != "demo":
                parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 for --help
        return int(exc.code or 0)
    if args.command == "demo":
        args.demo_args = [*unknown, *args.demo_args]
    ctx = _Context(args, out, err)
    tracing.configure_from_env()
    try:
        with tracing.command_span(args.command):  # the client spans of its calls are children
            return _COMMANDS[args.command](ctx)
    except ArgoError as exc:
        err.write(f"argo {args.command}: {_error_text(exc)}\n")
        return exit_code_for(exc)
    except (UsageError, ConfigError) as exc:
        err.write(f"argo {args.command}: {exc}\n")
        return EXIT_USER_ERROR
    except OSError as exc:  # unreadable TLS files and the like
        err.write(f"argo {args.command}: {exc}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()


def _error_text(error: ArgoError) -> str:
    """The error's message with each field violation on its own indented line."""
    lines = [error.message]
    lines.extend(f"  {field}: {description}" if field else f"  {description}"
                 for field, description in error.field_violations)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
