#!/usr/bin/env bash
# cartwheel's RESP edge against Redis, same machine, same tools, in one run:
#
#   redis       a Redis primary with two replicas (replicaof), memory only
#   cartwheel   a 3-node cluster of regions/bench.toml: N = 3, and the resp class's
#               default levels there are R = 2 (local_quorum) and W = 2 (region_safe,
#               which in a one-region cluster is the local quorum)
#
# Two loads, each ROUNDS times, the systems alternating within a round:
#
#   1. `redis-benchmark -t T -c CLIENTS -n REQUESTS -r KEYSPACE -d VALUE_BYTES` for each
#      T of set, get, incr, hset, mset (one run each, so a test that fails does not hide
#      the next; hset with `-r HASH_FIELDS`: its one hash `myhash` gets that many fields,
#      and a cartwheel hash holds at most 4096), once without pipelining and once with
#      `-P 16`, against the Redis primary and against one cartwheel node (which
#      coordinates every request; the other two hold replicas). Redis's writes here are
#      acknowledged from the primary's memory alone.
#   2. `cartwheel bench --workload kv --read-ratio 0` (SET of VALUE_BYTES, CLIENTS
#      clients over as many connections, as redis-benchmark's) against the Redis primary
#      with `--redis-wait 1` (each SET followed by `WAIT 1 0`: acknowledged once a
#      replica has it) and against the same cartwheel node's RESP listener: the
#      durability-matched write comparison; and `--read-ratio 1` (GET) against both.
#
# Durability as configured (what an acknowledged write has survived):
#   redis       nothing on disk (save "", appendonly no); with WAIT 1, also one replica's
#               memory. --redis-aof always|everysec turns on the append-only file.
#   cartwheel   --durability group:2 (fsync shared by the writes of the same 2 ms) on
#               W = 2 of 3 replicas; --cartwheel-durability X passes another to
#               `cluster up` (flush fsyncs every write; none never waits for the disk).
#
# Options:
#   --rounds N (3)  --clients N (50)  --requests N (100000 per test)
#   --keyspace N (10000, redis-benchmark -r)  --hash-fields N (10)
#   --value-bytes B (3, redis-benchmark's own)
#   --duration D (10s) and --warmup D (2s) of the `cartwheel bench` runs
#   --out DIR (default: a new temp dir, kept)  --redis-aof always|everysec
#   --cartwheel-durability X
#
# redis-server and redis-benchmark (Debian's redis-server and redis-tools) are installed
# when missing (apt-get, as root). CARTWHEEL=path picks the binary (default: `cargo build
# --release`). Every process the script starts is stopped on exit; only loopback.
set -uo pipefail
cd "$(dirname "$0")/.."
SCRIPT=resp-bench.sh
# shellcheck source=sim/lib.sh
. sim/lib.sh

ROUNDS=3
CLIENTS=50
REQUESTS=100000
KEYSPACE=10000
HASH_FIELDS=10
VALUE_BYTES=3
DURATION=10s
WARMUP=2s
OUT=""
REDIS_AOF=""
CARTWHEEL_DURABILITY=""
START_WAIT_S=60
# Bound of one load run past what it was asked to do.
RUN_LIMIT_S=600

usage() { sed -n '2,41p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
    --clients) need_value "$@"; CLIENTS=$2; shift 2 ;;
    --requests) need_value "$@"; REQUESTS=$2; shift 2 ;;
    --keyspace) need_value "$@"; KEYSPACE=$2; shift 2 ;;
    --hash-fields) need_value "$@"; HASH_FIELDS=$2; shift 2 ;;
    --value-bytes) need_value "$@"; VALUE_BYTES=$2; shift 2 ;;
    --duration) need_value "$@"; DURATION=$2; shift 2 ;;
    --warmup) need_value "$@"; WARMUP=$2; shift 2 ;;
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    --redis-aof) need_value "$@"; REDIS_AOF=$2; shift 2 ;;
    --cartwheel-durability) need_value "$@"; CARTWHEEL_DURABILITY=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "$SCRIPT: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for pair in "rounds:$ROUNDS:1:100" "clients:$CLIENTS:1:10000" \
  "requests:$REQUESTS:1:100000000" "keyspace:$KEYSPACE:1:100000000" \
  "hash-fields:$HASH_FIELDS:1:4096" \
  "value-bytes:$VALUE_BYTES:1:1048576"; do
  IFS=: read -r name value low high <<<"$pair"
  if ! [[ "$value" =~ ^[0-9]+$ ]] || [ "$value" -lt "$low" ] || [ "$value" -gt "$high" ]; then
    echo "$SCRIPT: --$name must be $low..$high" >&2
    exit 2
  fi
done
case "$REDIS_AOF" in
  ""|always|everysec) ;;
  *) echo "$SCRIPT: --redis-aof must be always or everysec" >&2; exit 2 ;;
esac

install_if_missing redis-server redis-server || exit 1
install_if_missing redis-benchmark redis-tools || exit 1
cartwheel_binary "$SCRIPT"

OUT=${OUT:-$(mktemp -d /tmp/cartwheel-resp-bench.XXXXXX)}
mkdir -p "$OUT" || exit 1
work=$(mktemp -d /tmp/cartwheel-resp-bench-data.XXXXXX) || exit 1
pids=()
cartwheel_dir="$work/cartwheel"
load_pid=""
cleanup() {
  local pid
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
  if [ -f "$cartwheel_dir/cluster.json" ]; then
    timeout 60 "$CARTWHEEL" cluster down --dir "$cartwheel_dir" >/dev/null 2>&1
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r primary one two < <(free_ports 3)
start_redis redis-primary "$primary" || exit 1
start_redis redis-replica-1 "$one" "$primary" || exit 1
start_redis redis-replica-2 "$two" "$primary" || exit 1
wait_for "2 Redis replicas in sync" replicas_online "$primary" 2 || exit 1

up=(cluster up --dir "$cartwheel_dir" --topology regions/bench.toml)
[ -n "$CARTWHEEL_DURABILITY" ] && up+=(--durability "$CARTWHEEL_DURABILITY")
if ! timeout $((START_WAIT_S * 2)) "$CARTWHEEL" "${up[@]}" >"$work/cluster-up.log" 2>&1; then
  echo "$SCRIPT: cartwheel cluster up failed:" >&2
  tail -n 20 "$work/cluster-up.log" >&2
  exit 1
fi
# The first node's RESP address (cluster.json: nodes[].resp, "127.0.0.1:PORT").
resp=$(python3 -c '
import json, sys
nodes = json.load(open(sys.argv[1]))["nodes"]
print(next(node["resp"] for node in nodes if node.get("resp")))' "$cartwheel_dir/cluster.json") ||
  { echo "$SCRIPT: no RESP address in $cartwheel_dir/cluster.json" >&2; exit 1; }
resp_port=${resp##*:}
wait_for "cartwheel RESP at $resp" redis-cli -h 127.0.0.1 -p "$resp_port" ping || exit 1

{
  echo "durability as configured:"
  echo "  redis      $(redis_durability) on each of 3; redis-benchmark: the primary's memory; SET + WAIT 1: also one replica's"
  echo "  cartwheel  ${CARTWHEEL_DURABILITY:-group:2} fsync, W = 2 of 3 replicas (N = 3, R = 2)"
  echo "load: $CLIENTS clients, -n $REQUESTS -r $KEYSPACE -d $VALUE_BYTES; SET + WAIT: cartwheel bench $DURATION after $WARMUP"
} | tee "$OUT/durability.txt" >&2

# Runs "$@" in the background with a time bound and waits for it (so a signal reaches
# the trap at once); its output goes to file $1.
run_bounded() {
  local log=$1
  shift
  timeout "$RUN_LIMIT_S" "$@" >"$log" 2>&1 &
  load_pid=$!
  wait "$load_pid"
  local status=$?
  load_pid=""
  return $status
}

manifest="$OUT/runs.tsv"
: >"$manifest"
failed=0
for round in $(seq 1 "$ROUNDS"); do
  for pipeline in 1 16; do
    for test in set get incr hset mset; do
      range=$KEYSPACE
      [ $test = hset ] && range=$HASH_FIELDS
      for system in redis cartwheel; do
        port=$primary
        [ $system = cartwheel ] && port=$resp_port
        # A fresh key space for each run: hset's one hash starts empty.
        redis-cli -h 127.0.0.1 -p "$port" del myhash >/dev/null 2>&1
        name="redis-benchmark-$test-$system-P$pipeline-r$round"
        echo "== $name" >&2
        if ! run_bounded "$OUT/$name.csv" redis-benchmark -h 127.0.0.1 -p "$port" \
          -t "$test" -c "$CLIENTS" -n "$REQUESTS" -r "$range" -d "$VALUE_BYTES" \
          -P "$pipeline" --csv -q; then
          failed=1
          echo "$SCRIPT: $name failed:" >&2
          tail -n 3 "$OUT/$name.csv" >&2
        fi
        printf 'benchmark\t%s\tP%s\t%s\t%s\t%s\n' "$system" "$pipeline" "$round" \
          "$OUT/$name.csv" "$test" >>"$manifest"
      done
    done
  done
  for ratio in 0 1; do
    for system in redis-wait cartwheel; do
      target="redis://127.0.0.1:$primary" wait_args=(--redis-wait 1)
      if [ $system = cartwheel ]; then
        target="redis://127.0.0.1:$resp_port" wait_args=()
      fi
      name="bench-read$ratio-$system-r$round"
      echo "== $name" >&2
      if ! run_bounded "$OUT/$name.log" "$CARTWHEEL" bench --target "$target" \
        "${wait_args[@]}" --redis-connections "$CLIENTS" --workload kv \
        --read-ratio "$ratio" --keys "$KEYSPACE" --value-bytes "$VALUE_BYTES" \
        --clients "$CLIENTS" --warmup "$WARMUP" --duration "$DURATION" \
        --seed $((1000 + round)) --json "$OUT/$name.json"; then
        failed=1
        echo "$SCRIPT: $name failed:" >&2
        tail -n 5 "$OUT/$name.log" >&2
      fi
      op=SET
      [ $ratio = 1 ] && op=GET
      printf 'bench\t%s\t-\t%s\t%s\t%s\n' "$system" "$round" "$OUT/$name.json" "$op" \
        >>"$manifest"
    done
  done
done

python3 sim/resp_bench_table.py "$manifest" "$OUT/durability.txt" | tee "$OUT/table.md"
echo >&2
echo "results (CSV, JSON, logs, runs.tsv, table.md): $OUT" >&2
exit $failed
