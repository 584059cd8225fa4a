#!/usr/bin/env bash
# The quick start: sets up what is missing and runs the seed's two-step workflow on the local site.
#   - a Python venv (.venv) with the project installed
#   - RabbitMQ from the distribution's packages if no broker answers on 127.0.0.1:5672, started here
#     and stopped again at the end (a broker that was already running is left alone)
# then `argo demo`, which starts an embedded argo-server (SQLite) and a local-site balsam-agent,
# submits the workflow, shows its progress and stops them. Extra arguments go to `argo demo`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '==> %s\n' "$*"; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x .venv/bin/python ]; then
  python=$(scripts/pick-python)
  say "creating the Python environment (.venv) with $python"
  if ! "$python" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    sudo_ apt-get -o DPkg::Lock::Timeout=600 update -qq
    sudo_ apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends python3-venv
    "$python" -m venv .venv
  fi
fi
if ! .venv/bin/python -c 'import argo_client, argo_server, balsam_agent' 2>/dev/null; then
  say "installing ARGO & Balsam into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ./clients/python -e .
fi

started_broker=0
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  say "no RabbitMQ broker answers on 127.0.0.1:5672: installing and starting one"
  if ! command -v rabbitmq-server >/dev/null; then
    sudo_ apt-get -o DPkg::Lock::Timeout=600 update -qq
    sudo_ apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends rabbitmq-server
  fi
  sudo_ scripts/services/rabbitmq start
  started_broker=1
fi
stop_broker() { if [ "$started_broker" = 1 ]; then say "stopping the broker started for the demo"; sudo_ scripts/services/rabbitmq stop; fi; }
trap stop_broker EXIT

say "running the seed workflow (argo demo)"
.venv/bin/argo demo "$@"
