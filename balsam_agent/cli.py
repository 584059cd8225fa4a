"""``balsam-agent``: run the agent of one site, or list the installed plugins.

    balsam-agent --site local --config agent.yaml
    balsam-agent plugins
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from balsam_agent.config import AgentConfig, ConfigError


def _plugins_command() -> int:
    from balsam_agent.plugin_manager import Plugins, get_plugin_manager

    plugins = Plugins(get_plugin_manager())
    for description in plugins.describe():
        print(f"{description.name} {description.version or '-'}")
        print(f"  hooks: {', '.join(description.hooks) or '-'}")
    print(f"schedulers: {', '.join(sorted(plugins.schedulers)) or '-'}")
    print(f"transfers: {', '.join(sorted(plugins.transfers)) or '-'}")
    print(f"site profiles: {', '.join(sorted(plugins.sites)) or '-'}")
    print(f"process hooks: {', '.join(sorted(plugins.process_hooks)) or '-'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``balsam-agent``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["plugins"]:
        return _plugins_command()
    parser = argparse.ArgumentParser(prog="balsam-agent", description="The Balsam agent of one ARGO site.")
    parser.add_argument("--site", required=True, help="site name (routing key of its assignment queue)")
    parser.add_argument("--config", type=Path, help="YAML configuration file")
    parser.add_argument("--log-level", default="INFO")
    options = parser.parse_args(args)
    logging.basicConfig(level=options.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")
    try:
        config = (AgentConfig.load(options.site, options.config) if options.config
                  else AgentConfig(site_name=options.site))
    except ConfigError as exc:
        print(f"balsam-agent: {exc}", file=sys.stderr)
        return 2
    from balsam_agent.telemetry import configure

    shutdown_telemetry = configure("balsam-agent")
    from balsam_agent.agent import Agent
    from balsam_agent.plugin_manager import PluginError

    try:
        agent = Agent(config)
    except (ConfigError, PluginError) as exc:
        print(f"balsam-agent: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.start()
    except (ValueError, OSError) as exc:
        print(f"balsam-agent: {exc}", file=sys.stderr)
        return 2
    # A refusal by the broker (login, permissions, certificate) cannot cure itself: stop and say why.
    while not done.wait(0.5):
        if agent.broker_refusal:
            print(f"balsam-agent: site {options.site}: {agent.broker_refusal}", file=sys.stderr)
            agent.stop()
            shutdown_telemetry()
            return 2
    agent.stop()
    shutdown_telemetry()  # flushes the last spans
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
