"""One trace per job: the whole span tree of the seed's two-step workflow, server and agent in one process."""

from __future__ import annotations

from argo_client import ArgoClient
from argo_client.legacy import job_from_legacy
from argobalsam.argo.v1 import job_pb2
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.telemetry.helpers import Stack, by_name, wait_for

CREATE = "argobalsam.argo.v1.ArgoService/CreateJob"
STEP_ATTRIBUTES = ("argo.job_id", "argo.step_index", "argo.attempt", "argo.site")


def run_job(stack: Stack, job: job_pb2.Job) -> job_pb2.Job:
    """Submits ``job`` under a test span (the application's own trace) and waits for its end."""
    with ArgoClient(stack.address) as client, trace.get_tracer("tests").start_as_current_span("submit"):
        created = client.create_job(job)
        return client.wait(created, timeout=90)


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan:
    """The span's parent among ``spans`` (fails when it has none there)."""
    assert span.parent is not None, f"{span.name} has no parent"
    matches = [p for p in spans if p.context.span_id == span.parent.span_id]
    assert matches, f"the parent of {span.name} was not recorded"
    return matches[0]


def chain(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    """Names from the root down to ``span``."""
    names = [span.name]
    while span.parent is not None:
        span = parent_of(span, spans)
        names.append(span.name)
    return names[::-1]


def of_step(spans: list[ReadableSpan], name: str, index: int) -> ReadableSpan:
    """The one span called ``name`` about step ``index``."""
    found = [s for s in by_name(spans, name) if s.attributes and s.attributes.get("argo.step_index") == index]
    assert len(found) == 1, f"{len(found)} spans {name} of step {index}: {[s.name for s in spans]}"
    return found[0]


def job_spans(spans: InMemorySpanExporter, job_id: str, last: str) -> list[ReadableSpan]:
    """Every finished span once the span named ``last`` of the job arrived."""

    def ready() -> list[ReadableSpan]:
        finished = list(spans.get_finished_spans())
        done = [s for s in finished if s.name == last and s.attributes and s.attributes.get("argo.job_id") == job_id]
        return finished if done else []

    return wait_for(ready, message=f"span {last}")


def test_seed_workflow_is_one_trace_across_server_and_agent(stack: Stack, spans: InMemorySpanExporter) -> None:
    job = run_job(stack, job_from_legacy(stack.submission))
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job
    job_id = job.name.rpartition("/")[2]
    job_spans(spans, job_id, "argo.status SUCCEEDED")
    wait_for(lambda: [s for s in by_name(list(spans.get_finished_spans()), "argo.status SUCCEEDED")
                      if s.attributes and s.attributes.get("argo.step_index") == 1], message="step 1's end")
    recorded = list(spans.get_finished_spans())
    root = by_name(recorded, "submit")[0]
    mine = [s for s in recorded if s.context.trace_id == root.context.trace_id]
    about_job = [s for s in recorded if s.attributes and s.attributes.get("argo.job_id") == job_id]
    # every span about the job, from both components, is in the application's trace
    assert about_job and all(s.context.trace_id == root.context.trace_id for s in about_job)
    assert {s.instrumentation_scope.name for s in about_job} >= {"argo_server", "balsam_agent"}

    # CLI/client → server: the server span is the child of the client span, itself the child of "submit"
    server_create = [s for s in by_name(mine, CREATE) if s.kind is SpanKind.SERVER][0]
    assert chain(server_create, mine) == ["submit", CREATE, CREATE]
    assert server_create.attributes is not None and server_create.attributes["argo.job_id"] == job_id

    prefix = stack.prefix
    publish = f"{prefix}.assign publish"
    step0 = of_step(mine, "balsam.step", 0)
    assert chain(step0, mine) == ["submit", CREATE, CREATE, publish, "balsam.step"]
    for phase in ("balsam.stage_in", "balsam.submit", "balsam.stage_out", "balsam.poll",
                  "balsam.status ACCEPTED", "balsam.status STAGING_IN", "balsam.status SUBMITTED",
                  "balsam.status STAGING_OUT", "balsam.status SUCCEEDED"):
        for index in (0, 1):
            span = [s for s in by_name(mine, phase) if s.attributes and s.attributes["argo.step_index"] == index]
            assert span, f"no {phase} for step {index}"
            assert parent_of(span[0], mine).name == "balsam.step", phase
            assert parent_of(span[0], mine).attributes["argo.step_index"] == index  # type: ignore[index]

    # only polls that changed the state make spans: at most QUEUED, RUNNING and the end per step
    for index in (0, 1):
        polls = [s for s in by_name(mine, "balsam.poll") if s.attributes and s.attributes["argo.step_index"] == index]
        assert 1 <= len(polls) <= 3
        assert [p.attributes["argo.step_state"] for p in polls][-1] != "RUNNING"  # type: ignore[index]

    # the server ingests each report under the agent's span; step 1 is dispatched in step 0's SUCCEEDED
    ingest = of_step(mine, "argo.status SUCCEEDED", 0)
    assert ingest.kind is SpanKind.CONSUMER
    assert parent_of(ingest, mine).name == "balsam.status SUCCEEDED"
    step1 = of_step(mine, "balsam.step", 1)
    assert chain(step1, mine) == [*chain(ingest, mine), publish, "balsam.step"]
    assert chain(of_step(mine, "argo.status SUCCEEDED", 1), mine)[-3:] == [
        "balsam.step", "balsam.status SUCCEEDED", "argo.status SUCCEEDED"]

    # attributes: every span about a step names job, step, attempt and site; the scheduler id once known
    for span in about_job:
        if span.name.startswith(("balsam.", "argo.status")):
            assert span.attributes is not None
            missing = [key for key in STEP_ATTRIBUTES if key not in span.attributes]
            assert not missing, f"{span.name} lacks {missing}"
            assert span.attributes["argo.site"] == "local" and span.attributes["argo.attempt"] == 1
    for name in ("balsam.step", "balsam.status SUCCEEDED", "argo.status SUCCEEDED"):
        for index in (0, 1):
            span = of_step(mine, name, index)
            assert span.attributes and span.attributes.get("argo.scheduler_id") == job.steps[index].scheduler_id
    assert all(s.status.status_code is not StatusCode.ERROR for s in about_job)


def test_failing_step_span_has_error_status_with_reason(stack: Stack, spans: InMemorySpanExporter) -> None:
    job = job_pb2.Job(owner="tester", steps=[job_pb2.Step(target_site="local", executable="fail3", nodes=1,
                                                          processes_per_node=1, wall_minutes=5)])
    done = run_job(stack, job)
    assert done.state == job_pb2.JOB_STATE_FAILED
    job_id = done.name.rpartition("/")[2]
    recorded = job_spans(spans, job_id, "argo.status FAILED")
    reason = done.steps[0].state_reason
    assert "3" in reason
    for name in ("balsam.step", "balsam.status FAILED", "argo.status FAILED"):
        span = of_step(recorded, name, 0)
        assert span.attributes and span.attributes["argo.job_id"] == job_id
        assert span.status.status_code is StatusCode.ERROR, name
        assert span.status.description and reason in span.status.description, (name, span.status.description)
    failed_poll = [s for s in by_name(recorded, "balsam.poll")
                   if s.attributes and s.attributes["argo.job_id"] == job_id
                   and s.attributes["argo.step_state"] == "FAILED"]
    assert failed_poll and failed_poll[0].status.status_code is StatusCode.ERROR
    # the phases before the failure succeeded
    assert of_step(recorded, "balsam.submit", 0).status.status_code is not StatusCode.ERROR


def test_jobs_of_one_batch_each_continue_from_their_own_publish_span(stack: Stack,
                                                                      spans: InMemorySpanExporter) -> None:
    """The relay sends a batch's envelopes for one site as one AssignmentBatch message: each envelope
    still carries the context of its own PRODUCER span, and each step's spans descend from it."""
    (stack.site_bin / "ok").write_text("#!/bin/sh\nexit 0\n")
    (stack.site_bin / "ok").chmod(0o755)
    steps = [job_pb2.Step(target_site="local", executable="ok", nodes=1, processes_per_node=1) for _ in range(3)]
    with ArgoClient(stack.address) as client, trace.get_tracer("tests").start_as_current_span("submit"):
        created = client.batch_create_jobs([job_pb2.Job(owner="tester", steps=[step]) for step in steps])
        ended = [client.wait(job, timeout=90) for job in created]
    assert all(job.state == job_pb2.JOB_STATE_SUCCEEDED for job in ended)
    ids = [job.name.rpartition("/")[2] for job in created]
    for job_id in ids:
        job_spans(spans, job_id, "argo.status SUCCEEDED")
    recorded = list(spans.get_finished_spans())
    root = by_name(recorded, "submit")[0]
    mine = [s for s in recorded if s.context.trace_id == root.context.trace_id]
    batch = "argobalsam.argo.v1.ArgoService/BatchCreateJobs"
    publish = f"{stack.prefix}.assign publish"
    publishes = set()
    for job_id in ids:
        (step,) = [s for s in by_name(mine, "balsam.step") if s.attributes and s.attributes["argo.job_id"] == job_id]
        assert chain(step, mine) == ["submit", batch, batch, publish, "balsam.step"]
        producer = parent_of(step, mine)
        assert producer.kind is SpanKind.PRODUCER and producer.attributes["argo.job_id"] == job_id  # type: ignore[index]
        publishes.add(producer.context.span_id)
    assert len(publishes) == 3
