#!/usr/bin/env bash
# Scaling on one machine: the same closed-loop kv bench (50 clients, 2 KiB values,
# 50 % reads, R = 2 / W = 2 of N = 3) against clusters of 3, 6 and 9 node processes
# (regions/bench.toml, bench-6.toml, bench-9.toml), and the CPU time per operation:
# user + sys of every node process during the timed run, divided by the operations
# done (the load before timing is excluded). CPU per operation does not depend on how
# many cores the machine has; throughput does (all nodes share this machine's cores).
#
# --routing token sends each kv request to one of its key's replicas (the bench's
# default, from the ring map), spread to every node in turn; both (the default) runs
# each size both ways.
#
# Options: --duration D (10s)  --keys N (10000)  --clients N (50)  --read-ratio F (0.5)
#          --sizes 3,6,9   --rounds N (1)   --routing token|spread|both (both)
#          --cluster-flags "FLAGS" (passed to cluster up, e.g. "--durability none")
# CARTWHEEL=path picks the binary (default: cargo build --release).
set -uo pipefail
cd "$(dirname "$0")/.."
DURATION=10s KEYS=10000 CLIENTS=50 READ_RATIO=0.5 SIZES=3,6,9 ROUNDS=1 ROUTING=both CLUSTER_FLAGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=${2:?}; shift 2 ;;
    --keys) KEYS=${2:?}; shift 2 ;;
    --clients) CLIENTS=${2:?}; shift 2 ;;
    --read-ratio) READ_RATIO=${2:?}; shift 2 ;;
    --sizes) SIZES=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --routing) ROUTING=${2:?}; shift 2 ;;
    --cluster-flags) CLUSTER_FLAGS=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "scale.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$ROUTING" in
  both) routings=(token spread) ;;
  token|spread) routings=("$ROUTING") ;;
  *) echo "scale.sh: --routing is token, spread or both" >&2; exit 2 ;;
esac
# shellcheck source=sim/lib.sh
. sim/lib.sh
cartwheel_binary scale.sh
work=$(mktemp -d)
dir=""
cleanup() {
  [ -n "$dir" ] && "$CARTWHEEL" cluster down --dir "$dir" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ticks_per_s=$(getconf CLK_TCK)
# Sum of user + sys clock ticks of the given processes.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    if [ -r "/proc/$pid/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    fi
  done
  echo "$total"
}
printf '| nodes | routing | round | ops/s | p50 ms | p99 ms | errors | node CPU s | CPU µs / op |\n|---|---|---|---|---|---|---|---|---|\n'
IFS=, read -r -a sizes <<<"$SIZES"
for round in $(seq 1 "$ROUNDS"); do
  for size in "${sizes[@]}"; do
    for routing in "${routings[@]}"; do
      case "$size" in
        3) topology=regions/bench.toml ;;
        6|9) topology=regions/bench-$size.toml ;;
        *) echo "scale.sh: sizes are 3, 6 or 9" >&2; exit 2 ;;
      esac
      dir=$work/cluster-$size
      "$CARTWHEEL" cluster up --dir "$dir" --topology "$topology" $CLUSTER_FLAGS >"$work/up.txt" 2>&1 || { cat "$work/up.txt"; exit 1; }
      pids=$(grep -o 'pid [0-9]*' "$work/up.txt" | awk '{print $2}')
      # Load (and warm up) once untimed, then measure a second run whose load is a
      # rewrite of the same keys (counted in its CPU: added to its operations below).
      timeout 600 "$CARTWHEEL" bench --dir "$dir" --keys "$KEYS" --clients "$CLIENTS" --read-ratio "$READ_RATIO" \
        --r 2 --w 2 --routing "$routing" --warmup 0s --duration 2s --json /dev/null >/dev/null 2>&1
      before=$(cpu_ticks $pids)
      timeout 600 "$CARTWHEEL" bench --dir "$dir" --keys "$KEYS" --clients "$CLIENTS" --read-ratio "$READ_RATIO" \
        --r 2 --w 2 --routing "$routing" --warmup 0s --duration "$DURATION" --json "$work/run.json" >/dev/null 2>&1
      after=$(cpu_ticks $pids)
      python3 - "$work/run.json" "$size" "$routing" "$round" "$((after - before))" "$ticks_per_s" "$KEYS" <<'P'
import json, sys
path, size, routing, rnd, ticks, hz, keys = sys.argv[1:]
d = json.load(open(path))
ops = sum(v["count"] for v in d["latency_ms"].values() if isinstance(v, dict)) + int(keys)
cpu_s = int(ticks) / int(hz)
lat = d["latency_ms"]
print(f"| {size} | {routing} | {rnd} | {d['throughput_ops_s']:.0f} | {lat['p50']:.2f} | {lat['p99']:.2f} | {d['errors']} | {cpu_s:.1f} | {cpu_s * 1e6 / ops:.0f} |")
P
      "$CARTWHEEL" cluster down --dir "$dir" >/dev/null 2>&1
      dir=""
    done
  done
done
