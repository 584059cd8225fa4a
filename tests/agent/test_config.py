"""The agent's configuration file: every refusal names the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from balsam_agent.config import AgentConfig, ConfigError, resolve_site
from balsam_agent.records import SiteProfile


def test_a_file_sets_the_settings_it_names(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("amqp_prefix: p1\nheartbeat_interval: 0.5\nworkers: 4\nstate_dir: somewhere\n"
                    "site: {allowed_exec_dir: /opt/bin}\n")
    config = AgentConfig.load("local", path)
    assert (config.amqp_prefix, config.heartbeat_interval, config.workers) == ("p1", 0.5, 4)
    assert config.state_dir == Path("somewhere")
    assert config.database_path == Path("somewhere") / "agent.sqlite"
    assert AgentConfig.from_mapping("local", {}).prefetch == 500


@pytest.mark.parametrize(("data", "message"), [
    ({"prefech": 5}, "unknown configuration keys ['prefech']"),
    ({"heartbeat_interval": -1}, "heartbeat_interval: expected a number >= 0, got -1"),
    ({"heartbeat_interval": "soon"}, "heartbeat_interval: expected a number >= 0, got 'soon'"),
    ({"workers": 0}, "workers: expected an integer >= 1, got 0"),
    ({"prefetch": 2.5}, "prefetch: expected an integer >= 1, got 2.5"),
    ({"heartbeat_interval": True}, "heartbeat_interval: expected a number >= 0, got True"),
    ({"site": ["a"]}, "'site' must be a mapping"),
    ({"sqlite_synchronous": "off"}, "sqlite_synchronous: expected one of full, normal, got 'off'"),
])
def test_bad_settings_are_refused_by_name(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        AgentConfig.from_mapping("local", data)
    assert message in str(refused.value)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        AgentConfig.load("local", path)


def test_site_overrides_apply_to_the_offered_profile(tmp_path: Path) -> None:
    offered = {"local": SiteProfile(name="local", scheduler="local", options={"a": 1})}
    config = AgentConfig.from_mapping("local", {"state_dir": str(tmp_path), "site": {"max_nodes": 2,
                                                                                        "options": {"b": 2}}})
    profile = resolve_site(config, offered)
    assert (profile.max_nodes, profile.options) == (2, {"a": 1, "b": 2})
    assert profile.work_root == str((tmp_path / "work").resolve())
    with pytest.raises(ConfigError, match=r"unknown site fields \['max_node'\]"):
        resolve_site(AgentConfig.from_mapping("local", {"site": {"max_node": 2}}), offered)
    with pytest.raises(ConfigError, match="no plugin offers a site profile 'mars'"):
        resolve_site(AgentConfig.from_mapping("mars", {}), offered)
