# Shared helpers for scripts/services/* (sourced, not executed).
# All state of the CI services lives under $ARGO_CI_STATE (a fixed system directory, so the
# tests and several checkouts of the repo see the same services).

ARGO_CI_STATE=${ARGO_CI_STATE:-/var/lib/argo-ci}
SVC_NAME=${SVC_NAME:-$(basename "$0")}
SVC_T0=$(date +%s.%N)

log()  { printf '[%s %s] %s\n' "$SVC_NAME" "$(date -u +%H:%M:%S)" "$*"; }
warn() { printf '[%s %s] WARNING: %s\n' "$SVC_NAME" "$(date -u +%H:%M:%S)" "$*" >&2; }
die()  { printf '[%s %s] ERROR: %s\n' "$SVC_NAME" "$(date -u +%H:%M:%S)" "$*" >&2; exit 1; }

# elapsed seconds since the script started, e.g. "2.41"
elapsed() { awk -v a="$SVC_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# port_open PORT [HOST]: true if a TCP connect succeeds
port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# wait_port PORT TIMEOUT_S [HOST]: poll every 0.1 s
wait_port() {
  local i n=$(( $2 * 10 ))
  for ((i = 0; i < n; i++)); do port_open "$1" "${3:-127.0.0.1}" && return 0; sleep 0.1; done
  return 1
}

# pid_of PIDFILE COMM: print the pid if the pid file names a live process whose command
# name is COMM (guards against a stale pid file whose pid was reused)
pid_of() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(tr -dc '0-9' < "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  echo "$pid"
}

# stop_pidfile PIDFILE COMM [TIMEOUT_S]: TERM, wait, then KILL
stop_pidfile() {
  local pid i
  pid=$(pid_of "$1" "$2") || { rm -f "$1"; return 0; }
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < ${3:-10} * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
    sleep 0.1
  done
  warn "$2 (pid $pid) did not stop on TERM, sending KILL"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

usage() { echo "usage: $0 start|stop|status|check|env" >&2; exit 2; }
