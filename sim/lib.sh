# Shared by the sim/ scripts (sourced, not run).

# Sets CARTWHEEL to the release binary: the caller's CARTWHEEL if given, else the one
# `cargo build --release` makes (in cargo's target directory, wherever that is).
# $1 names the calling script in messages.
cartwheel_binary() {
  if [ -z "${CARTWHEEL:-}" ]; then
    cargo build --release --quiet || exit 1
    CARTWHEEL=$(cargo metadata --format-version 1 --no-deps \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/cartwheel
  fi
  [ -x "$CARTWHEEL" ] || { echo "$1: no binary at $CARTWHEEL" >&2; exit 1; }
}

# The helpers below start servers for the comparison scripts (bench.sh, resp-bench.sh).
# They use the caller's globals: SCRIPT (its name, for messages), START_WAIT_S (bound of
# every start), work (a scratch dir), pids (processes to stop on exit) and REDIS_AOF
# ("" for memory only, or an appendfsync policy).

# Exits 2 unless option $1 was given a value ($2).
need_value() {
  if [ $# -lt 2 ] || [ -z "$2" ]; then
    echo "$SCRIPT: $1 needs a value (see --help)" >&2
    exit 2
  fi
}

# Installs Debian package $2 when command $1 is missing; fails if it cannot.
install_if_missing() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$SCRIPT: $1 is missing and cannot be installed here (needs root and apt-get)" >&2
    return 1
  fi
  echo "$SCRIPT: installing $2" >&2
  # Keep the package's own service from starting: this script starts what it needs.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1
  local status=$?
  [ $made_policy = 1 ] && rm -f "$policy"
  [ $status = 0 ] && command -v "$1" >/dev/null 2>&1
}

# N free loopback ports, held together while chosen so they differ.
free_ports() {
  python3 -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1"
}
# Waits (bounded) until command "$@" succeeds.
wait_for() {
  local what=$1 tries=$((START_WAIT_S * 10))
  shift
  while [ $tries -gt 0 ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
    tries=$((tries - 1))
  done
  echo "$SCRIPT: $what did not come up within ${START_WAIT_S}s" >&2
  return 1
}

redis_durability() {
  case "$REDIS_AOF" in
    "") echo 'no fsync: save "" + appendonly no (memory only)' ;;
    always) echo "appendonly yes, appendfsync always (fsync before replying, per event-loop batch)" ;;
    everysec) echo "appendonly yes, appendfsync everysec (up to ~1 s of writes lost)" ;;
  esac
}
start_redis() { # name port [primary-port]
  local dir="$work/$1" extra=()
  mkdir -p "$dir"
  [ $# -ge 3 ] && extra=(--replicaof 127.0.0.1 "$3")
  if [ -z "$REDIS_AOF" ]; then
    redis-server --port "$2" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
      --daemonize no "${extra[@]}" >"$dir/log" 2>&1 &
  else
    redis-server --port "$2" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly yes \
      --appendfsync "$REDIS_AOF" --daemonize no "${extra[@]}" >"$dir/log" 2>&1 &
  fi
  pids+=($!)
  wait_for "redis $1 (port $2)" redis-cli -h 127.0.0.1 -p "$2" ping
}
replicas_online() { # port count
  redis-cli -h 127.0.0.1 -p "$1" info replication | tr -d '\r' |
    grep -q "^connected_slaves:$2\$"
}
