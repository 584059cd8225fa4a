"""The argo CLI against the fake server: outputs (text and --output json) and exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from argo_client import cli
from argobalsam.argo.v1 import job_pb2, site_pb2


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def submit(server: str, path: Path) -> str:
    code, out, err = run("--server", server, "--output", "json", "submit", str(path))
    assert code == 0, err
    return json.loads(out)["name"]


def test_submit_seed_file_json_output(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("submit", str(seed_path), "--server", fake_server.address, "-o", "json")

    assert code == 0, err
    created = json.loads(out)
    assert created["name"] in fake_server.state.jobs
    assert created["owner"] == "bob"
    assert created["state"] == "JOB_STATE_PENDING"
    assert [s["target_site"] for s in created["steps"]] == ["argo_cluster", "vesta"]
    assert created["steps"][1]["scheduler_args"] == ["--mode=script"]


def test_submit_text_output_and_dry_run(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("--server", fake_server.address, "submit", "--dry-run", str(seed_path))
    assert code == 0
    assert out.startswith("valid:") and "argo_cluster -> vesta" in out
    assert not fake_server.state.jobs

    code, out, _ = run("--server", fake_server.address, "submit", str(seed_path))
    assert code == 0
    [name] = fake_server.state.jobs
    assert out.startswith(f"created: {name}  PENDING  2 steps")


def test_submit_api_yaml_defaults_owner_to_local_user(fake_server, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli.getpass, "getuser", lambda: "carol")
    path = tmp_path / "job.yaml"
    path.write_text("steps:\n  - target_site: local\n    executable: echo\n    executable_args: [hi]\n    nodes: 1\n")
    name = submit(fake_server.address, path)
    assert fake_server.state.jobs[name].owner == "carol"


def test_submit_several_documents_in_one_batch(fake_server, seed_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed = json.loads(seed_path.read_text())
    path = tmp_path / "many.json"
    path.write_text(json.dumps([seed, seed, seed]))
    code, out, _ = run("--server", fake_server.address, "submit", str(path), "-o", "json")
    assert code == 0
    assert len(json.loads(out)["jobs"]) == 3 == len(fake_server.state.jobs)


def test_bad_file_exits_2_naming_each_field(fake_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"username": "bob", "jobs": [{"nodes": 1}, {"nodes": "two", "colour": "red"}]}))

    code, out, err = run("--server", fake_server.address, "submit", str(path))

    assert code == cli.EXIT_USER_ERROR
    assert out == ""
    lines = err.splitlines()
    assert "  jobs[1].nodes: must be an integer, not a string" in lines
    assert any(line.startswith("  jobs[1].colour: unknown field") for line in lines)
    assert fake_server.state.create_calls == 0


def test_server_field_violations_print_one_per_line(fake_server, seed_path, tmp_path) -> None:  # type: ignore[no-untyped-def]
    seed = json.loads(seed_path.read_text())
    seed["jobs"][1]["nodes"] = 0
    path = tmp_path / "zero.json"
    path.write_text(json.dumps(seed))

    code, _, err = run("--server", fake_server.address, "submit", str(path))

    assert code == cli.EXIT_USER_ERROR
    assert err.splitlines() == ["argo submit: invalid job", "  job.steps[1].nodes: must be >= 1"]


def test_list_filters_pages_and_json(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    names = [submit(fake_server.address, seed_path) for _ in range(3)]
    run("--server", fake_server.address, "cancel", names[0])

    code, out, _ = run("--server", fake_server.address, "list", "--page-size", "2", "-o", "json")
    assert code == 0
    page = json.loads(out)
    assert [job["name"] for job in page["jobs"]] == names[::-1][:2] and page["next_page_token"]

    code, out, _ = run("--server", fake_server.address, "list", "--page-size", "2", "--page-token",
                       page["next_page_token"], "-o", "json")
    assert [job["name"] for job in json.loads(out)["jobs"]] == [names[0]]

    code, out, _ = run("--server", fake_server.address, "list", "--page-size", "1", "--all", "-o", "json")
    assert [job["name"] for job in json.loads(out)["jobs"]] == names[::-1]

    code, out, _ = run("--server", fake_server.address, "list", "--state", "pending", "--state", "held",
                       "--owner", "bob", "--site", "vesta", "--since", "1h")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["JOB", "STATE", "OWNER", "GROUP", "STEP", "CREATED"]
    assert sorted(row.split()[0] for row in rows[1:]) == sorted(n.removeprefix("jobs/") for n in names[1:])

    code, _, err = run("--server", fake_server.address, "list", "--state", "sleeping")
    assert code == cli.EXIT_USER_ERROR and "states: must be one of" in err
    code, _, err = run("--server", fake_server.address, "list", "--since", "last tuesday")
    assert code == cli.EXIT_USER_ERROR and "--since" in err


def test_show_prints_steps_and_history(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    name = submit(fake_server.address, seed_path)
    state = fake_server.state
    state.set_state(name, job_pb2.JOB_STATE_RUNNING, step=0, step_state=job_pb2.STEP_STATE_SUCCEEDED,
                    scheduler_id="4711.argo", exit_code=0)
    state.set_state(name, job_pb2.JOB_STATE_FAILED, step=1, step_state=job_pb2.STEP_STATE_FAILED,
                    reason="runjob exited with 3", phase=job_pb2.STEP_PHASE_RUN, scheduler_id="98765", exit_code=3)

    code, out, _ = run("--server", fake_server.address, "show", name.removeprefix("jobs/"))

    assert code == 0
    assert out.startswith(f"{name}  FAILED")
    step_rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert step_rows[0][:6] == ["0", "argo_cluster", "SUCCEEDED", "1", "4711.argo", "0"]
    assert step_rows[1][:6] == ["1", "vesta", "FAILED", "1", "98765", "3"]
    assert "step 1 failed in RUN: runjob exited with 3" in out
    history = out.split("History:")[1]
    assert "WAITING -> FAILED" in history and "phase RUN" in history

    code, out, _ = run("--server", fake_server.address, "show", name, "-o", "json")
    shown = json.loads(out)
    assert shown["job"]["steps"][1]["failed_phase"] == "STEP_PHASE_RUN"
    assert [event["reason"] for event in shown["events"]] == ["created", "", "runjob exited with 3"]


def test_verbs_and_their_exit_codes(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    name = submit(fake_server.address, seed_path)
    server = ("--server", fake_server.address)

    assert run(*server, "hold", name, "--reason", "wait")[:2] == (0, f"{name}: HELD\n")
    code, out, _ = run(*server, "release", name, "-o", "json")
    assert code == 0 and json.loads(out)["state"] == "JOB_STATE_PENDING"
    code, _, err = run(*server, "release", name)
    assert code == cli.EXIT_USER_ERROR and "PENDING" in err
    assert run(*server, "cancel", name)[0] == 0
    assert run(*server, "retry", name)[:2] == (0, f"{name}: PENDING\n")
    code, _, err = run(*server, "cancel", "jobs/unknown")
    assert code == cli.EXIT_NOT_FOUND and "not found" in err
    code, _, _ = run("--server", "127.0.0.1:1", "--timeout", "1", "show", name)
    assert code == cli.EXIT_SERVER_ERROR


def test_sites_text_and_json(fake_server) -> None:  # type: ignore[no-untyped-def]
    heartbeat = site_pb2.Site(
        name="sites/vesta", online=True, agent_version="0.1.0", scheduler="cobalt", hostname="vestalac1",
        plugins=[site_pb2.PluginInfo(name="balsam-cobalt", version="0.1.0", hooks=["balsam_schedulers"])],
        capacity=site_pb2.SiteCapacity(active_steps=3),
    )
    heartbeat.last_heartbeat_time.GetCurrentTime()
    fake_server.state.sites = [site_pb2.Site(name="sites/mira", online=False), heartbeat]

    code, out, _ = run("--server", fake_server.address, "sites")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[1][:3] == ["mira", "offline", "never"]
    assert rows[2][0:2] == ["vesta", "online"] and "balsam-cobalt" in out and "cobalt" in rows[2]
    assert "3" in rows[2]

    code, out, _ = run("--server", fake_server.address, "sites", "-o", "json")
    sites = json.loads(out)["sites"]
    assert [site["name"] for site in sites] == ["sites/mira", "sites/vesta"]
    assert sites[1]["capacity"]["active_steps"] == 3


def _finish_later(state: Any, name: str, final: int) -> threading.Thread:
    def run_steps() -> None:
        time.sleep(0.2)
        state.set_state(name, job_pb2.JOB_STATE_RUNNING, step=0, step_state=job_pb2.STEP_STATE_RUNNING)
        state.set_state(name, job_pb2.JOB_STATE_RUNNING, step=1, step_state=job_pb2.STEP_STATE_QUEUED)
        step_state = job_pb2.STEP_STATE_SUCCEEDED if final == job_pb2.JOB_STATE_SUCCEEDED else job_pb2.STEP_STATE_FAILED
        state.set_state(name, final, step=1, step_state=step_state)

    thread = threading.Thread(target=run_steps)
    thread.start()
    return thread


def test_watch_one_job_exits_0_on_success(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    name = submit(fake_server.address, seed_path)
    worker = _finish_later(fake_server.state, name, job_pb2.JOB_STATE_SUCCEEDED)
    code, out, _ = run("--server", fake_server.address, "watch", name)
    worker.join()

    assert code == cli.EXIT_OK
    lines = out.splitlines()
    assert "PENDING" in lines[0] and "  0%" in lines[0]
    # The watch may coalesce quick changes; the last line is always the terminal state.
    assert "[########################] 100%  SUCCEEDED" in lines[-1]
    assert "step 2/2 vesta SUCCEEDED" in lines[-1]


def test_progress_line_shows_the_current_step(seed_path) -> None:  # type: ignore[no-untyped-def]
    from argo_client.progress import progress_line
    from argo_client.submission import load_submission

    [job] = load_submission(seed_path)
    job.name = "jobs/j1"
    job.state = job_pb2.JOB_STATE_RUNNING
    job.current_step = 1
    job.steps[0].state = job_pb2.STEP_STATE_SUCCEEDED
    job.steps[1].state = job_pb2.STEP_STATE_QUEUED
    job.steps[1].scheduler_id = "123"
    # Step 1 done (1.0) and step 2 at QUEUED (6 of 10 phases): (1 + 0.6) / 2 = 80%.
    assert progress_line(job) == "j1  [###################.....]  80%  RUNNING    step 2/2 vesta QUEUED (123)"


def test_watch_exits_1_when_the_job_fails_and_streams_json(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    name = submit(fake_server.address, seed_path)
    worker = _finish_later(fake_server.state, name, job_pb2.JOB_STATE_FAILED)
    code, out, _ = run("--server", fake_server.address, "watch", name, "-o", "json")
    worker.join()

    assert code == cli.EXIT_NOT_SUCCEEDED
    changes = [json.loads(line) for line in out.splitlines()]
    assert changes[0]["job"]["state"] == "JOB_STATE_PENDING"
    assert changes[-1]["job"]["state"] == "JOB_STATE_FAILED"


def test_watch_without_job_follows_every_active_job(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    first, second, done = (submit(fake_server.address, seed_path) for _ in range(3))
    fake_server.state.set_state(done, job_pb2.JOB_STATE_CANCELLED)
    workers = [_finish_later(fake_server.state, first, job_pb2.JOB_STATE_SUCCEEDED),
               _finish_later(fake_server.state, second, job_pb2.JOB_STATE_SUCCEEDED)]
    code, out, _ = run("--server", fake_server.address, "watch")
    for worker in workers:
        worker.join()

    assert code == cli.EXIT_OK
    assert done.removeprefix("jobs/") not in out
    for name in (first, second):
        assert any(line.startswith(name.removeprefix("jobs/")) and "SUCCEEDED" in line for line in out.splitlines())

    assert run("--server", fake_server.address, "watch")[:2] == (0, "no active jobs\n")


def test_watch_display_redraws_in_place_on_a_terminal(seed_path) -> None:  # type: ignore[no-untyped-def]
    from argo_client.progress import WatchDisplay
    from argo_client.submission import load_submission

    [job] = load_submission(seed_path)
    job.name = "jobs/a"
    stream = io.StringIO()
    display = WatchDisplay(stream, live=True)
    display.update(job)
    job.state = job_pb2.JOB_STATE_RUNNING
    display.update(job)
    display.update(job)  # unchanged: nothing drawn

    assert stream.getvalue().count("\x1b[1F\x1b[J") == 1
    assert stream.getvalue().endswith("RUNNING    step 1/2 argo_cluster UNSPECIFIED\n")


def test_help_documents_exit_codes() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "exit codes:" in out and "3  not found" in out and "4  server unavailable" in out
    assert run("frobnicate")[0] == 2


def test_demo_is_imported_lazily(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import types

    calls: list[list[str]] = []
    fake = types.ModuleType("argo_client.demo")

    def fake_main(args: list[str]) -> int:
        calls.append(args)
        return 0

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "argo_client.demo", fake)
    import argo_client

    monkeypatch.setattr(argo_client, "demo", fake, raising=False)
    assert run("demo", "--keep", "x")[0] == 0
    assert calls == [["--keep", "x"]]


def test_config_file_and_environment_reach_the_cli(fake_server, seed_path, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.yaml"
    config.write_text(f"server: {fake_server.address}\ntoken: from-file\n")
    monkeypatch.setenv("ARGO_CONFIG", str(config))
    assert run("submit", str(seed_path))[0] == 0
    assert fake_server.state.metadata[-1]["authorization"] == "Bearer from-file"

    monkeypatch.setenv("ARGO_TOKEN", "from-env")
    assert run("list")[0] == 0
    assert fake_server.state.metadata[-1]["authorization"] == "Bearer from-env"

    assert run("list", "--token", "from-flag")[0] == 0
    assert fake_server.state.metadata[-1]["authorization"] == "Bearer from-flag"

    config.write_text("nonsense: 1\n")
    code, _, err = run("list")
    assert code == cli.EXIT_USER_ERROR and "unknown keys nonsense" in err


def test_console_script_runs(fake_server, seed_path) -> None:  # type: ignore[no-untyped-def]
    argo = Path(sys.executable).with_name("argo")
    result = subprocess.run([str(argo), "--server", fake_server.address, "submit", str(seed_path), "-o", "json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] in fake_server.state.jobs


@pytest.mark.parametrize("text", ["2h", "90m", "2024-05-01", "2024-05-01T12:00:00+02:00"])
def test_parse_time_accepts_ages_and_iso(text: str) -> None:
    from datetime import datetime, timezone

    now = datetime(2024, 6, 1, tzinfo=timezone.utc)
    moment = cli.parse_time(text, now)
    assert moment.tzinfo is not None and moment < now
