#!/usr/bin/env bash
# Memory and disk for many sessions: loads KEYS values of VALUE bytes (default
# 1,000,000 of 1 KiB: one opaque session blob per key, as applications keep sessions in
# Redis) into a 3-node cartwheel cluster (regions/bench.toml, N = 3: every node holds
# every key) and into one Redis, then reports per cartwheel node its RSS and its data
# directory's bytes on disk (after a flush), per key and as a multiple of the raw data
# (key + value), next to Redis's used_memory and RSS for the same data.
#
# Options: --keys N (1000000)  --value-bytes B (1024)  --cache-mb M (node default)
#          --clients N (50)  --skip-redis
# CARTWHEEL=path picks the binary (default: cargo build --release). Needs redis-server
# for the Redis column (installed from Debian's packages when missing, as root).
set -uo pipefail
cd "$(dirname "$0")/.."
KEYS=1000000 VALUE_BYTES=1024 CACHE_MB="" CLIENTS=50 SKIP_REDIS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keys) KEYS=${2:?}; shift 2 ;;
    --value-bytes) VALUE_BYTES=${2:?}; shift 2 ;;
    --cache-mb) CACHE_MB=${2:?}; shift 2 ;;
    --clients) CLIENTS=${2:?}; shift 2 ;;
    --skip-redis) SKIP_REDIS=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "footprint.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# shellcheck source=sim/lib.sh
. sim/lib.sh
cartwheel_binary footprint.sh
work=$(mktemp -d)
dir=$work/cluster
redis_pid=""
cleanup() {
  "$CARTWHEEL" cluster down --dir "$dir" >/dev/null 2>&1
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# A bench run whose load phase writes every key once; the timed part is a short read.
load() {
  timeout 3600 "$CARTWHEEL" bench "$@" --keys "$KEYS" --value-bytes "$VALUE_BYTES" --clients "$CLIENTS" \
    --read-ratio 1 --warmup 0s --duration 1s --json "$work/load.json" >"$work/load.log" 2>&1 \
    || { tail -5 "$work/load.log"; exit 1; }
}
key_bytes=$(python3 -c "print(len('bench-' + str($KEYS - 1)))")
raw=$(( KEYS * (VALUE_BYTES + key_bytes) ))
echo "raw data: $KEYS keys x ($VALUE_BYTES value + ~$key_bytes key) = $((raw / 1048576)) MiB per replica"

up_args=()
[ -n "$CACHE_MB" ] && up_args=(--cache-mb "$CACHE_MB")
"$CARTWHEEL" cluster up --dir "$dir" --topology regions/bench.toml "${up_args[@]}" >"$work/up.txt" 2>&1 \
  || { cat "$work/up.txt"; exit 1; }
pids=$(grep -o 'pid [0-9]*' "$work/up.txt" | awk '{print $2}')
started=$(date +%s)
load --dir "$dir" --r 2 --w 2
echo "cartwheel: loaded in $(( $(date +%s) - started )) s"
# Stop cleanly (every node flushes) before measuring the disk; RSS is read first.
printf '| node | RSS MiB | disk MiB | disk bytes / key | disk / raw |\n|---|---|---|---|---|\n'
declare -A rss
for pid in $pids; do rss[$pid]=$(rss_kib "$pid"); done
node_of() { tr '\0' ' ' <"/proc/$1/cmdline" | sed -n 's/.*--id \([^ ]*\).*/\1/p'; }
declare -A names
for pid in $pids; do names[$pid]=$(node_of "$pid"); done
"$CARTWHEEL" cluster down --dir "$dir" >/dev/null 2>&1
for pid in $pids; do
  # Bounded wait for the node to exit (its store is flushed and closed by then).
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  name=${names[$pid]}
  disk=$(du -sb "$dir/data/$name" | awk '{print $1}')
  python3 -c "
rss, disk, keys, raw = ${rss[$pid]} * 1024, $disk, $KEYS, $raw
print(f'| $name | {rss / 2**20:.0f} | {disk / 2**20:.0f} | {disk / keys:.0f} | {disk / raw:.2f} |')"
done

if [ -z "$SKIP_REDIS" ]; then
  if ! command -v redis-server >/dev/null; then
    apt-get install -y -qq redis-server >/dev/null 2>&1 || { echo "footprint.sh: no redis-server" >&2; exit 1; }
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  load --target "redis://127.0.0.1:$port"
  used=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  python3 -c "
used, rss, keys, raw = $used, $(rss_kib "$redis_pid") * 1024, $KEYS, $raw
print(f'redis: used_memory {used / 2**20:.0f} MiB ({used / keys:.0f} bytes / key, {used / raw:.2f} x raw), RSS {rss / 2**20:.0f} MiB')"
fi
