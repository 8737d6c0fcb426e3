#!/usr/bin/env bash
# What one operation costs the nodes, on a fresh 3-node cluster of regions/bench.toml
# (N = 3; kv at R = 2, W = 2; the session classes at their defaults there):
#
#   1. closed loop at each of --clients (1, 10, 50, 200): throughput, and per operation
#      the node CPU (user + sys of every node process, from /proc) and the datagrams
#      and send calls (sendmsg) of every node's peer socket (from /metrics:
#      cartwheel_transport_datagrams_sent_total, cartwheel_transport_send_calls_total),
#      all sampled by `cartwheel bench` over its measured part (after 1 s of warm-up;
#      the keys it loads first are not counted);
#   2. open loop at half the peak of step 1 (`cartwheel bench --rate`): the same per
#      operation figures, and p50 / p99 / p99.9.
#
# A fresh cluster per workload; each timed run follows an untimed warm-up that loads
# the keys.
#
# Options:
#   --workloads a,b   of kv-read, kv-write, session-read, cart-write (default: all four)
#   --clients 1,10,50,200   --duration D (6s)   --keys N (10000)   --value-bytes B (2048)
#   --cluster-flags "FLAGS"  passed to cluster up (e.g. "--durability none")
#   --out DIR   results dir (default: a new temp dir, kept)
# CARTWHEEL=path picks the binary (default: cargo build --release).
set -uo pipefail
cd "$(dirname "$0")/.."
SCRIPT=cost.sh
WORKLOADS=kv-read,kv-write,session-read,cart-write
CLIENTS=1,10,50,200
DURATION=6s
KEYS=10000
VALUE_BYTES=2048
CLUSTER_FLAGS=""
OUT=""
# shellcheck source=sim/lib.sh
. sim/lib.sh
while [ $# -gt 0 ]; do
  case "$1" in
    --workloads) need_value "$@"; WORKLOADS=$2; shift 2 ;;
    --clients) need_value "$@"; CLIENTS=$2; shift 2 ;;
    --duration) need_value "$@"; DURATION=$2; shift 2 ;;
    --keys) need_value "$@"; KEYS=$2; shift 2 ;;
    --value-bytes) need_value "$@"; VALUE_BYTES=$2; shift 2 ;;
    --cluster-flags) CLUSTER_FLAGS=${2-}; shift 2 ;;
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "cost.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
cartwheel_binary cost.sh
[ -n "$OUT" ] || OUT=$(mktemp -d)
mkdir -p "$OUT"
dir=""
cleanup() {
  [ -n "$dir" ] && "$CARTWHEEL" cluster down --dir "$dir" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

workload_args() {
  case "$1" in
    kv-write) echo --workload kv --read-ratio 0 --r 2 --w 2 ;;
    kv-read) echo --workload kv --read-ratio 1 --r 2 --w 2 ;;
    session-read|cart-write) echo --workload "$1" ;;
    *) echo "cost.sh: unknown workload $1" >&2; exit 2 ;;
  esac
}

# One timed bench run: $1 name, then bench arguments. The bench samples the nodes' CPU
# and sockets over its measured part (the `nodes` object of its JSON summary).
timed_run() {
  local name=$1
  shift
  timeout 600 "$CARTWHEEL" bench --dir "$dir" --keys "$KEYS" --value-bytes "$VALUE_BYTES" \
    --warmup 1s --duration "$DURATION" --json "$OUT/$name.json" "$@" >"$OUT/$name.log" 2>&1 || {
    echo "cost.sh: bench $name failed:" >&2
    tail -n 5 "$OUT/$name.log" >&2
    return 1
  }
  echo "$name" >>"$OUT/rows.tsv"
}

: >"$OUT/rows.tsv"
IFS=, read -r -a workloads <<<"$WORKLOADS"
IFS=, read -r -a clients <<<"$CLIENTS"
for workload in "${workloads[@]}"; do
  args=$(workload_args "$workload") || exit 2
  dir=$OUT/cluster-$workload
  # shellcheck disable=SC2086
  if ! timeout 120 "$CARTWHEEL" cluster up --dir "$dir" --topology regions/bench.toml $CLUSTER_FLAGS \
    >"$OUT/up-$workload.log" 2>&1; then
    echo "cost.sh: cluster up failed:" >&2
    tail -n 20 "$OUT/up-$workload.log" >&2
    exit 1
  fi
  # shellcheck disable=SC2086
  timeout 600 "$CARTWHEEL" bench --dir "$dir" --keys "$KEYS" --value-bytes "$VALUE_BYTES" \
    $args --clients 50 --warmup 0s --duration 3s --json /dev/null >/dev/null 2>&1
  peak=0
  for count in "${clients[@]}"; do
    # shellcheck disable=SC2086
    timed_run "$workload-c$count" $args --clients "$count" || exit 1
    rate=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["throughput_ops_s"]))' \
      "$OUT/$workload-c$count.json")
    [ "$rate" -gt "$peak" ] && peak=$rate
  done
  half=$((peak / 2))
  [ "$half" -gt 0 ] || half=1
  # shellcheck disable=SC2086
  timed_run "$workload-half" $args --clients 200 --rate "$half" || exit 1
  "$CARTWHEEL" cluster down --dir "$dir" >/dev/null 2>&1
  dir=""
done

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
print("| workload | load | ops/s | p50 ms | p99 ms | p99.9 ms | node CPU µs / op | datagrams / op | send calls / op |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name in open(f"{out}/rows.tsv").read().split():
    run = json.load(open(f"{out}/{name}.json"))
    lat, nodes = run["latency_ms"], run.get("nodes", {})
    workload, load = name.rsplit("-", 1)
    load = "half of peak, open loop" if load == "half" else f"{load[1:]} clients"
    cost = lambda key, digits: f"{nodes[key]:.{digits}f}" if key in nodes else "?"
    print(f"| {workload} | {load} | {run['throughput_ops_s']:,.0f} | {lat['p50']:.2f} | "
          f"{lat['p99']:.2f} | {lat['p999']:.2f} | {cost('cpu_us_per_op', 0)} | "
          f"{cost('datagrams_per_op', 2)} | {cost('send_calls_per_op', 2)} |")
PY
echo "results: $OUT" >&2
