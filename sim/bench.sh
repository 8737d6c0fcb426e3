#!/usr/bin/env bash
# Compares cartwheel with Redis and etcd on this machine, same load generator
# (`cartwheel bench`), same workloads, every system on loopback with free ports:
#
#   redis       Redis alone
#   redis-wait  Redis primary + 2 replicas (replicaof); each write then `WAIT 1 0`
#   etcd        a 3-member etcd cluster (own data dir per member)
#   cartwheel   a 3-node cluster of regions/bench.toml (N = 3), bench with --r 2 --w 2
#   cartwheel-scraped  the same cluster and bench while every node's /metrics is
#               scraped once a second (what Prometheus would do): its ratio column is
#               the cost of being scraped (not in the default systems)
#
# Durability as configured (what an acknowledged write has survived):
#   redis       nothing on disk: save "" and appendonly no (memory only; a crash loses
#               everything). --redis-aof always|everysec turns on the append-only file
#               with that appendfsync (always: fsync before replying, once per event-loop
#               batch of writes; everysec: up to ~1 s of acknowledged writes lost)
#   redis-wait  as redis on each process, plus a copy in one replica's memory (WAIT 1)
#   etcd        its WAL fsynced per commit batch (group commit) on a majority (2 of 3)
#   cartwheel   --durability group:2 by default: a write waits for an fsync shared by the
#               writes of the same 2 ms under load (group commit; at light load flushes
#               run back to back) on W = 2 of 3 replicas;
#               --cartwheel-durability flush fsyncs every write; group:MS another window
#
# For each workload, every system runs in turn (alternating), ROUNDS times; each run
# writes its JSON summary to the results dir; then one table prints throughput and
# latency per run, the cartwheel / peer ratio of throughput and p99 per round, and the
# median ratio per workload and peer.
#
# Options:
#   --rounds N (3)  --duration D (10s)  --warmup D (2s)  --clients N (50)
#   --value-bytes B (2048)  --keys N (10000)
#   --workloads a,b   of kv-write (kv --read-ratio 0), kv-read (1), kv-mixed (0.5),
#                     session-read, cart-write, login-storm (default: all six)
#   --systems a,b     of redis, redis-wait, etcd, cartwheel, cartwheel-scraped
#                     (default: the first four)
#   --out DIR         results dir (default: a new temp dir, kept)
#   --redis-aof always|everysec     Redis with appendonly yes + that appendfsync
#   --cartwheel-durability X        passed to `cluster up --durability` (flush, group:MS, none)
#
# Missing redis-server / etcd are installed from Debian's packages (apt-get, as root);
# a system that cannot be installed is skipped with a message. CARTWHEEL=path picks the
# binary (default: `cargo build --release`, with `--features etcd` when etcd runs; a
# binary given without that feature fails the etcd rows, saying so). Every process
# the script starts is stopped on exit.
set -uo pipefail
cd "$(dirname "$0")/.."
SCRIPT=bench.sh
# shellcheck source=sim/lib.sh
. sim/lib.sh

ROUNDS=3
DURATION=10s
WARMUP=2s
CLIENTS=50
VALUE_BYTES=2048
KEYS=10000
WORKLOADS=kv-write,kv-read,kv-mixed,session-read,cart-write,login-storm
SYSTEMS=redis,redis-wait,etcd,cartwheel
OUT=""
REDIS_AOF=""
CARTWHEEL_DURABILITY=""
# Bounds of every wait: a server to start, a bench run past its own duration.
START_WAIT_S=60
RUN_SLACK_S=600

usage() { sed -n '2,45p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
    --duration) need_value "$@"; DURATION=$2; shift 2 ;;
    --warmup) need_value "$@"; WARMUP=$2; shift 2 ;;
    --clients) need_value "$@"; CLIENTS=$2; shift 2 ;;
    --value-bytes) need_value "$@"; VALUE_BYTES=$2; shift 2 ;;
    --keys) need_value "$@"; KEYS=$2; shift 2 ;;
    --workloads) need_value "$@"; WORKLOADS=$2; shift 2 ;;
    --systems) need_value "$@"; SYSTEMS=$2; shift 2 ;;
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    --redis-aof) need_value "$@"; REDIS_AOF=$2; shift 2 ;;
    --cartwheel-durability) need_value "$@"; CARTWHEEL_DURABILITY=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 100 ]; then
  echo "bench.sh: --rounds must be 1..100" >&2
  exit 2
fi
case "$REDIS_AOF" in
  ""|always|everysec) ;;
  *) echo "bench.sh: --redis-aof must be always or everysec" >&2; exit 2 ;;
esac
IFS=, read -r -a workloads <<<"$WORKLOADS"
IFS=, read -r -a systems <<<"$SYSTEMS"
for workload in "${workloads[@]}"; do
  case "$workload" in
    kv-write|kv-read|kv-mixed|session-read|cart-write|login-storm) ;;
    *) echo "bench.sh: unknown workload $workload (see --help)" >&2; exit 2 ;;
  esac
done
for system in "${systems[@]}"; do
  case "$system" in
    redis|redis-wait|etcd|cartwheel|cartwheel-scraped) ;;
    *) echo "bench.sh: unknown system $system (see --help)" >&2; exit 2 ;;
  esac
done
# Seconds of a duration like 10s, 2m, 500ms (rounded up), for the run timeouts.
seconds() {
  python3 -c '
import re, sys
m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", sys.argv[1])
if not m:
    sys.exit("bench.sh: bad duration " + sys.argv[1])
scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]
print(int(float(m.group(1)) * scale + 0.999))' "$1"
}
duration_s=$(seconds "$DURATION") || exit 2
warmup_s=$(seconds "$WARMUP") || exit 2
run_s=$((duration_s + warmup_s + RUN_SLACK_S))

wants() {
  local wanted
  for wanted in "${systems[@]}"; do [ "$wanted" = "$1" ] && return 0; done
  return 1
}
drop_system() {
  local kept=() system
  for system in "${systems[@]}"; do [ "$system" != "$1" ] && kept+=("$system"); done
  systems=("${kept[@]}")
}

if wants redis || wants redis-wait; then
  if ! install_if_missing redis-server redis-server || ! command -v redis-cli >/dev/null; then
    echo "bench.sh: skipping redis and redis-wait (no redis-server / redis-cli)" >&2
    drop_system redis
    drop_system redis-wait
  fi
fi
if wants etcd && ! install_if_missing etcd etcd-server; then
  echo "bench.sh: skipping etcd (no etcd)" >&2
  drop_system etcd
fi
if [ ${#systems[@]} -eq 0 ]; then
  echo "bench.sh: no system left to run" >&2
  exit 1
fi

if [ -z "${CARTWHEEL:-}" ]; then
  # `cargo build` only rebuilds what changed. The etcd target is behind the `etcd`
  # feature: its client compiles .proto files, which needs protoc.
  features=()
  if wants etcd; then
    install_if_missing protoc protobuf-compiler || true
    features=(--features etcd)
  fi
  cargo build --release --locked --quiet "${features[@]}" || exit 1
  CARTWHEEL="${CARGO_TARGET_DIR:-target}/release/cartwheel"
fi
[ -x "$CARTWHEEL" ] || { echo "bench.sh: no binary at $CARTWHEEL" >&2; exit 1; }

OUT=${OUT:-$(mktemp -d /tmp/cartwheel-bench.XXXXXX)}
mkdir -p "$OUT" || exit 1
work=$(mktemp -d /tmp/cartwheel-bench-data.XXXXXX) || exit 1
pids=()
cartwheel_dir=""
bench_pid=""
scraper_pid=""
cleanup() {
  local pid
  [ -n "$scraper_pid" ] && kill "$scraper_pid" 2>/dev/null
  # `timeout` passes the signal on to the bench it runs.
  [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null && wait "$bench_pid" 2>/dev/null
  if [ -n "$cartwheel_dir" ] && [ -f "$cartwheel_dir/cluster.json" ]; then
    timeout 60 "$CARTWHEEL" cluster down --dir "$cartwheel_dir" >/dev/null 2>&1
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    # Bounded: SIGKILL after 10 s.
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Whether URL answers 200 (etcd's /health) within 2 s.
http_ok() {
  python3 -c '
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as answer:
    sys.exit(0 if answer.status == 200 else 1)' "$1"
}


declare -A target extra durability
if wants redis; then
  read -r port < <(free_ports 1)
  start_redis redis-alone "$port" || exit 1
  target[redis]="redis://127.0.0.1:$port"
  extra[redis]=""
  durability[redis]=$(redis_durability)
fi
if wants redis-wait; then
  read -r primary one two < <(free_ports 3)
  start_redis redis-primary "$primary" || exit 1
  start_redis redis-replica-1 "$one" "$primary" || exit 1
  start_redis redis-replica-2 "$two" "$primary" || exit 1
  wait_for "2 Redis replicas in sync" replicas_online "$primary" 2 || exit 1
  target[redis-wait]="redis://127.0.0.1:$primary"
  extra[redis-wait]="--redis-wait 1"
  durability[redis-wait]="$(redis_durability) on each, + WAIT 1 (a replica has it)"
fi
if wants etcd; then
  read -r c0 c1 c2 p0 p1 p2 < <(free_ports 6)
  clients=($c0 $c1 $c2)
  peers=($p0 $p1 $p2)
  cluster="e0=http://127.0.0.1:$p0,e1=http://127.0.0.1:$p1,e2=http://127.0.0.1:$p2"
  for member in 0 1 2; do
    dir="$work/etcd/e$member"
    mkdir -p "$dir"
    # Periodic compaction keeps the history of overwritten keys from filling the quota.
    etcd --name "e$member" --data-dir "$dir/data" \
      --listen-client-urls "http://127.0.0.1:${clients[$member]}" \
      --advertise-client-urls "http://127.0.0.1:${clients[$member]}" \
      --listen-peer-urls "http://127.0.0.1:${peers[$member]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${peers[$member]}" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "bench-$$" \
      --auto-compaction-mode periodic --auto-compaction-retention 1m \
      --quota-backend-bytes $((4 * 1024 * 1024 * 1024)) \
      >"$dir/log" 2>&1 &
    pids+=($!)
  done
  for member in 0 1 2; do
    wait_for "etcd e$member" http_ok "http://127.0.0.1:${clients[$member]}/health" || exit 1
  done
  target[etcd]="etcd://127.0.0.1:$c0,127.0.0.1:$c1,127.0.0.1:$c2"
  extra[etcd]=""
  durability[etcd]="WAL fsync per commit batch (group commit) on 2 of 3"
fi
if wants cartwheel || wants cartwheel-scraped; then
  cartwheel_dir="$work/cartwheel"
  up=(cluster up --dir "$cartwheel_dir" --topology regions/bench.toml)
  [ -n "$CARTWHEEL_DURABILITY" ] && up+=(--durability "$CARTWHEEL_DURABILITY")
  if ! timeout $((START_WAIT_S * 2)) "$CARTWHEEL" "${up[@]}" >"$work/cluster-up.log" 2>&1; then
    echo "bench.sh: cartwheel cluster up failed:" >&2
    tail -n 20 "$work/cluster-up.log" >&2
    exit 1
  fi
  target[cartwheel]=cartwheel
  extra[cartwheel]="--dir $cartwheel_dir --r 2 --w 2"
  durability[cartwheel]="${CARTWHEEL_DURABILITY:-group:2} fsync, W = 2 of 3"
  target[cartwheel-scraped]=cartwheel
  extra[cartwheel-scraped]="${extra[cartwheel]}"
  durability[cartwheel-scraped]="${durability[cartwheel]}; /metrics of every node scraped every 1 s"
fi

# Scrapes /metrics of every node of the cartwheel cluster once a second until killed
# (each scrape bounded to 1 s); counts the scrapes that did not answer 200.
scrape_every_second() {
  python3 - "$cartwheel_dir/cluster.json" "$1" <<'PY'
import json, sys, time, urllib.request
nodes = [node["http"] for node in json.load(open(sys.argv[1]))["nodes"]]
scrapes = failures = 0
try:
    while True:
        started = time.monotonic()
        for address in nodes:
            scrapes += 1
            try:
                with urllib.request.urlopen(f"http://{address}/metrics", timeout=1) as answer:
                    answer.read()
                    failures += answer.status != 200
            except OSError:
                failures += 1
        with open(sys.argv[2], "w") as out:
            out.write(f"{scrapes} scrapes, {failures} failed\n")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
except KeyboardInterrupt:
    pass
PY
}

{
  echo "durability as configured:"
  for system in "${systems[@]}"; do
    printf '  %-11s %s\n' "$system" "${durability[$system]}"
  done
} | tee "$OUT/durability.txt" >&2

workload_args() {
  case "$1" in
    kv-write) echo --workload kv --read-ratio 0 ;;
    kv-read) echo --workload kv --read-ratio 1 ;;
    kv-mixed) echo --workload kv --read-ratio 0.5 ;;
    *) echo --workload "$1" ;;
  esac
}

manifest="$OUT/runs.tsv"
: >"$manifest"
failed=0
for workload in "${workloads[@]}"; do
  for round in $(seq 1 "$ROUNDS"); do
    for system in "${systems[@]}"; do
      name="$workload-$system-r$round"
      echo "== $workload / $system / round $round" >&2
      if [ "$system" = cartwheel-scraped ]; then
        scrape_every_second "$OUT/$name.scrapes" &
        scraper_pid=$!
      fi
      # shellcheck disable=SC2046 # word splitting of the option lists is meant
      timeout "$run_s" "$CARTWHEEL" bench --target "${target[$system]}" \
        ${extra[$system]} $(workload_args "$workload") \
        --keys "$KEYS" --value-bytes "$VALUE_BYTES" --clients "$CLIENTS" \
        --warmup "$WARMUP" --duration "$DURATION" --seed $((1000 + round)) \
        --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1 &
      # In the background and waited for, so a signal reaches the trap at once.
      bench_pid=$!
      wait "$bench_pid"
      status=$?
      bench_pid=""
      if [ -n "$scraper_pid" ]; then
        kill "$scraper_pid" 2>/dev/null
        wait "$scraper_pid" 2>/dev/null
        scraper_pid=""
        echo "   $(cat "$OUT/$name.scrapes" 2>/dev/null)" >&2
      fi
      if [ $status -ne 0 ]; then
        failed=1
        echo "bench.sh: $name failed (exit $status):" >&2
        tail -n 5 "$OUT/$name.log" >&2
      fi
      printf '%s\t%s\t%s\t%s\n' "$workload" "$system" "$round" "$OUT/$name.json" >>"$manifest"
    done
  done
done

python3 - "$manifest" "$OUT/durability.txt" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys

runs = []
for line in open(sys.argv[1]):
    workload, system, round_, path = line.rstrip("\n").split("\t")
    try:
        summary = json.load(open(path))
    except (OSError, ValueError):
        summary = None
    runs.append((workload, system, int(round_), summary))

def number(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"

print()
print("| workload | system | round | ops/s | p50 ms | p99 ms | p99.9 ms | errors "
      "| cartwheel / this: ops/s | p99 |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
by_run = {(w, s, r): summary for w, s, r, summary in runs}
ratios = {}
for workload, system, round_, summary in runs:
    if summary is None:
        print(f"| {workload} | {system} | {round_} | FAILED | | | | | | |")
        continue
    latency = summary["latency_ms"]
    ratio = p99_ratio = None
    ours = by_run.get((workload, "cartwheel", round_))
    if system != "cartwheel" and ours is not None:
        if summary["throughput_ops_s"] > 0:
            ratio = ours["throughput_ops_s"] / summary["throughput_ops_s"]
        if latency["p99"] > 0:
            p99_ratio = ours["latency_ms"]["p99"] / latency["p99"]
        if ratio is not None:
            ratios.setdefault((workload, system), []).append((ratio, p99_ratio))
    print(f"| {workload} | {system} | {round_} | {summary['throughput_ops_s']:.0f} "
          f"| {latency['p50']:.2f} | {latency['p99']:.2f} | {latency['p999']:.2f} "
          f"| {summary['errors']} | {number(ratio, 3)} | {number(p99_ratio, 2)} |")

if ratios:
    print()
    print("| workload | peer | rounds | median cartwheel / peer ops/s | median p99 ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    for (workload, system), values in ratios.items():
        tput = statistics.median(v[0] for v in values)
        p99s = [v[1] for v in values if v[1] is not None]
        p99 = statistics.median(p99s) if p99s else None
        print(f"| {workload} | {system} | {len(values)} | {tput:.3f} | {number(p99, 2)} |")
print()
print(open(sys.argv[2]).read().rstrip())
EOF
echo >&2
echo "results (JSON, logs, runs.tsv, table.md): $OUT" >&2
exit $failed
