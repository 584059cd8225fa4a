"""The monitor web page: a read-only view of jobs, their steps and history, and the sites.

It is a thin HTTP front of the gRPC API: every JSON endpoint calls ``ArgoService``/``SiteService``
on the server's own port, forwarding the caller's bearer token, so the page sees exactly what the
caller may see through the API (the same authentication and ownership rules) and adds no query path
of its own. The browser page (``static/``) polls these endpoints, so it updates itself while jobs run.

    GET /                       the page (jobs table, job page and sites page by URL fragment)
    GET /api/jobs?owner=&state=&site=&group=&q=&page_size=&page_token=
    GET /api/jobs/{id}          one job with its steps
    GET /api/jobs/{id}/events   its history
    GET /api/sites              the sites and their liveness
    GET /metrics                Prometheus text of the server's metrics (argo_server.metrics)
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
from argobalsam.argo.v1 import argo_service_pb2 as svc
from argobalsam.argo.v1 import argo_service_pb2_grpc, job_pb2, site_service_pb2, site_service_pb2_grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from argo_server import metrics

log = logging.getLogger(__name__)

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}

#: How many jobs a free-text search scans at most to fill one page.
FREE_TEXT_SCAN_LIMIT = 5000

_GRPC_TO_HTTP = {grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
                 grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
                 grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
                 grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN}


def to_dict(message: Message) -> dict[str, Any]:
    """Protobuf → JSON-ready dict with the proto's field names and enum names."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _matches(job: job_pb2.Job, text: str) -> bool:
    haystack = [job.name, job.owner, job.group_identifier, job.email_address, job.state_reason]
    for step in job.steps:
        haystack += [step.target_site, step.executable, *step.executable_args, step.scheduler_id,
                     step.state_reason]
    needle = text.lower()
    return any(needle in h.lower() for h in haystack if h)


class MonitorApi:
    """The JSON endpoints, as plain methods over the gRPC stubs (testable without HTTP)."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials | None = None,
                 options: list[tuple[str, Any]] | None = None) -> None:
        self.channel = (grpc.secure_channel(target, credentials, options) if credentials
                        else grpc.insecure_channel(target, options))
        self.jobs = argo_service_pb2_grpc.ArgoServiceStub(self.channel)
        self.sites = site_service_pb2_grpc.SiteServiceStub(self.channel)

    def list_jobs(self, query: dict[str, str], metadata: list[tuple[str, str]]) -> dict[str, Any]:
        """One page of jobs; ``q`` filters by free text over ids, owner, group, sites, programs."""
        page_size = max(1, min(int(query.get("page_size") or 25), 200))
        request = svc.ListJobsRequest(page_size=page_size, page_token=query.get("page_token", ""),
                                      owner=query.get("owner", ""), site=query.get("site", ""),
                                      group_identifier=query.get("group", ""))
        state = query.get("state", "")
        if state:
            request.states.append(job_pb2.JobState.Value(f"JOB_STATE_{state.upper()}"))  # type: ignore[arg-type]
        text = query.get("q", "").strip()
        if not text:
            reply = self.jobs.ListJobs(request, metadata=metadata, timeout=10)
            return {"jobs": [to_dict(j) for j in reply.jobs], "next_page_token": reply.next_page_token}
        found: list[job_pb2.Job] = []
        scanned = 0
        request.page_size = 200
        while True:
            reply = self.jobs.ListJobs(request, metadata=metadata, timeout=10)
            for job in reply.jobs:
                scanned += 1
                if _matches(job, text):
                    found.append(job)
            if len(found) >= page_size or not reply.next_page_token or scanned >= FREE_TEXT_SCAN_LIMIT:
                break
            request.page_token = reply.next_page_token
        return {"jobs": [to_dict(j) for j in found[:page_size]], "next_page_token": "",
                "scanned": scanned}

    def get_job(self, job_id: str, metadata: list[tuple[str, str]]) -> dict[str, Any]:
        """One job with its steps."""
        return to_dict(self.jobs.GetJob(svc.GetJobRequest(name=f"jobs/{job_id}"), metadata=metadata,
                                        timeout=10).job)

    def job_events(self, job_id: str, metadata: list[tuple[str, str]]) -> dict[str, Any]:
        """The job's history (up to 1000 events)."""
        reply = self.jobs.ListJobEvents(svc.ListJobEventsRequest(parent=f"jobs/{job_id}", page_size=1000),
                                        metadata=metadata, timeout=10)
        return {"events": [to_dict(e) for e in reply.events]}

    def list_sites(self, metadata: list[tuple[str, str]]) -> dict[str, Any]:
        """Every site with its liveness."""
        reply = self.sites.ListSites(site_service_pb2.ListSitesRequest(), metadata=metadata, timeout=10)
        return {"sites": [to_dict(s) for s in reply.sites]}

    def close(self) -> None:
        """Closes the channel."""
        self.channel.close()


def _handler(api: MonitorApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "argo-monitor"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("monitor: " + format, *args)

        def do_GET(self) -> None:  # noqa: N802 - stdlib hook name
            url = urlsplit(self.path)
            if url.path in STATIC:
                name, content_type = STATIC[url.path]
                body = resources.files("argo_server.web").joinpath("static", name).read_bytes()
                return self._send(HTTPStatus.OK, body, content_type)
            if url.path == "/metrics":  # Prometheus text: aggregate counts only, no job's details
                exposition = metrics.prometheus_text()
                if exposition is None:
                    return self._json(HTTPStatus.NOT_FOUND, {"error": "metrics need the otel extra"})
                return self._send(HTTPStatus.OK, *exposition)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            auth = self.headers.get("Authorization")
            metadata = [("authorization", auth)] if auth else []
            parts = [p for p in url.path.split("/") if p]
            try:
                if parts == ["api", "jobs"]:
                    payload = api.list_jobs(query, metadata)
                elif len(parts) == 3 and parts[:2] == ["api", "jobs"]:
                    payload = api.get_job(parts[2], metadata)
                elif len(parts) == 4 and parts[:2] == ["api", "jobs"] and parts[3] == "events":
                    payload = api.job_events(parts[2], metadata)
                elif parts == ["api", "sites"]:
                    payload = api.list_sites(metadata)
                else:
                    return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})
            except ValueError as exc:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                return self._json(_GRPC_TO_HTTP.get(code, HTTPStatus.BAD_GATEWAY),
                                  {"error": exc.details(), "code": code.name})  # type: ignore[attr-defined]
            return self._json(HTTPStatus.OK, payload)

        def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler


class MonitorServer:
    """The HTTP server of the monitor page, in a background thread."""

    def __init__(self, listen: str, grpc_target: str,
                 credentials: grpc.ChannelCredentials | None = None,
                 options: list[tuple[str, Any]] | None = None) -> None:
        host, _, port = listen.rpartition(":")
        self.api = MonitorApi(grpc_target, credentials, options)
        self.httpd = ThreadingHTTPServer((host or "127.0.0.1", int(port)), _handler(self.api))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="argo-monitor", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.httpd.server_address[1])

    def start(self) -> MonitorServer:
        """Starts serving."""
        self.thread.start()
        log.info("monitor page on http://%s:%d/", self.httpd.server_address[0], self.port)
        return self

    def stop(self) -> None:
        """Stops serving and closes the channel."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.api.close()
