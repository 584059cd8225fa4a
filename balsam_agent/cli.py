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


def _configure_telemetry() -> None:
    """Sets up the OpenTelemetry SDK when it is installed and an OTLP endpoint is configured."""
    import os

    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "balsam-agent"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


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
    _configure_telemetry()
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
    agent.start()
    done.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
