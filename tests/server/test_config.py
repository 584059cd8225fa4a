"""Configuration sources, the loopback rule, group commit and the supervisor."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from argo_server.app import create_server, is_loopback
from argo_server.cli import _parser, build_config
from argo_server.config import ServerConfig
from argo_server.group_commit import GroupCommitter
from argo_server.supervisor import Supervised


def test_file_then_environment_then_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = tmp_path / "argo.yaml"
    config_file.write_text("amqp_prefix: fromfile\nknown_sites: [mira, vesta]\nsite_offline_after: 12\n"
                           "database_url: sqlite:///from-file.db\n")
    monkeypatch.setenv("ARGO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ARGO_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.delenv("ARGO_AMQP_PREFIX", raising=False)
    config = build_config(_parser().parse_args(["--config", str(config_file), "--data-root", "gsiftp://h/d/"]))
    assert config.amqp_prefix == "fromfile" and config.known_sites == ["mira", "vesta"]
    assert config.site_offline_after == 12
    assert config.database_url == "sqlite:///from-env.db"
    assert config.data_root == "gsiftp://h/d"
    config = build_config(_parser().parse_args(["--config", str(config_file), "--database-url", "sqlite:///x.db",
                                                "--site", "local"]))
    assert config.database_url == "sqlite:///x.db" and config.known_sites == ["local"]


def test_relay_mode_from_the_file_and_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGO_HOME", str(tmp_path))
    config_file = tmp_path / "argo.yaml"
    config_file.write_text("relay: thread\n")
    assert build_config(_parser().parse_args([])).relay == "process"
    assert build_config(_parser().parse_args(["--config", str(config_file)])).relay == "thread"
    assert build_config(_parser().parse_args(["--config", str(config_file), "--relay", "process"])).relay == "process"
    config_file.write_text("relay: fork\n")
    with pytest.raises(ValueError, match="^relay: must be one of process, thread, not 'fork'$"):
        build_config(_parser().parse_args(["--config", str(config_file)]))


@pytest.mark.parametrize("value", [-0.001, 1.5, "2ms", True, None])
def test_a_bad_relay_gather_is_refused_with_its_name(value: object) -> None:
    with pytest.raises(ValueError, match="^relay_gather: must be a number of seconds from 0 to 1"):
        ServerConfig(relay_gather=value).resolved()  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 0.002, 1])
def test_relay_gather_from_0_to_1_second_is_taken(value: float) -> None:
    assert ServerConfig(relay_gather=value).resolved().relay_gather == value


def test_defaults_live_in_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGO_HOME", str(tmp_path))
    config = ServerConfig().resolved()
    assert config.database_url == f"sqlite:///{tmp_path / 'argo.db'}"
    assert config.data_root == (tmp_path / "data").as_uri()
    assert config.listen == "127.0.0.1:50051"


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("listen_addr: 1.2.3.4:5\n")
    with pytest.raises(ValueError, match="listen_addr"):
        ServerConfig.from_file(config_file)


def test_loopback_only_without_allow_remote() -> None:
    assert is_loopback("127.0.0.1:0") and is_loopback("localhost:50051") and is_loopback("[::1]:5")
    assert not is_loopback("0.0.0.0:50051") and not is_loopback("10.1.2.3:1")
    with pytest.raises(ValueError, match="allow-remote"):
        create_server(ServerConfig(listen="0.0.0.0:0"), None, None)  # type: ignore[arg-type]


def test_group_commit_batches_and_isolates_failures() -> None:
    seen: list[list[int]] = []
    gate = threading.Event()

    def work(requests: list[int]) -> list[int]:
        gate.wait(5)
        seen.append(list(requests))
        if 13 in requests:
            raise ValueError("unlucky")
        return [request * 2 for request in requests]

    committer: GroupCommitter[int, int] = GroupCommitter(work)  # type: ignore[arg-type]
    results: dict[int, object] = {}

    def call(number: int) -> None:
        try:
            results[number] = committer.call(number)
        except ValueError as error:
            results[number] = error

    threads = [threading.Thread(target=call, args=(n,)) for n in (1, 2, 13, 4, 5)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert {n: r for n, r in results.items() if n != 13} == {1: 2, 2: 4, 4: 8, 5: 10}
    assert isinstance(results[13], ValueError)
    assert any(len(group) > 1 for group in seen)  # at least one commit served several callers


def test_group_commit_runs_a_lone_call_on_its_own_thread_and_serves_a_stream_of_callers() -> None:
    threads_seen: list[int] = []

    def work(requests: list[int]) -> list[int]:
        threads_seen.append(threading.get_ident())
        time.sleep(0.001)
        return [request + 1 for request in requests]

    committer: GroupCommitter[int, int] = GroupCommitter(work)  # type: ignore[arg-type]
    assert committer.call(1) == 2
    assert threads_seen == [threading.get_ident()]  # no hand-off to another thread
    results: dict[tuple[int, int], int] = {}

    def caller(slot: int) -> None:
        for number in range(150):
            results[slot, number] = committer.call(number)

    callers = [threading.Thread(target=caller, args=(slot,)) for slot in range(8)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(30)
    assert results == {(slot, number): number + 1 for slot in range(8) for number in range(150)}
    assert committer.groups < 1 + 8 * 150  # commits were shared
    assert len(set(threads_seen)) > 2  # and the lead passed between callers


def test_supervisor_restarts_a_failing_loop() -> None:
    runs: list[int] = []

    def loop(stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) < 3:
            raise ConnectionError("broker gone")
        stop.wait()

    supervised = Supervised("test-loop", loop, initial_backoff=0.01)
    supervised.start()
    deadline = threading.Event()
    for _ in range(200):
        if len(runs) >= 3:
            break
        deadline.wait(0.01)
    supervised.stop()
    assert len(runs) == 3 and supervised.restarts == 2
    assert isinstance(supervised.last_error, ConnectionError)
    assert not supervised.alive
