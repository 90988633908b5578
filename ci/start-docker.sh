#!/usr/bin/env bash
# Make sure a Docker daemon answers; start Debian's dockerd when none does.
#
#   ci/start-docker.sh
#
# - A daemon that already answers (at $DOCKER_HOST, or at the default /var/run/docker.sock) is reused.
# - Otherwise dockerd is started in the background with no bridge and no iptables rules (berth's containers run
#   with NetworkMode none unless a stack opts in; the host's firewall is left alone), logging to $DOCKERD_LOG
#   (default /var/log/berth-dockerd.log, or /tmp/berth-dockerd.log when /var/log is not writable).
# - Stale pid files (a PID that is not alive, or alive but not the program the file is for) are removed; a live
#   dockerd that does not answer yet is waited for, never killed and never doubled. Nothing is killed.
# - Waits at most $START_DOCKER_TIMEOUT seconds (default 60) and prints one line naming the daemon in use.
# - BERTH_DOCKERD_ROOT=DIR (optional) runs a private daemon whose socket (DIR/docker.sock), pid file, exec-root and
#   data-root all live under DIR instead of the system locations; $DOCKER_HOST is then ignored.
# Idempotent. Needs root (or password-less sudo) only when it has to start the daemon.
set -euo pipefail

TIMEOUT=${START_DOCKER_TIMEOUT:-60}
DOCKERD_FLAGS=(--bridge=none --iptables=false --ip6tables=false)
if [ -n "${BERTH_DOCKERD_ROOT:-}" ]; then
  root=${BERTH_DOCKERD_ROOT%/}
  DEFAULT_SOCK=$root/docker.sock
  PIDFILE=$root/docker.pid
  CONTAINERD_PIDFILE=$root/exec/containerd/containerd.pid
  DOCKERD_FLAGS+=(--pidfile="$PIDFILE" --exec-root="$root/exec" --data-root="$root/data")
  unset DOCKER_HOST
else
  DEFAULT_SOCK=/var/run/docker.sock
  PIDFILE=/var/run/docker.pid
  CONTAINERD_PIDFILE=/var/run/docker/containerd/containerd.pid
fi
DOCKERD_FLAGS+=(--host="unix://$DEFAULT_SOCK")

say() { echo "start-docker: $*"; }
die() {
  echo "start-docker: $*" >&2
  exit 1
}

command -v docker >/dev/null 2>&1 || die "no docker CLI in PATH (run ci/install-deps.sh)"

# answers [HOST]: true when a daemon answers at HOST (default: the current environment).
answers() {
  if [ $# -gt 0 ]; then
    DOCKER_HOST=$1 timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  fi
}

describe() { # describe HOST -> "dockerd 20.10.24 (API 1.41) at HOST"
  DOCKER_HOST=$1 docker version --format "dockerd {{.Server.Version}} (API {{.Server.APIVersion}}) at $1" 2>/dev/null ||
    echo "daemon at $1"
}

if [ -n "${DOCKER_HOST:-}" ] && answers; then
  say "reusing $(describe "$DOCKER_HOST")"
  exit 0
fi
if answers "unix://$DEFAULT_SOCK"; then
  say "reusing $(describe "unix://$DEFAULT_SOCK")"
  if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix://$DEFAULT_SOCK" ]; then
    say "note: DOCKER_HOST=$DOCKER_HOST does not answer; unset it or export DOCKER_HOST=unix://$DEFAULT_SOCK"
  fi
  exit 0
fi

# From here on we may have to start dockerd: that needs root.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if ! { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
    die "no Docker daemon answers at ${DOCKER_HOST:-unix://$DEFAULT_SOCK} and starting dockerd needs root (run as root or with password-less sudo)"
  fi
  SUDO=(sudo -n)
fi
if [ -n "${BERTH_DOCKERD_ROOT:-}" ]; then "${SUDO[@]}" mkdir -p "$root"; fi
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || die "dockerd not found (install docker.io: ci/install-deps.sh)"
DOCKERD=$(command -v dockerd 2>/dev/null || echo /usr/sbin/dockerd)

# alive PID: the process exists and is not a zombie.
alive() {
  local st
  st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# pid_state FILE NAME -> prints "none", "stale" or "live:PID" (live = that PID runs a program called NAME).
pid_state() {
  local file=$1 name=$2 pid comm
  [ -e "$file" ] || {
    echo none
    return
  }
  pid=$(tr -dc '0-9' <"$file" 2>/dev/null || true)
  if [ -z "$pid" ] || ! alive "$pid"; then
    echo stale
    return
  fi
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  if [ "$comm" = "$name" ]; then echo "live:$pid"; else echo stale; fi
}

# A dockerd that is still starting (or hung) is waited for, never killed and never started twice.
state=$(pid_state "$PIDFILE" dockerd)
started_pid=""
case "$state" in
live:*)
  started_pid=${state#live:}
  say "dockerd (pid $started_pid) is running but does not answer yet; waiting for it"
  ;;
stale)
  say "removing stale $PIDFILE (names $(tr -dc '0-9' <"$PIDFILE" 2>/dev/null || echo nothing), not a running dockerd)"
  "${SUDO[@]}" rm -f "$PIDFILE"
  ;;
esac

if [ -z "$started_pid" ]; then
  # dockerd 20.10 supervises its own containerd; given a pid file naming a live process it would try to reuse it
  # and could end up killing it. Remove the file when that process is not a containerd.
  if [ "$(pid_state "$CONTAINERD_PIDFILE" containerd)" = stale ]; then
    say "removing stale $CONTAINERD_PIDFILE"
    "${SUDO[@]}" rm -f "$CONTAINERD_PIDFILE"
  fi

  LOG=${DOCKERD_LOG:-${BERTH_DOCKERD_ROOT:+$root/dockerd.log}}
  if [ -z "$LOG" ]; then
    if "${SUDO[@]}" test -w /var/log; then LOG=/var/log/berth-dockerd.log; else LOG=/tmp/berth-dockerd.log; fi
  fi
  # setsid + nohup: the daemon outlives this script, its shell and its terminal.
  # shellcheck disable=SC2016
  "${SUDO[@]}" setsid sh -c 'echo "--- $(date -u +%FT%TZ) start-docker: $*" >>"$0"; exec nohup "$@" >>"$0" 2>&1 </dev/null' \
    "$LOG" "$DOCKERD" "${DOCKERD_FLAGS[@]}" &
  launcher=$!
  say "started $DOCKERD ${DOCKERD_FLAGS[*]} (log: $LOG)"
fi

# Wait, bounded, until the default socket answers; give up early when dockerd has exited.
deadline=$((SECONDS + TIMEOUT))
while ! answers "unix://$DEFAULT_SOCK"; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    if [ -n "${LOG:-}" ]; then tail -n 15 "$LOG" >&2 2>/dev/null || true; fi
    die "dockerd did not answer at unix://$DEFAULT_SOCK within ${TIMEOUT}s${LOG:+ (log: $LOG)}"
  fi
  # The launcher exec()s dockerd (or is sudo waiting for it): once it is gone, dockerd has exited.
  if [ -n "${launcher:-}" ] && ! alive "$launcher" && ! answers "unix://$DEFAULT_SOCK"; then
    tail -n 15 "$LOG" >&2 2>/dev/null || true
    die "dockerd exited during start-up (log: $LOG)"
  fi
  # A dockerd we only waited for: stop waiting when it is gone.
  if [ -z "${launcher:-}" ] && ! alive "$started_pid" && ! answers "unix://$DEFAULT_SOCK"; then
    die "dockerd (pid $started_pid) exited without answering; run this script again"
  fi
  sleep 0.5
done

say "using $(describe "unix://$DEFAULT_SOCK")"
if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix://$DEFAULT_SOCK" ]; then
  say "note: DOCKER_HOST=$DOCKER_HOST does not answer; unset it or export DOCKER_HOST=unix://$DEFAULT_SOCK"
fi
