"""Spans of the agent, continuing the job's trace from the assignment to every status update.

Library code: only ``opentelemetry-api`` (the ``balsam-agent`` command installs the SDK, see
:mod:`balsam_agent.telemetry`). Per step attempt:

- ``balsam.step`` (CONSUMER): from the assignment's arrival to the attempt's end; a child of the
  relay's publish span (W3C ``traceparent`` in the AMQP headers, kept in the stored envelope so an agent
  restart continues the same trace). Status ERROR with the reason when the attempt fails or is refused.
- ``balsam.stage_in``, ``balsam.preprocess``, ``balsam.submit``, ``balsam.postprocess``,
  ``balsam.stage_out`` (and ``balsam.cancel``/``hold``/``release`` at the scheduler): the phase's work on
  a worker thread, ERROR with the reason when it fails.
- ``balsam.poll``: one for each poll result that changed the attempt (QUEUED → RUNNING → finished).
- ``balsam.status <STATE>`` (PRODUCER): one per status update; its context is the update's
  ``trace_context``, the parent of the server's ingestion span.

Every span carries ``argo.job_id``, ``argo.step_index``, ``argo.attempt``, ``argo.site`` and, once
known, ``argo.scheduler_id``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from argobalsam.argo.v1 import job_pb2
from argobalsam.balsam.v1 import assignment_pb2, status_pb2
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from balsam_agent.lifecycle import StepRun

tracer = trace.get_tracer("balsam_agent")

_W3C_KEYS = ("traceparent", "tracestate")
_ERROR_STATES = (job_pb2.STEP_STATE_FAILED, job_pb2.STEP_STATE_REJECTED)
_ENDED_KEPT = 256


def adopt_headers(envelope: assignment_pb2.AssignmentEnvelope, headers: Mapping[str, Any] | None) -> None:
    """Takes the W3C context of the AMQP headers (the relay's publish span) into the envelope, which
    the agent stores: the attempt's spans are its children, also after an agent restart."""
    if not headers or not isinstance(headers.get("traceparent"), str | bytes):
        return
    envelope.trace_context.clear()
    for key in _W3C_KEYS:
        value = headers.get(key)
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str):
            envelope.trace_context[key] = value


def sdk_active() -> bool:
    """Whether a tracing SDK records spans; without one the agent builds none (they would record
    nothing) and passes the assignment's context on unchanged."""
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def state_name(state: int) -> str:
    """``RUNNING`` for STEP_STATE_RUNNING (the number when unknown)."""
    return job_pb2.StepState.Name(state).removeprefix("STEP_STATE_") if state in job_pb2.StepState.values() \
        else str(state)


class StepTracing:
    """The open ``balsam.step`` span of every active attempt, and the spans made under it."""

    def __init__(self, site: str) -> None:
        self.site = site
        self._spans: dict[tuple[str, int], Span] = {}
        #: Spans of attempts that just ended: a poll span made after the end still finds its parent.
        self._ended: OrderedDict[tuple[str, int], Span] = OrderedDict()
        self._lock = threading.Lock()

    def attributes(self, run: StepRun) -> dict[str, Any]:
        """The ``argo.*`` attributes of the attempt."""
        attributes: dict[str, Any] = {"argo.job_id": run.job_id, "argo.step_index": run.step_index,
                                      "argo.attempt": run.attempt, "argo.site": self.site}
        if run.scheduler_id:
            attributes["argo.scheduler_id"] = run.scheduler_id
        return attributes

    def step_span(self, run: StepRun) -> Span:
        """The attempt's span, started at its first use (an attempt resumed after a restart gets a new
        one, marked ``argo.recovered``)."""
        key = (run.step_id, run.attempt)
        with self._lock:
            span = self._spans.get(key) or self._ended.get(key)
            if span is None:
                attributes = self.attributes(run)
                attributes.update({"messaging.system": "rabbitmq", "messaging.operation": "process"})
                if run.recovering:
                    attributes["argo.recovered"] = True
                span = tracer.start_span("balsam.step", context=propagate.extract(dict(run.envelope.trace_context)),
                                         kind=SpanKind.CONSUMER, attributes=attributes)
                self._spans[key] = span
            return span

    def context(self, run: StepRun) -> Context:
        """A context whose current span is the attempt's span."""
        return trace.set_span_in_context(self.step_span(run))

    def report(self, run: StepRun, update: status_pb2.StatusUpdate) -> None:
        """Makes the span of one status update and puts its context into ``update.trace_context``."""
        if not sdk_active():
            update.trace_context.update({key: value for key, value in run.envelope.trace_context.items()
                                         if key in _W3C_KEYS})
            return
        name = state_name(update.state)
        attributes = self.attributes(run)
        attributes.update({"argo.step_state": name, "argo.status.sequence": update.sequence})
        if update.HasField("exit_code"):
            attributes["argo.exit_code"] = update.exit_code
        span = tracer.start_span(f"balsam.status {name}", context=self.context(run), kind=SpanKind.PRODUCER,
                                 attributes=attributes)
        if update.state in _ERROR_STATES:
            span.set_status(Status(StatusCode.ERROR, update.reason or name))
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        update.trace_context.update(carrier)
        span.end()

    @contextmanager
    def work(self, run: StepRun, kind: str) -> Iterator[Span]:
        """The span of a phase's work (on the worker thread); an exception marks it ERROR."""
        if not sdk_active():
            yield trace.INVALID_SPAN
            return
        with tracer.start_as_current_span(f"balsam.{kind}", context=self.context(run),
                                          attributes=self.attributes(run), record_exception=False,
                                          set_status_on_exception=False) as span:
            try:
                yield span
            except Exception as error:
                span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
                raise

    def poll_changed(self, run: StepRun, previous: int, native_state: str, started: float) -> None:
        """A span for a poll result that changed the attempt (``started``: ``time.time()`` of the poll)."""
        if not sdk_active():
            return
        attributes = self.attributes(run)
        attributes.update({"argo.step_state.from": state_name(previous), "argo.step_state": state_name(run.state),
                           "argo.scheduler_state": native_state})
        span = tracer.start_span("balsam.poll", context=self.context(run), attributes=attributes,
                                 start_time=int(started * 1e9))
        if run.state in _ERROR_STATES:
            span.set_status(Status(StatusCode.ERROR, f"scheduler job {run.scheduler_id}: {native_state}"))
        span.end()

    def finish(self, run: StepRun, state: int, reason: str) -> None:
        """Ends the attempt's span (ERROR with the reason when it failed or was refused)."""
        if not sdk_active():
            return
        span = self.step_span(run)
        with self._lock:
            key = (run.step_id, run.attempt)
            self._spans.pop(key, None)
            self._ended[key] = span
            while len(self._ended) > _ENDED_KEPT:
                self._ended.popitem(last=False)
        span.set_attribute("argo.step_state", state_name(state))
        if run.scheduler_id:
            span.set_attribute("argo.scheduler_id", run.scheduler_id)
        if state in _ERROR_STATES:
            span.set_status(Status(StatusCode.ERROR, reason or state_name(state)))
        span.end()

    def close(self) -> None:
        """Ends the spans of attempts still active (the agent stops; they resume under new spans)."""
        with self._lock:
            spans, self._spans = list(self._spans.values()), {}
        for span in spans:
            span.set_attribute("argo.agent_stopped", True)
            span.end()


def now() -> float:
    """The wall-clock time spans are stamped with."""
    return time.time()
