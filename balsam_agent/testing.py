"""pytest plugin for plugin authors (registered through the ``pytest11`` entry point).

Fixtures:

- ``balsam_plugins``: a factory ``balsam_plugins(*plugin_objects)`` returning a
  :class:`~balsam_agent.plugin_manager.Plugins` facade with the built-ins plus the given plugins only
  (external plugins are not loaded), to check registration, duplicate names and hook behaviour.
- ``balsam_amqp_url`` / ``balsam_amqp_prefix``: the broker (``ARGO_TEST_AMQP_URL``) and a unique name
  prefix whose queues and exchanges are deleted after the test.
- ``balsam_agent``: a factory starting an in-process agent against the real broker
  (``balsam_agent(site="local", site_options={...}, plugins=[...])``) that returns an
  :class:`AgentHarness`: publish assignments, collect the agent's reports, wait for states.
- ``fake_commands``: ``fake_commands(tmp_path, {"qsub": script_text, ...})`` writes executable scripts
  into a directory and puts it first on PATH for the test (fake scheduler commands, as PSI/J's tests).

Imports of the agent, pika and protobuf happen inside the fixtures: pytest imports this module in every
run of the repository.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from argobalsam.balsam.v1 import assignment_pb2, status_pb2

    from balsam_agent.agent import Agent
    from balsam_agent.plugin_manager import Plugins

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def make_assignment(*, job_id: str, site: str, executable: str = "", args: Sequence[str] = (),
                    step_index: int = 0, attempt: int = 1, sequence: int = 1, nodes: int = 1,
                    processes_per_node: int = 1, wall_minutes: int = 0, num_evts: int = -1,
                    inputs: Mapping[str, str] | None = None, outputs: Mapping[str, Sequence[str]] | None = None,
                    preprocess: str = "", preprocess_args: Sequence[str] = (), postprocess: str = "",
                    postprocess_args: Sequence[str] = ()) -> assignment_pb2.AssignmentEnvelope:
    """Builds an ``Assign`` envelope as the server would send it.

    :param inputs: input file name → source URL.
    :param outputs: output file name → destination URLs.
    """
    from argobalsam.argo.v1 import job_pb2
    from argobalsam.balsam.v1 import assignment_pb2

    inputs = dict(inputs or {})
    outputs = dict(outputs or {})
    step = job_pb2.Step(
        name=f"jobs/{job_id}/steps/{step_index}", index=step_index, target_site=site, executable=executable,
        executable_args=list(args), input_files=list(inputs), output_files=list(outputs), nodes=nodes,
        processes_per_node=processes_per_node, num_evts=num_evts, wall_minutes=wall_minutes,
        preprocess=preprocess, preprocess_args=list(preprocess_args), postprocess=postprocess,
        postprocess_args=list(postprocess_args), attempt=attempt)
    envelope = assignment_pb2.AssignmentEnvelope(step_id=f"{job_id}/{step_index}", attempt=attempt,
                                                 sequence=sequence, site=site)
    envelope.time.GetCurrentTime()
    envelope.assign.step.CopyFrom(step)
    envelope.assign.job_id = job_id
    envelope.assign.owner = "tester"
    envelope.assign.step_count = step_index + 1
    for name, url in inputs.items():
        envelope.assign.inputs.add(name=name, source_url=url)
    for name, urls in outputs.items():
        envelope.assign.outputs.add(name=name, destination_urls=list(urls))
    return envelope


def make_control(action: str, *, step_id: str, site: str, attempt: int = 1, sequence: int = 2,
                 reason: str = "") -> assignment_pb2.AssignmentEnvelope:
    """Builds a ``cancel``, ``hold`` or ``release`` envelope."""
    from argobalsam.balsam.v1 import assignment_pb2

    envelope = assignment_pb2.AssignmentEnvelope(step_id=step_id, attempt=attempt, sequence=sequence, site=site)
    envelope.time.GetCurrentTime()
    if action == "cancel":
        envelope.cancel.reason = reason
    elif action == "hold":
        envelope.hold.reason = reason
    elif action == "release":
        envelope.release.SetInParent()
    else:
        raise ValueError(f"unknown action {action!r}; valid: cancel, hold, release")
    return envelope


class ReportCollector:
    """Consumes the agent's ``AgentReport``s from a queue bound to ``<prefix>.status``."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        import pika

        self.updates: list[status_pb2.StatusUpdate] = []
        self.heartbeats: list[status_pb2.Heartbeat] = []
        self.messages = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = self._conn.channel()
        channel.exchange_declare(f"{prefix}.status", "topic", durable=True)
        channel.exchange_declare(f"{prefix}.dead", "fanout", durable=True)
        queue = f"{prefix}.status"
        channel.queue_declare(queue, durable=True,
                              arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": f"{prefix}.dead"})
        channel.queue_bind(queue, f"{prefix}.status", routing_key="#")
        channel.basic_qos(prefetch_count=1000)
        channel.basic_consume(queue, self._on_message)
        self._thread = threading.Thread(target=self._run, name="report-collector", daemon=True)
        self._thread.start()

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        from argobalsam.balsam.v1 import status_pb2

        report = status_pb2.AgentReport.FromString(body)
        with self._cond:
            self.messages += 1
            if report.HasField("status"):
                self.updates.extend(report.status.updates)
            else:
                self.heartbeats.append(report.heartbeat)
            self._cond.notify_all()
        channel.basic_ack(method.delivery_tag)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._conn.process_data_events(time_limit=0.1)

    def wait_for(self, predicate: Callable[[list[status_pb2.StatusUpdate]], bool], timeout: float = 20.0) -> bool:
        """Waits until ``predicate(updates)`` is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.updates):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.2))
            return True

    def for_step(self, step_id: str, attempt: int | None = None) -> list[status_pb2.StatusUpdate]:
        """Updates of one step (one attempt), in the order received."""
        with self._cond:
            return [u for u in self.updates if u.step_id == step_id and (attempt is None or u.attempt == attempt)]

    def states(self, step_id: str, attempt: int | None = None) -> list[str]:
        """State names of one step's updates (``ACCEPTED``, ``SUBMITTED``, ...)."""
        from argobalsam.argo.v1 import job_pb2

        return [job_pb2.StepState.Name(u.state).removeprefix("STEP_STATE_")
                for u in self.for_step(step_id, attempt)]

    def wait_state(self, step_id: str, state: str, *, attempt: int | None = None, timeout: float = 20.0
                   ) -> status_pb2.StatusUpdate:
        """Waits for an update of ``step_id`` reaching ``state`` (a name such as ``SUCCEEDED``)."""
        from argobalsam.argo.v1 import job_pb2

        wanted = job_pb2.StepState.Value(f"STEP_STATE_{state}")

        def match(updates: list[status_pb2.StatusUpdate]) -> bool:
            return any(u.step_id == step_id and u.state == wanted and (attempt is None or u.attempt == attempt)
                       for u in updates)

        if not self.wait_for(match, timeout):
            raise AssertionError(f"{step_id} did not reach {state} in {timeout}s; saw {self.states(step_id)}: "
                                 f"{[u.reason for u in self.for_step(step_id) if u.reason]}")
        return next(u for u in self.for_step(step_id, attempt) if u.state == wanted)

    def close(self) -> None:
        """Stops consuming."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._conn.close()
        except Exception:
            pass


class AssignmentPublisher:
    """Publishes envelopes to ``<prefix>.assign`` as the server's relay does (persistent, confirmed)."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        import pika

        self.prefix = prefix
        self._declared: set[str] = set()
        self._lock = threading.Lock()
        self._conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self._channel = self._conn.channel()
        self._channel.exchange_declare(f"{prefix}.assign", "direct", durable=True)
        self._channel.confirm_delivery()

    def publish(self, envelope: assignment_pb2.AssignmentEnvelope | assignment_pb2.AssignmentBatch | bytes,
                site: str | None = None, message_type: str = "argobalsam.balsam.v1.AssignmentEnvelope") -> None:
        """Publishes one envelope, or a batch of them as the relay does, to its site; raw bytes (to test
        malformed bodies) go with ``message_type``."""
        import pika

        if isinstance(envelope, bytes):
            body, routing_key = envelope, site or ""
        else:
            body, message_type = envelope.SerializeToString(), envelope.DESCRIPTOR.full_name
            first = envelope.envelopes[0] if hasattr(envelope, "envelopes") else envelope
            routing_key = site if site is not None else first.site
        with self._lock:
            if routing_key not in self._declared:
                # As the server's relay: the site's queue exists before anything is published to it.
                from balsam_agent.amqp import declare_topology

                declare_topology(self._channel, self.prefix, routing_key)
                self._declared.add(routing_key)
            self._channel.basic_publish(
                f"{self.prefix}.assign", routing_key, body,
                properties=pika.BasicProperties(content_type="application/x-protobuf", delivery_mode=2,
                                                type=message_type))

    def close(self) -> None:
        """Closes the connection."""
        try:
            self._conn.close()
        except Exception:
            pass


class AgentHarness:
    """A running in-process agent with a publisher and a report collector on a unique prefix."""

    def __init__(self, agent: Agent, publisher: AssignmentPublisher, reports: ReportCollector) -> None:
        self.agent, self.publisher, self.reports = agent, publisher, reports

    @property
    def site(self) -> str:
        """The agent's site name."""
        return self.agent.site.name

    def assign(self, **fields: Any) -> str:
        """Publishes an assignment built by :func:`make_assignment` for this site; returns its step id."""
        envelope = make_assignment(site=self.site, **fields)
        self.publisher.publish(envelope)
        return envelope.step_id

    def control(self, action: str, step_id: str, **fields: Any) -> None:
        """Publishes a cancel/hold/release envelope for this site."""
        self.publisher.publish(make_control(action, step_id=step_id, site=self.site, **fields))


def delete_prefix(amqp_url: str, prefix: str, queues: Sequence[str]) -> None:
    """Deletes the queues and exchanges a test created under ``prefix``."""
    import pika

    try:
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    except Exception:
        return
    try:
        channel = conn.channel()
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in ("assign", "status", "dead"):
            channel.exchange_delete(f"{prefix}.{exchange}")
    except Exception:
        pass
    finally:
        try:
            conn.close()
        except Exception:
            pass


@pytest.fixture
def balsam_plugins() -> Callable[..., Plugins]:
    """Factory: ``balsam_plugins(*plugins)`` → a Plugins facade of the built-ins plus ``plugins``."""

    def make(*plugins: object) -> Plugins:
        from balsam_agent.plugin_manager import Plugins, get_plugin_manager

        return Plugins(get_plugin_manager(load_entry_points=False, extra_plugins=plugins))

    return make


@pytest.fixture
def balsam_amqp_url() -> str:
    """URL of the test broker (``ARGO_TEST_AMQP_URL``)."""
    return os.environ.get("ARGO_TEST_AMQP_URL", DEFAULT_AMQP_URL)


@pytest.fixture
def balsam_amqp_prefix(balsam_amqp_url: str) -> Iterator[str]:
    """A unique queue/exchange prefix; its status queue and exchanges are deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    delete_prefix(balsam_amqp_url, prefix, [f"{prefix}.status", f"{prefix}.dead"])


@pytest.fixture
def balsam_agent(tmp_path: Path, balsam_amqp_url: str, balsam_amqp_prefix: str
                 ) -> Iterator[Callable[..., AgentHarness]]:
    """Factory starting in-process agents: ``balsam_agent(site="local", site_options=..., plugins=...)``."""
    from balsam_agent.agent import Agent
    from balsam_agent.config import AgentConfig

    started: list[tuple[Agent, AssignmentPublisher, ReportCollector]] = []

    def start(site: str = "local", *, site_options: Mapping[str, Any] | None = None,
              plugins: Sequence[object] = (), state_dir: Path | None = None, heartbeat_interval: float = 5.0,
              prefix: str | None = None, reports: ReportCollector | None = None, **config: Any) -> AgentHarness:
        use_prefix = prefix or balsam_amqp_prefix
        collector = reports or ReportCollector(balsam_amqp_url, use_prefix)
        agent = Agent(AgentConfig(
            site_name=site, amqp_url=balsam_amqp_url, amqp_prefix=use_prefix,
            state_dir=state_dir or tmp_path / f"agent-{site}-{len(started)}", heartbeat_interval=heartbeat_interval,
            site=dict(site_options or {}), load_entry_points=False, extra_plugins=tuple(plugins), **config))
        agent.start()
        if not agent.wait_connected(20):
            raise RuntimeError("the agent could not connect to the broker")
        publisher = AssignmentPublisher(balsam_amqp_url, use_prefix)
        started.append((agent, publisher, collector))
        return AgentHarness(agent, publisher, collector)

    yield start
    queues = []
    for agent, publisher, collector in reversed(started):
        agent.stop()
        publisher.close()
        collector.close()
        queues.append(f"{agent.config.amqp_prefix}.assign.{agent.site.name}")
    delete_prefix(balsam_amqp_url, balsam_amqp_prefix, queues)


@pytest.fixture
def fake_commands(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, Mapping[str, str]], Path]:
    """``fake_commands(tmp_path, {"qsub": script_text})``: executable scripts first on PATH."""

    def install(directory: Path, commands: Mapping[str, str]) -> Path:
        bin_dir = directory / "fake-bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name, text in commands.items():
            path = bin_dir / name
            if not text.startswith("#!"):
                text = "#!/bin/sh\n" + text
            path.write_text(text)
            path.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        return bin_dir

    return install
