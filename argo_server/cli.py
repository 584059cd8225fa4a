"""``argo-server``: run the server, or ``argo-server db upgrade`` to migrate its database."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .config import RELAY_MODES, ServerConfig

log = logging.getLogger("argo_server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="argo-server", description="ARGO server: durable workflows over gRPC.")
    parser.add_argument("--config", help="YAML file of settings (command-line options win)")
    parser.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:50051)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in $ARGO_HOME)")
    parser.add_argument("--amqp-url", help="RabbitMQ URL")
    parser.add_argument("--amqp-prefix", help="prefix of exchange and queue names (default argo)")
    parser.add_argument("--data-root", help="URL of the jobs' data area")
    parser.add_argument("--site", action="append", dest="sites", metavar="NAME",
                        help="a known site (repeat); when given, jobs for other sites are refused")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback listen address (needs --auth and --tls-cert/--tls-key)")
    parser.add_argument("--auth", action="store_true",
                        help="require bearer tokens (`argo-server token create`) and enforce job ownership")
    parser.add_argument("--tls-cert", help="PEM certificate chain of the gRPC server (TLS with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of the gRPC server")
    parser.add_argument("--tls-client-ca", help="require client certificates signed by this PEM CA")
    parser.add_argument("--monitor-listen", metavar="HOST:PORT",
                        help="serve the monitor web page here (default: no page)")
    parser.add_argument("--smtp", metavar="HOST:PORT",
                        help="send e-mail notices through this SMTP server (more settings: config file 'mail:')")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics (also on the monitor port)")
    parser.add_argument("--relay", choices=RELAY_MODES,
                        help="run the outbox relay in a child 'process' (default) or in a 'thread' of the server")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("command", nargs="*", help="'db upgrade' to migrate the database and exit")
    return parser


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Defaults, then the config file, then ``ARGO_*`` environment variables, then options."""
    config = ServerConfig.from_file(args.config) if args.config else ServerConfig()
    config = config.with_env()
    overrides = {"listen": args.listen, "database_url": args.database_url, "amqp_url": args.amqp_url,
                 "amqp_prefix": args.amqp_prefix, "data_root": args.data_root, "known_sites": args.sites,
                 "relay": args.relay}
    config = dataclasses.replace(config, **{key: value for key, value in overrides.items() if value})
    if args.allow_remote:
        config = dataclasses.replace(config, allow_remote=True)
    if args.auth:
        config = dataclasses.replace(config, auth=True)
    tls = {"tls_cert": args.tls_cert, "tls_key": args.tls_key, "tls_client_ca": args.tls_client_ca}
    config = dataclasses.replace(config, **{key: value for key, value in tls.items() if value})
    if args.monitor_listen:
        config = dataclasses.replace(config, monitor_listen=args.monitor_listen)
    if args.smtp:
        host, _, port = args.smtp.rpartition(":")
        config = dataclasses.replace(config, mail={**config.mail, "host": host, "port": int(port)})
    return config.resolved()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``argo-server`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:
        from .token_cli import main as token_main
        return token_main(argv[1:])
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = build_config(args)
    except ValueError as error:
        print(f"argo-server: {error}", file=sys.stderr)
        return 2
    if args.command:
        if list(args.command) != ["db", "upgrade"]:
            print(f"argo-server: unknown command {' '.join(args.command)!r}; valid: 'db upgrade'",
                  file=sys.stderr)
            return 2
        from .db import make_engine
        from .schema import upgrade
        engine = make_engine(config.database_url, sqlite_synchronous=config.sqlite_synchronous)
        upgrade(engine)
        engine.dispose()
        return 0

    from .app import ServerProcess
    from .telemetry import configure
    shutdown_telemetry = configure("argo-server", metrics_listen=args.metrics_listen or "")
    process = ServerProcess(config)
    try:
        process.start()
    except ValueError as error:
        print(f"argo-server: {error}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping.wait(1.0):
        pass
    process.stop(grace=5.0)
    shutdown_telemetry()  # flushes the last spans
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
