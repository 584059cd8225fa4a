"""Pure pieces of a ``globus-url-copy`` run: the argv, the child's environment, the reading of its errors.

Kept free of processes and files so that each piece is tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from balsam_gridftp.options import GridFTPOptions


def build_argv(
    options: GridFTPOptions, source: str, destination: str, *, recursive: bool, create_dirs: bool
) -> list[str]:
    """The argv of one ``globus-url-copy`` run (a list, never a shell string).

    :param recursive: copy a directory with its subdirectories (``-r``); both URLs end with ``/``.
    :param create_dirs: create missing destination directories (``-cd``), used for stage-out and for
        the temporary directory of a recursive stage-in.
    """
    argv = [options.command, "-q"]
    if options.fast:
        argv.append("-fast")
    if options.parallel_streams > 1:
        argv += ["-p", str(options.parallel_streams)]
    if recursive:
        argv.append("-r")
    if create_dirs:
        argv.append("-cd")
    if options.verify_checksum:
        argv.append("-verify-checksum")
        if options.checksum_alg:
            argv += ["-checksum-alg", options.checksum_alg]
    argv += ["-st", str(options.stall_timeout)]
    if options.tcp_buffer_size:
        argv += ["-tcp-bs", str(options.tcp_buffer_size)]
    if options.block_size:
        argv += ["-bs", str(options.block_size)]
    if options.subject:
        argv += ["-s", options.subject]
    argv += list(options.extra_args)
    # "--" is not understood by globus-url-copy; the URLs cannot start with "-" as they carry a scheme.
    argv += [source, destination]
    return argv


def child_env(options: GridFTPOptions, base: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: the agent's, the site's extra variables, then the site's credentials.

    Credentials configured for the site replace any the agent inherited, so one agent never transfers
    with another identity by accident.
    """
    env = dict(base)
    env.update(options.env)
    env.update(options.credential_env())
    return env


@dataclass(frozen=True)
class Failure:
    """What a failed run said, as the user should read it."""

    #: The server's or the tool's message, condensed to one line.
    reason: str
    #: Whether trying again may help (server down, connection reset, stalled).
    transient: bool
    #: The source does not exist.
    not_found: bool = False


# Messages that trying again will not change. Matched case-insensitively on the whole stderr.
_NOT_FOUND = re.compile(r"no such file or directory|path_not_found|file not found|does not exist",
                        re.IGNORECASE)
_PERMANENT = re.compile(
    r"permission denied|access denied|not permitted|authenticat\w* fail|authoriz\w* (fail|denied)|"
    r"gss_|globus_gsi|globus_credential|valid credentials|certificate|no space left|quota|"
    r"is a directory|not a directory|unknown option|usage:",
    re.IGNORECASE,
)
# Lines of globus-url-copy's output that only repeat where the error came from.
_NOISE = re.compile(r"^(error:\s*)?(globus_\w+:?\s*)*(the server responded with an error)?\s*$",
                    re.IGNORECASE)


def condense(stderr: str, limit: int = 400) -> str:
    """The informative part of ``globus-url-copy``'s stderr, as one line of at most ``limit`` chars."""
    kept: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line or _NOISE.match(line):
            continue
        if line.lower().startswith("error:"):
            line = line[len("error:"):].strip()
        if line not in kept:
            kept.append(line)
    text = " ".join(kept) or "no message"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify(returncode: int, stderr: str) -> Failure:
    """Reads a failed run: the reason, and whether a retry may help."""
    reason = condense(stderr)
    if returncode < 0:
        return Failure(f"globus-url-copy killed by signal {-returncode}: {reason}", transient=True)
    # Credential and permission problems first: their messages may say "could not be found" too.
    if _PERMANENT.search(stderr):
        return Failure(reason, transient=False)
    if _NOT_FOUND.search(stderr):
        return Failure(reason, transient=False, not_found=True)
    return Failure(reason, transient=True)
