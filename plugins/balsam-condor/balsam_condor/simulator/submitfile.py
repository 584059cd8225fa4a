"""Reading submit descriptions and DAG files the way the HTCondor manual describes them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MACRO = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.]*)\)")


class SubmitError(Exception):
    """A submit description or DAG file HTCondor would refuse (message worded like the real tool)."""


@dataclass
class SubmitDescription:
    """Commands (lower-cased names), custom attributes (``+Name``/``MY.Name``) and the queue count."""

    commands: dict[str, str] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)
    count: int = 1

    def expand(self, text: str, *, cluster: int, proc: int, depth: int = 0) -> str:
        """Expands ``$(name)`` macros: submit variables, ``Cluster``/``Process``, ``DOLLAR``."""
        if depth > 20:
            raise SubmitError("ERROR: macro expansion nested too deeply")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).lower()
            if name == "dollar":
                return "$"
            if name in ("cluster", "clusterid"):
                return str(cluster)
            if name in ("process", "procid"):
                return str(proc)
            value = self.commands.get(name, "")
            return self.expand(value, cluster=cluster, proc=proc, depth=depth + 1)

        return _MACRO.sub(replace, text)


def parse_submit(text: str, appended: list[str]) -> SubmitDescription:
    """Parses a submit description; ``appended`` lines (``-append``) go before the ``queue`` line."""
    description = SubmitDescription()
    lines = text.splitlines()
    queued = False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"queue\b", line, re.IGNORECASE):
            for extra in appended:
                _command(description, extra, "command line")
            rest = line[5:].strip()
            if rest:
                if not rest.isdigit():
                    raise SubmitError(f"ERROR: on Line {number} of submit file: unsupported queue "
                                      f"statement (simulator: only 'queue [N]')")
                description.count = int(rest)
            queued = True
            break
        _command(description, line, f"Line {number}")
    if not queued:
        # condor_submit: a description without a queue statement queues nothing.
        for extra in appended:
            _command(description, extra, "command line")
        description.count = 0
    return description


def _command(description: SubmitDescription, line: str, where: str) -> None:
    name, sep, value = line.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise SubmitError(f"ERROR: on {where} of submit file: Parse error: {line!r}")
    if name.startswith("+"):
        description.custom[name[1:]] = value
    elif name.lower().startswith("my."):
        description.custom[name[3:]] = value
    else:
        description.commands[name.lower()] = value


def split_arguments(value: str) -> list[str]:
    """Splits an ``arguments`` value: new syntax when it starts with a double quote, else old."""
    value = value.strip()
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise SubmitError("ERROR: arguments: missing closing double quote")
        return _split_new(value[1:-1])
    return _split_old(value)


def _split_new(body: str) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    in_word = False
    quoted = False
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == '"':
            if body[i:i + 2] != '""':
                raise SubmitError("ERROR: arguments: a double quote must be written twice")
            current.append('"')
            in_word = True
            i += 2
            continue
        if ch == "'":
            if quoted and body[i:i + 2] == "''":
                current.append("'")
                i += 2
                continue
            quoted = not quoted
            in_word = True
        elif ch in " \t" and not quoted:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(ch)
            in_word = True
        i += 1
    if quoted:
        raise SubmitError("ERROR: arguments: unterminated single quote")
    if in_word:
        words.append("".join(current))
    return words


def _split_old(value: str) -> list[str]:
    return [word.replace('\\"', '"') for word in value.split()]


def parse_environment(value: str) -> dict[str, str]:
    """Parses an ``environment`` value (new quoted syntax, or the old ``;``-separated one)."""
    value = value.strip()
    words = split_arguments(value) if value.startswith('"') else [w for w in value.split(";") if w]
    env = {}
    for word in words:
        name, sep, val = word.partition("=")
        if not sep:
            raise SubmitError(f"ERROR: environment: {word!r} is not NAME=VALUE")
        env[name.strip()] = val
    return env


@dataclass
class DagNode:
    """One ``JOB name submit_file [DIR dir]`` line of a DAG file."""

    name: str
    submit_file: str
    directory: str = ""
    parents: set[str] = field(default_factory=set)


def parse_dag(text: str) -> list[DagNode]:
    """Parses JOB and PARENT/CHILD lines; returns the nodes in an order that respects dependencies."""
    nodes: dict[str, DagNode] = {}
    edges: list[tuple[list[str], list[str]]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0].upper()
        if keyword in ("JOB", "NODE"):
            if len(words) < 3:
                raise SubmitError(f"ERROR: line {number}: JOB needs a node name and a submit file")
            node = DagNode(words[1], words[2])
            if len(words) >= 5 and words[3].upper() == "DIR":
                node.directory = words[4]
            nodes[node.name] = node
        elif keyword == "PARENT":
            upper = [w.upper() for w in words]
            if "CHILD" not in upper:
                raise SubmitError(f"ERROR: line {number}: PARENT without CHILD")
            split = upper.index("CHILD")
            edges.append((words[1:split], words[split + 1:]))
        # Other DAG commands (RETRY, VARS, SCRIPT, ...) are ignored by the simulator.
    for parents, children in edges:
        for name in parents + children:
            if name not in nodes:
                raise SubmitError(f"ERROR: node {name} is used in PARENT/CHILD but not defined")
        for child in children:
            nodes[child].parents.update(parents)
    ordered: list[DagNode] = []
    done: set[str] = set()
    while len(ordered) < len(nodes):
        ready = [n for n in nodes.values() if n.name not in done and n.parents <= done]
        if not ready:
            raise SubmitError("ERROR: a cycle was found in the DAG")
        for node in ready:
            ordered.append(node)
            done.add(node.name)
    return ordered
