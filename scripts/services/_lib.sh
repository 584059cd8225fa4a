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
# name is COMM or COMM-wlm (guards against a stale pid file whose pid was reused)
pid_of() {
  local pid comm
  [ -f "$1" ] || return 1
  pid=$(tr -dc '0-9' < "$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = "$2" ] || [ "$comm" = "$2-wlm" ] || return 1
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

# svc_lock: serialise concurrent start/stop of the same service (two .ci/run at once).
# The lock is held on fd 9: every daemon is started with `9>&-` so it does not inherit it.
svc_lock() {
  mkdir -p "$ARGO_CI_STATE"
  exec 9>"$ARGO_CI_STATE/.lock-$SVC_NAME"
  flock -w 600 9 || die "timed out waiting for the lock $ARGO_CI_STATE/.lock-$SVC_NAME"
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

usage() { echo "usage: $0 start|stop|status|check|env" >&2; exit 2; }

# Daemons inherit open file descriptors: close whatever the caller passed beyond stdio (a
# CI runner's pipe kept open by a daemon could keep the runner waiting). 255 is bash's own.
for _fd in /proc/$$/fd/*; do
  _fd=${_fd##*/}
  case $_fd in 0|1|2|255) ;; *) eval "exec $_fd>&-" 2>/dev/null || true ;; esac
done
unset _fd

# Daemons inherit the working directory (globus-gridftp-server even records it as its
# -config-base-path): start everything from / so no daemon holds on to a checkout.
cd /
